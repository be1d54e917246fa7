"""``python -m benchmarks export-cost [--models default,base,multilingual,large]``: what an
``edgebert export --int8`` (both formats) costs, step by step, from a cold cache.

For each model (the embedded default; random-weight BERTs in catalog shapes with the real
uncased vocab: BERT-base, the multilingual shape with a 119,547-word vocab, BERT-large) it
runs the export in a fresh process with an empty ``EDGEBERT_CACHE`` (so the reference is
written too), records the manifest's per-step time and peak RSS (each step's peak counts
every process alive during it) and the largest single process the OS saw, then runs
``edgebert verify`` on real sentences (cosine thresholds of the recipe; no probe, the weights
are random) and the runtime's peak RSS with the XNNPACK weight cache against the int8 file.
Writes ``export_cost.json``, ``export_cost.md`` and ``export_cost.png`` under ``-o``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import suite
from edgebert.model.bundle import read_manifest

# `--check`: a step whose peak grew by more than this share over the committed record fails.
CHECK_GROWTH = 0.10
# The bars: peak GB of the whole export, and seconds.
BARS = {"default": (1.5, None), "base": (3.0, 120), "multilingual": (4.0, None), "large": (6.0, 600)}
MULTILINGUAL_VOCAB = 119_547
VERIFY_SENTENCES = 500


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def multilingual_source(work: Path) -> Path:
    """bert_multi_cased's shape: L12 H768 and a 119,547-word vocab (the uncased vocab, then
    filler word pieces, so real English text still tokenizes as it does for the uncased one)."""
    from edgebert.hub import default_model

    path = work / "models" / "multilingual"
    if (path / "model.safetensors").exists():
        return path
    sys.path.insert(0, str(suite.ROOT / "tests"))
    from fixtures import tiny_models

    vocab = default_model.model_dir().joinpath("vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab += [f"##x{i}" for i in range(MULTILINGUAL_VOCAB - len(vocab))]
    work.mkdir(parents=True, exist_ok=True)
    vocab_file = work / "multilingual_vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    _progress("writing a random-weight multilingual-shape BERT (L12 H768, 119,547 words)")
    tiny_models.make_hf(
        path, seed=0, vocab_file=vocab_file, layers=12, hidden=768, heads=12, intermediate=3072, max_position=512
    )
    return path


def source_for(key: str, work: Path) -> Path:
    return multilingual_source(work) if key == "multilingual" else suite.model_source(key, work)


def _edgebert() -> str:
    return str(Path(sys.executable).with_name("edgebert"))


def export_once(key: str, work: Path, verify: bool = True) -> dict:
    """A cold export (empty cache) of ``key`` with ``--int8``, both formats; ``verify``: run
    ``edgebert verify`` on real sentences too."""
    source = source_for(key, work)
    out = work / "bundles" / f"{key}-int8"
    with tempfile.TemporaryDirectory(dir=work, prefix="cache-") as cache:
        env = dict(os.environ, EDGEBERT_CACHE=cache, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [_edgebert(), "export", str(source), "--int8", "-o", str(out)]
        _progress(f"exporting {key}: {' '.join(cmd)}")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"export failed: {' '.join(cmd)}")
        # verify needs the reference: run it before the cache goes.
        verified = verify_once(out, work, env) if verify else None
    m = read_manifest(out)
    fp32_bytes = 4 * _parameters(m.architecture)
    return {
        "bundle": str(out),
        "architecture": m.architecture,
        "fp32_mb": round(fp32_bytes / 1e6, 1),
        "files_mb": {f: round(e.total_bytes / 1e6, 1) for f, e in m.models.items()},
        "wall_s": round(wall, 1),
        "largest_process_gb": round(usage.ru_maxrss / 1e6, 2),
        "export_cost": m.export_cost,
        "gate": {f: e.gate["passed"] for f, e in m.models.items()},
        "verify": verified,
    }


def _parameters(a: dict) -> int:
    H, L, I, V = a["hidden_size"], a["num_layers"], a["intermediate_size"], a["vocab_size"]
    per_layer = 4 * H * H + 4 * H + 2 * H * I + I + H + 4 * H
    return V * H + a["max_position"] * H + a["type_vocab_size"] * H + 2 * H + L * per_layer + H * H + H


def verify_once(bundle: Path, work: Path, env: dict) -> dict:
    texts = _texts(VERIFY_SENTENCES)
    texts_file = work / f"verify_{VERIFY_SENTENCES}.txt"
    texts_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = bundle.with_name(bundle.name + "-verify")
    cmd = [_edgebert(), "verify", str(bundle), "--texts", str(texts_file), "-o", str(out)]
    _progress(f"  verifying on {len(texts)} real sentences")
    t0 = time.perf_counter()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env).returncode
    report = json.loads((out / "verify.json").read_text())
    return {
        "exit_code": code,
        "seconds": round(time.perf_counter() - t0, 1),
        "sentences": len(texts),
        "formats": {
            f: {
                "passed": s["passed"],
                "pooled_cosine_mean": s["pooled_output"]["cosine"]["mean"],
                "pooled_cosine_min": s["pooled_output"]["cosine"]["min"],
                "mean_pooled_cosine_mean": s["mean_pooled"]["cosine"]["mean"],
                "mean_pooled_cosine_min": s["mean_pooled"]["cosine"]["min"],
            }
            for f, s in report["formats"].items()
        },
    }


def _texts(n: int) -> list[str]:
    lines = suite.CORPUS.read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[2] for line in lines if line.count("\t") >= 2][:n]


def runtime_rss(bundle: str, work: Path) -> dict:
    """Peak RSS of a process running the int8 TFLite file with the weight cache (second load)."""
    cache = str(work / "xnnpack-cache")
    kw = dict(bundle=bundle, backend="tflite", threads=2, weight_cache="auto", cache_dir=cache)
    suite.probe("rss_only", **kw)  # the first load builds the cache file
    r = suite.probe("rss_only", **kw)
    size_mb = Path(bundle, "model.tflite").stat().st_size / 1e6
    return {
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        "peak_rss_seq128_mb": round(r.get("peak_rss_seq128_mb") or 0, 1),
        "file_mb": round(size_mb, 1),
        "ratio": round(r["peak_rss_mb"] / size_mb, 2),
        "ratio_seq128": round((r.get("peak_rss_seq128_mb") or 0) / size_mb, 2),
    }


def run(models: list[str], out: Path, runtime_only: bool = False) -> dict:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    res = {"machine": suite.machine(2), "models": {}}
    previous = out / "export_cost.json"
    if previous.exists():  # models measured by earlier runs stay in the table
        res["models"] = json.loads(previous.read_text()).get("models", {})
    for key in models:
        if runtime_only:  # the export's figures stay; its bundle's runtime is measured again
            r = res["models"][key]
        else:
            r = export_once(key, work)
            r["machine"] = f"{res['machine']['cpu']} ({res['machine']['int8_isa']})"
        r["runtime"] = runtime_rss(r["bundle"], work)
        res["models"][key] = r
        (out / "export_cost.json").write_text(json.dumps(res, indent=1))  # partial results survive a stop
    return res


def step_growth(committed: dict, measured: dict, tolerance: float = CHECK_GROWTH) -> list[str]:
    """Each step of ``measured``'s export (``export_once``'s form, or its ``export_cost``) whose
    peak exceeds the same step of ``committed`` by more than ``tolerance``, as a line; [] when
    none did. A step the record lacks is reported too (nothing to hold it to)."""

    def steps(r: dict) -> dict:
        return {s["step"]: s for s in r.get("export_cost", r)["steps"]}

    old, new = steps(committed), steps(measured)
    out = []
    for name, s in new.items():
        if name not in old:
            out.append(f"{name}: {s['peak_rss_gb']:.2f} GB, no committed record")
            continue
        was, now = old[name]["peak_rss_gb"], s["peak_rss_gb"]
        if now > was * (1 + tolerance):
            out.append(f"{name}: {now:.2f} GB, {100 * (now / was - 1):+.0f}% over the committed {was:.2f} GB")
    return out


def check(models: list[str], out: Path, record: Path) -> int:
    """``--check``: exports ``models`` again (cold, no verify) and compares every step's peak
    with ``record`` (the committed ``export_cost.json``); 1 when any grew by more than
    ``CHECK_GROWTH``. The records are left as they are."""
    committed = json.loads(record.read_text())["models"]
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    cpu = suite.machine(2)["cpu"]
    failed = False
    for key in models:
        if key not in committed:
            _progress(f"{key}: no committed record in {record}; skipped")
            continue
        r = export_once(key, work, verify=False)
        grew = step_growth(committed[key], r)
        line = ", ".join(f"{s['step']} {s['peak_rss_gb']:.2f}" for s in r["export_cost"]["steps"])
        was = ", ".join(f"{s['step']} {s['peak_rss_gb']:.2f}" for s in committed[key]["export_cost"]["steps"])
        print(f"{key} on {cpu}: {line} GB (committed, on {committed[key].get('machine', '?')}: {was} GB)")
        for g in grew:
            print(f"  GREW {g}")
        failed = failed or bool(grew)
    print("export-cost --check: " + ("FAILED" if failed else f"every step within {CHECK_GROWTH:.0%} of the record"))
    return 1 if failed else 0


def markdown(res: dict, command: str) -> str:
    m = res["machine"]
    lines = [
        f"`{command}` on {m['cpu']} ({m.get('int8_isa', 'int8 ISA not recorded')}, {m['cores']} cores), "
        f"{m['date']}; each export cold (empty cache), `--int8`, both formats. Peak = every process alive during "
        "the step. Runtime RSS: the peak (VmHWM) of a process that loads the int8 TFLite file with the weight "
        "cache and embeds a sentence, over the file size. A row measured on another machine names it.",
        "",
        "| model | fp32 MB | int8 MB tflite / onnx | import s / GB | tflite s / GB | onnx s / GB | gate s / GB "
        "| whole s | peak GB | bar GB / s | verify 500 (pooled cos mean tflite / onnx) | runtime RSS / int8 file |",
        "| --- | ---: | --- | --- | --- | --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    for key, r in res["models"].items():
        steps = {s["step"]: s for s in r["export_cost"]["steps"]}
        cells = [
            f"{steps[k]['seconds']:.0f} / {steps[k]['peak_rss_gb']:.2f}" if k in steps else "-"
            for k in ("import", "tflite", "onnx", "gate")
        ]
        bar_gb, bar_s = BARS.get(key, (None, None))
        v = r["verify"]["formats"]
        ver = " / ".join(f"{v[f]['pooled_cosine_mean']:.5f}{'' if v[f]['passed'] else ' FAILED'}" for f in v)
        rt = r["runtime"]
        where = "" if r.get("machine", "").startswith(m["cpu"]) else f" (on {r.get('machine') or 'an earlier machine'})"
        lines.append(
            f"| {key}{where} | {r['fp32_mb']:.0f} | {r['files_mb'].get('tflite', 0):.0f} / {r['files_mb'].get('onnx', 0):.0f} | "
            + " | ".join(cells)
            + f" | {r['export_cost']['seconds']:.0f} | {r['export_cost']['peak_rss_gb']:.2f} | "
            f"{bar_gb or '-'} / {bar_s or '-'} | {ver} | {rt['ratio']:.2f}x ({rt['ratio_seq128']:.2f}x at 128) |"
        )
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(
        res["models"], key=lambda k: res["models"][k]["fp32_mb"]
    )  # smallest first: the line reads left to right
    steps = ("import", "tflite", "onnx", "gate")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(steps)
    for j, step in enumerate(steps):
        vals = [
            next((s["peak_rss_gb"] for s in res["models"][k]["export_cost"]["steps"] if s["step"] == step), 0)
            for k in keys
        ]
        ax.bar([i + (j - 1.5) * width for i in range(len(keys))], vals, width, label=step)
    for i, k in enumerate(keys):
        bar = BARS.get(k, (None, None))[0]
        if bar:
            ax.hlines(bar, i - 0.45, i + 0.45, colors="red", linestyles="dashed")
    ax.set_xticks(range(len(keys)), [f"{k}\n{res['models'][k]['fp32_mb']:.0f} MB fp32" for k in keys])
    ax.set_ylabel("peak RSS, GB (all processes)")
    ax.set_title("export --int8, peak memory per step (red: the bar)")
    ax.legend()
    fp32 = [res["models"][k]["fp32_mb"] / 1e3 for k in keys]
    peak = [res["models"][k]["export_cost"]["peak_rss_gb"] for k in keys]
    ax2.plot(fp32, peak, "o-")
    for x, y, k in zip(fp32, peak, keys):
        ax2.annotate(f"{k} ({res['models'][k]['export_cost']['seconds']:.0f} s)", (x, y))
    ax2.set_xlabel("fp32 model size, GB")
    ax2.set_ylabel("peak RSS of the export, GB")
    ax2.set_title("peak against model size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(models: list[str], out: Path, command: str, runtime_only: bool = False) -> dict:
    res = run(models, out, runtime_only)
    res["command"] = command
    (out / "export_cost.json").write_text(json.dumps(res, indent=1))
    md = markdown(res, command)
    (out / "export_cost.md").write_text(md)
    plot(res, out / "export_cost.png")
    print(md)
    return res
