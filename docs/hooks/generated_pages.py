"""MkDocs hook: pages generated at build time, never typed by hand.

- ``reference/cli.md``: the ``<!-- cli-reference -->`` marker is replaced by every command's
  ``--help``, read from the argparse parser that ``edgebert`` itself runs.
- ``benchmarks/results/*.md``: one page per result file in ``benchmarks/results/`` (the JSON
  the benchmark scripts write), rendered by the benchmark's own ``markdown`` function where it
  has one and as plain tables otherwise, with the PNG plots beside it.

The generated pages exist only in the build (``File.generated``): nothing is written into
``docs/``, so there is nothing to commit or to keep in sync by hand.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
CLI_MARKER = "<!-- cli-reference -->"

# result file (relative to benchmarks/results) -> (page slug, title, what it measures)
PAGES: dict[str, tuple[str, str, str]] = {
    "benchmarks_quick.json": (
        "quick",
        "Suite, quick plan (latest)",
        "`python -m benchmarks run --quick`: the default model and the BERT-base shape, TensorFlow fp32 "
        "against both formats' fp32 and dynamic int8: latency, real-text throughput, cold start, peak RSS, "
        "rooflines.",
    ),
    "quick_2026-12-07/benchmarks_quick.json": (
        "quick-second-run",
        "Suite, quick plan (a second run)",
        "The same plan on the same CPU kind in a slower state of the VM; kept to show the spread between "
        "runs (compare ratios within one run only).",
    ),
    "full_default/benchmarks.json": (
        "full-default",
        "Suite, every variant of the default model",
        "`python -m benchmarks run --models default`: every variant, lengths 16 to 512 (an older run, "
        "before the current `wi8_afp32` recipe).",
    ),
    "onnx_forms/onnx_forms.json": (
        "onnx-forms",
        "ONNX forms",
        "`python -m benchmarks onnx-forms`: every ONNX form of one model's weights, interleaved, beside "
        "both runtimes' single products and TFLite.",
    ),
    "profile/profile.json": (
        "profile",
        "Profile",
        "`python -m benchmarks profile`: where each runtime's time goes, by op type and layer.",
    ),
    "buckets/buckets.json": (
        "buckets",
        "Length buckets",
        "`python -m benchmarks buckets`: length-bucketed bundles against fixed 128 on real text.",
    ),
    "export_cost/export_cost.json": (
        "export-cost",
        "Export cost",
        "`python -m benchmarks export-cost`: cold export time and peak memory per step.",
    ),
    "quantization/results.json": (
        "quantization",
        "Recipes: accuracy, size, latency",
        "`benchmarks/quantization_accuracy.py`: every recipe of the default model on 1,000 held-out "
        "movie-review sentences, cosine against the fp32 reference.",
    ),
    "quantization/wi8_afp32.json": (
        "quantization-wi8-afp32",
        "Recipe wi8_afp32 (current)",
        "`benchmarks/quantization_accuracy.py --recipes wi8_afp32`: the current default int8 recipe.",
    ),
    "quantization/integer_only.json": (
        "quantization-integer-only",
        "Recipe wi8_ai8i16 (current)",
        "`benchmarks/quantization_accuracy.py --recipes wi8_ai8i16`: the integer-only recipe.",
    ),
    "quantization/a16w8.json": (
        "quantization-a16w8",
        "Recipe wi8_ai16 (current)",
        "`benchmarks/quantization_accuracy.py --recipes wi8_ai16 --sentences 100`: the a16w8 recipe.",
    ),
    "integer_sensitivity/results.json": (
        "integer-sensitivity",
        "Integer-only sensitivity sweep",
        "`experiments/integer_sensitivity/integer_sensitivity.py`: every op int16, then one op group at a time int8.",
    ),
    "classifier_precision/results.json": (
        "classifier-precision",
        "Fine-tuned classifier: integer precision",
        "`experiments/classifier_precision/classifier_precision.py`: recipe variants on the fine-tuned movie-sentiment classifier.",
    ),
    "finetune/finetune_accuracy.json": (
        "finetune",
        "Fine-tuning accuracy",
        "`experiments/finetune_accuracy/finetune_accuracy.py`: the default model fine-tuned on movie reviews, every export "
        "scored on the same held-out sentences.",
    ),
    "verify_default_int8/verify.json": (
        "verify-default-int8",
        "Verify: default int8 bundle",
        "`edgebert verify` of the default int8 bundle on 7,538 labelled movie-review sentences.",
    ),
}

# Plots whose name does not start with their result file's stem.
IMAGES: dict[str, list[str]] = {"quantization/results.json": ["accuracy_latency.png"]}


def _renderer(rel: str):
    """The benchmark's own Markdown function for a result file, or None."""
    sys.path.insert(0, str(ROOT))
    try:
        if rel.endswith("benchmarks_quick.json") or rel == "full_default/benchmarks.json":
            report = importlib.import_module("benchmarks.report")
            return lambda res: report.markdown(res, res.get("command", "python -m benchmarks run"))
        if rel.startswith("buckets/"):
            return importlib.import_module("benchmarks.buckets").markdown
        if rel.startswith("export_cost/"):
            mod = importlib.import_module("benchmarks.export_cost")
            return lambda res: mod.markdown(res, res.get("command", "python -m benchmarks export-cost"))
        if rel.startswith("profile/"):
            return importlib.import_module("benchmarks.profile").markdown
        if rel.startswith("onnx_forms/"):
            mod = importlib.import_module("benchmarks.onnx_forms")
            return lambda res: mod.report(res, list(res["models"]))
    finally:
        sys.path.remove(str(ROOT))
    return None


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(", ", ": "))
    return "-" if v is None else str(v).replace("|", "\\|")


def _table(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return lines


def _generic(res) -> str:
    """Tables for result files whose benchmark has no Markdown function of its own."""
    if isinstance(res, list):
        return "\n".join(_table(res)) + "\n"
    lines: list[str] = []
    scalars = {k: v for k, v in res.items() if not isinstance(v, (dict, list))}
    if scalars:
        lines += ["| field | value |", "| --- | --- |"] + [f"| {k} | {_cell(v)} |" for k, v in scalars.items()]
        lines.append("")
    for key, value in res.items():
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            lines += [f"**{key}**", ""] + _table(value) + [""]
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            lines += [f"**{key}**", ""] + _table([{"": k, **v} for k, v in value.items()]) + [""]
        elif isinstance(value, dict):
            lines += [f"**{key}**", "", "| key | value |", "| --- | --- |"]
            lines += [f"| {k} | {_cell(v)} |" for k, v in value.items()] + [""]
        elif isinstance(value, list):
            lines += [f"**{key}**: {_cell(value)}", ""]
    return "\n".join(lines) + "\n"


def _result_page(rel: str, slug: str, title: str, about: str) -> tuple[str, list[Path]]:
    path = RESULTS / rel
    res = json.loads(path.read_text())
    render = _renderer(rel)
    with redirect_stdout(io.StringIO()):
        body = render(res) if render else _generic(res)
    # A renderer's own top heading would be a second title.
    body = "\n".join(line for line in body.splitlines() if not line.startswith("# "))
    # A result file's plots share its stem (benchmarks_quick_latency.png); IMAGES names the others.
    names = IMAGES.get(rel)
    images = [path.parent / n for n in names] if names else sorted(path.parent.glob(path.stem + "*.png"))
    text = [
        f"# {title}",
        "",
        '!!! note "Generated page"',
        f"    Rendered at build time from `benchmarks/results/{rel}` by `docs/hooks/generated_pages.py`; "
        "edit the benchmark or rerun it, not this page.",
        "",
        about,
        "",
        body,
    ]
    for img in images:
        text += ["", f"![{img.stem}]({slug}-{img.name})"]
    return "\n".join(text) + "\n", images


def _index_page(entries: list[tuple[str, str, str, str]]) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Every page in this section is generated from a result file in `benchmarks/results/` when the "
        "site is built. How the numbers are taken: [Benchmark method](../index.md).",
        "",
        "| page | result file | what it measures |",
        "| --- | --- | --- |",
    ]
    for rel, slug, title, about in entries:
        lines.append(f"| [{title}]({slug}.md) | `{rel}` | {about} |")
    return "\n".join(lines) + "\n"


def on_files(files: Files, config) -> Files:
    entries = []
    known = {rel for rel in PAGES if (RESULTS / rel).is_file()}
    extra = sorted(
        str(p.relative_to(RESULTS)) for p in RESULTS.rglob("*.json") if "work" not in p.relative_to(RESULTS).parts
    )
    for rel in extra:
        if rel in PAGES and rel in known:
            slug, title, about = PAGES[rel]
        else:
            slug = rel.removesuffix(".json").replace("/", "-").replace("_", "-")
            title, about = f"Results: {rel}", "A result file with no description yet (add it to `PAGES`)."
        text, images = _result_page(rel, slug, title, about)
        files.append(File.generated(config, f"benchmarks/results/{slug}.md", content=text))
        for img in images:
            files.append(File.generated(config, f"benchmarks/results/{slug}-{img.name}", content=img.read_bytes()))
        entries.append((rel, slug, title, about))
    files.append(File.generated(config, "benchmarks/results/index.md", content=_index_page(entries)))
    return files


def _cli_reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal; keep the page stable
    cli = importlib.import_module("edgebert.cli")
    build = getattr(cli, "build_parser", None)
    if build is None:  # one module per command: the parser may live in a submodule
        for name in ("main", "parser", "base"):
            try:
                build = getattr(importlib.import_module(f"edgebert.cli.{name}"), "build_parser", None)
            except ImportError:
                continue
            if build:
                break
    if build is None:
        raise RuntimeError("docs: no build_parser() in edgebert.cli; update docs/hooks/generated_pages.py")
    parser = build()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    out = ["```text", parser.format_help().rstrip(), "```", ""]
    for name, p in sub.choices.items():
        p.prog = f"edgebert {name}"
        out += [f"## `edgebert {name}`", "", _sentence(helps.get(name) or ""), "", "```text"]
        out += [p.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def _sentence(text: str) -> str:
    return (text[:1].upper() + text[1:] + ".") if text else ""


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, _cli_reference())
    return markdown
