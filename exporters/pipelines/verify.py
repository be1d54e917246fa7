"""``edgebert verify``: a bundle against the fp32 reference SavedModel it came from.

The reference runs in a worker process (TensorFlow), the bundle in this one through the
edgebert runtime, both on the same token ids from the bundle's tokenizer. Reported per
format: cosine (mean, min, percentiles), max-abs and relative error of the pooled output, of
the sequence output over real tokens and of the mean-pooled sequence; with labels, a
logistic-regression probe trained on reference embeddings and scored on reference vs bundle
embeddings (accuracy of both and their agreement). Written as JSON, Markdown and a PNG, and
summarised into the bundle's manifest.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from edgebert.cache import cache_dir
from edgebert.errors import EdgebertError
from edgebert.eval import linear_probe, metrics
from edgebert.exporters.convert import layer_taps, workers
from edgebert.exporters.convert.tasks import ReferenceTask
from edgebert.exporters.pipelines.progress import Ticker
from edgebert.exporters.pipelines.progress import say as _progress
from edgebert.files import atomic_write_bytes
from edgebert.model.bundle import Manifest, read_manifest, write_manifest
from edgebert.runtime import runners
from edgebert.runtime.edge_model import load
from edgebert.runtime.runner_protocol import Runner


@dataclasses.dataclass
class VerifyRequest:
    bundle: Path
    texts: list[str]
    labels: list[int] | None = None
    reference: Path | None = None
    output: Path | None = None
    formats: tuple[str, ...] | None = None
    seq_length: int = 128


def reference_outputs(reference: Path, manifest: Manifest, req: VerifyRequest, progress, steps: int) -> dict:
    """The reference SavedModel's outputs (every layer's too) on ``req.texts``, run by TensorFlow
    in a worker process, and kept in the cache: verifying several bundles of one model on the
    same sentences (every recipe, both formats) runs TensorFlow once."""
    recorded = manifest.reference or {}
    if recorded.get("path") and Path(recorded["path"]) == reference:
        identity = recorded["sha256"]
    else:  # another reference than the recorded one: its path and modification time name it
        identity = f"{reference.resolve()}@{reference.stat().st_mtime_ns}"
    key = hashlib.sha256(json.dumps([identity, req.seq_length, req.texts]).encode()).hexdigest()[:24]
    cached = cache_dir() / "verify" / f"{key}.npz"
    if cached.is_file():
        progress(f"[1/{steps}] reference outputs on {len(req.texts)} sentences: from the cache ({cached})")
        return dict(np.load(cached))
    with tempfile.TemporaryDirectory(prefix="edgebert-verify-") as work:
        progress(f"[1/{steps}] running the reference SavedModel on {len(req.texts)} sentences")
        with workers.session(reference):
            workers.run(
                ReferenceTask(
                    source=str(reference),
                    reference_dir=str(reference),
                    texts=req.texts,
                    seq_length=req.seq_length,
                    encoder_outputs=True,
                    outputs_npz=str(Path(work) / "ref.npz"),
                ),
                Path(work),
            )
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Renamed into place whole: an interrupted run leaves no half file the next one would trust.
        partial = cached.with_suffix(f".partial-{os.getpid()}")
        shutil.move(str(Path(work) / "ref.npz"), str(partial))
        os.replace(partial, cached)
    return dict(np.load(cached))


def encode_with_progress(m, texts: list[str], seq_length: int, progress, chunk: int = 32) -> dict:
    """``m.encode(texts)`` a chunk at a time, saying how far it got (an int16 BERT-base runs
    seconds a sentence on a CPU's reference kernels); the result is padded as one call pads it."""
    ticker = Ticker("bundle", len(texts), say=progress)
    parts = []
    for start in range(0, len(texts), chunk):
        parts.append(m.encode(texts[start : start + chunk], seq_length=seq_length))
        ticker.add(len(parts[-1]["pooled_output"]))
    width = max(p["sequence_output"].shape[1] for p in parts)

    def padded(p: dict, key: str) -> np.ndarray:
        x = p[key]
        return np.pad(x, [(0, 0), (0, width - x.shape[1])] + [(0, 0)] * (x.ndim - 2))

    return {
        "pooled_output": np.concatenate([p["pooled_output"] for p in parts]),
        "sequence_output": np.concatenate([padded(p, "sequence_output") for p in parts]),
        "input_mask": np.concatenate([padded(p, "input_mask") for p in parts]),
    }


def layer_drift(m, feeds: dict, ref: dict, progress=_progress) -> dict:
    """Every layer's output against the reference's, at the real tokens.

    Runs a tapped copy of the bundle's model (``layer_taps``: the same kernels, more outputs)
    through the bundle's own batching.
    """
    num_layers = int(m.manifest.architecture["num_layers"])
    if f"layer_{num_layers - 1}" not in ref:
        return {"available": False, "reason": "the reference returned no encoder_outputs"}
    lengths = feeds["input_mask"].sum(1).astype(int)
    if lengths.sum() != len(ref["layer_0"]):
        return {"available": False, "reason": "the bundle's token count differs from the reference's"}
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with tempfile.TemporaryDirectory(prefix="edgebert-taps-") as work:
        try:
            path, quant = layer_taps.tap_model(m.model_path, num_layers, Path(work))
        except EdgebertError as e:
            return {"available": False, "reason": e.problem}
        got = {i: np.zeros_like(ref[f"layer_{i}"]) for i in range(num_layers)}
        runner: Runner | None = None
        try:
            runner = runners.open_runner(path)
            ticker = Ticker("per-layer drift", len(lengths), say=progress)
            for idx, batch in m.batches(feeds):
                out = {k: v[: len(idx)] for k, v in runner.run(batch).items()}
                for i in range(num_layers):
                    name = f"{layer_taps.TAP_PREFIX}{i}"
                    x = out["sequence_output"] if i == num_layers - 1 else layer_taps.dequantize(out[name], quant[name])
                    for row, j in enumerate(idx):
                        got[i][offsets[j] : offsets[j + 1]] = x[row, : lengths[j]]
                ticker.add(len(idx))
        except EdgebertError as e:  # the bundle's own verdict stands without the drift
            return {"available": False, "reason": f"the tapped copy did not run: {e.problem}"}
        finally:
            if runner is not None:  # the tapped file's interpreter, before the directory goes
                runner.close()
    return {
        "available": True,
        "tokens": int(lengths.sum()),
        "layers": [metrics.error_stats(got[i], ref[f"layer_{i}"]) for i in range(num_layers)],
    }


def probe(ref_emb: np.ndarray, got_emb: np.ndarray, labels: list[int]) -> dict:
    """Trains on reference embeddings (80%, L2 picked inside it), scores both on the other 20%."""
    y = np.asarray(labels)
    fitted = linear_probe.select_and_fit(ref_emb, y)
    te = fitted["held"]
    pr = linear_probe.predict(fitted["kernel"], fitted["bias"], ref_emb[te])
    pg = linear_probe.predict(fitted["kernel"], fitted["bias"], got_emb[te])
    agreement = float((pr == pg).mean())
    return {
        "train": int(len(fitted["train"])),
        "test": int(len(te)),
        "embedding": "mean_pooled",
        "l2": fitted["l2"],
        "reference_accuracy": float((pr == y[te]).mean()),
        "bundle_accuracy": float((pg == y[te]).mean()),
        "agreement": agreement,
        "agreement_upper95": linear_probe.wilson_upper(agreement, len(te)),
    }


class VerifyReport(TypedDict):
    """What ``verify`` returns and writes as ``verify.json`` (and records in the manifest)."""

    bundle: str
    reference: str
    texts: int
    seq_length: int
    thresholds: dict[str, float]
    created: str
    formats: dict[str, dict[str, Any]]  # per format: metrics.compare's figures, misses, passed
    passed: bool


def verify(req: VerifyRequest, progress=_progress) -> VerifyReport:
    manifest = read_manifest(req.bundle)
    recorded = req.reference or (manifest.reference or {}).get("path")
    if not recorded:
        raise EdgebertError(f"{req.bundle}'s manifest names no reference SavedModel", "pass --reference PATH")
    reference = Path(recorded)
    if not reference.exists():
        raise EdgebertError(
            f"reference SavedModel {reference} not found (the manifest records where export wrote it)",
            "pass --reference PATH, or export the bundle again on this machine",
        )
    if not req.texts:
        raise EdgebertError("no texts to verify on", "pass --texts FILE")
    formats = req.formats or tuple(manifest.models)
    thresholds = manifest.recipe["thresholds"]
    ref = reference_outputs(reference, manifest, req, progress, steps=len(formats) + 1)
    report = VerifyReport(
        bundle=str(req.bundle),
        reference=str(reference),
        texts=len(req.texts),
        seq_length=req.seq_length,
        thresholds=thresholds,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        formats={},
        passed=False,  # set once every format is compared
    )
    curves = {}
    for i, fmt in enumerate(formats, start=2):
        progress(f"[{i}/{len(formats) + 1}] running the bundle's {fmt} model")
        m = load(req.bundle, backend=fmt)
        feeds = m.tokenize(req.texts, seq_length=req.seq_length)
        width = feeds["input_word_ids"].shape[1]
        if not np.array_equal(feeds["input_word_ids"], ref["input_word_ids"][:, :width]):
            # Same tokenizer code on both sides: a difference means the bundle's vocab or casing
            # differs from the reference's. The comparison below shows what it costs.
            progress("  note: the bundle's token ids differ from the reference's (vocab or casing)")
        got = encode_with_progress(m, req.texts, req.seq_length, progress)
        stats = metrics.compare(got, ref, ref["input_mask"])
        per_sentence = metrics.sentence_cosines(got, ref, ref["input_mask"])
        stats["token_ids_match_reference"] = bool(
            np.array_equal(feeds["input_word_ids"], ref["input_word_ids"][:, :width])
        )
        stats["per_layer"] = (
            layer_drift(m, feeds, ref, progress)
            if stats["token_ids_match_reference"]
            else {"available": False, "reason": "token ids differ from the reference's"}
        )
        if req.labels is not None:
            mask = ref["input_mask"].astype(bool)
            ref_m = metrics.mean_pool(ref["sequence_output"], mask)
            got_m = metrics.mean_pool(got["sequence_output"], got["input_mask"].astype(bool))
            stats["probe"] = probe(ref_m, got_m, req.labels)
        stats["misses"] = misses(stats, thresholds)
        stats["passed"] = not stats["misses"]
        report["formats"][fmt] = stats
        curves[fmt] = per_sentence
        c = stats["pooled_output"]["cosine"]
        line = f"  {fmt}: cosine pooled mean {c['mean']:.5f} min {c['min']:.5f}"
        if "probe" in stats:
            p = stats["probe"]
            line += (
                f", probe accuracy {p['reference_accuracy']:.3f} (reference) / {p['bundle_accuracy']:.3f} "
                f"(bundle), agreement {p['agreement']:.4f}"
            )
        progress(line + ("" if stats["passed"] else "  FAILS: " + "; ".join(stats["misses"])))
    report["passed"] = all(f["passed"] for f in report["formats"].values())
    if req.output is not None:
        write_report(report, curves, Path(req.output))
    record_in_manifest(req.bundle, report)
    return report


def misses(stats: dict, thresholds: dict) -> list[str]:
    out = metrics.gate(stats, thresholds)
    # Decisions flip one sentence at a time: fail when the agreement is below the bar with 95%
    # confidence (its Wilson upper bound is under it), not on one unlucky flip in 100.
    p = stats.get("probe")
    if p and p["agreement_upper95"] < thresholds.get("agreement_min", 0.0):
        out.append(
            f"probe agreement {p['agreement']:.4f} (95% upper bound {p['agreement_upper95']:.4f}) "
            f"< {thresholds['agreement_min']}"
        )
    if not stats.get("token_ids_match_reference", True):
        out.append("token ids differ from the reference's (vocab or casing mismatch)")
    return out


def write_report(report: VerifyReport, curves: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "verify.json", json.dumps(report, indent=1).encode())
    lines = [
        f"# verify {report['bundle']}",
        "",
        f"{report['texts']} sentences, seq {report['seq_length']}, reference `{report['reference']}`, "
        f"thresholds {report['thresholds']}",
        "",
        "| format | output | cos mean | cos min | cos p1 | max-abs | rel. err mean |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fmt, s in report["formats"].items():
        for o in ("pooled_output", "mean_pooled", "sequence_output"):
            c = s[o]["cosine"]
            lines.append(
                f"| {fmt} | {o} | {c['mean']:.5f} | {c['min']:.5f} | {c['p1']:.5f} | {s[o]['max_abs']:.2e} | "
                f"{s[o]['relative_error']['mean']:.2e} |"
            )
    for fmt, s in report["formats"].items():
        if "probe" in s:
            p = s["probe"]
            lines.append(
                f"\n{fmt} probe ({p['train']} train / {p['test']} test, logistic regression on reference "
                f"mean-pooled embeddings): reference {p['reference_accuracy']:.4f}, bundle "
                f"{p['bundle_accuracy']:.4f}, agreement {p['agreement']:.4f}"
            )
        lines.append(f"\n{fmt}: {'PASSED' if s['passed'] else 'FAILED: ' + '; '.join(s['misses'])}")
    lines += [
        "",
        "Per-layer drift (each layer's output at the real tokens vs the reference's; the model run with its "
        "layer outputs tapped, same kernels):",
        "",
        "| format | layer | token cos mean | cos p1 | cos min | rel. err mean |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for fmt, s in report["formats"].items():
        drift = s.get("per_layer") or {}
        if not drift.get("available"):
            lines.append(f"| {fmt} | not available: {drift.get('reason', 'not measured')} | | | | |")
            continue
        for i, layer in enumerate(drift["layers"]):
            c = layer["cosine"]
            lines.append(
                f"| {fmt} | {i} | {c['mean']:.6f} | {c['p1']:.6f} | {c['min']:.6f} | "
                f"{layer['relative_error']['mean']:.2e} |"
            )
    atomic_write_bytes(out / "verify.md", ("\n".join(lines) + "\n").encode())
    _plot(curves, report, out / "verify.png")


def _plot(curves: dict, report: VerifyReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4))
    for ax, output in zip(axes, ("pooled_output", "mean_pooled")):
        for fmt, c in curves.items():
            ax.hist(1.0 - np.clip(c[output], -1, 1), bins=40, alpha=0.6, label=fmt, log=True)
        ax.axvline(1.0 - report["thresholds"]["cosine_min"], color="red", linestyle="--", label="gate (min)")
        ax.set_xlabel(f"1 - cosine vs reference ({output})")
        ax.set_ylabel("sentences")
        ax.legend()
    ax = axes[2]
    for fmt, s in report["formats"].items():
        drift = s.get("per_layer") or {}
        if drift.get("available"):
            layers = np.arange(len(drift["layers"]))
            mean = [1.0 - d["cosine"]["mean"] for d in drift["layers"]]
            low = [1.0 - d["cosine"]["p1"] for d in drift["layers"]]
            (line,) = ax.plot(layers, np.maximum(mean, 1e-9), marker="o", label=f"{fmt} mean")
            ax.plot(
                layers,
                np.maximum(low, 1e-9),
                marker=".",
                linestyle=":",
                color=line.get_color(),
                label=f"{fmt} 1st percentile",
            )
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("1 - token cosine vs reference")
    ax.set_title("per-layer drift")
    if ax.lines:
        ax.legend()
    fig.suptitle(f"{Path(report['bundle']).name}: {report['texts']} sentences")
    fig.tight_layout()
    tmp = path.with_suffix(".png.partial")
    fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    tmp.replace(path)


def record_in_manifest(bundle: Path, report: VerifyReport) -> None:
    """Adds the verify summary to ``edgebert.json`` (rewritten atomically)."""
    manifest = read_manifest(bundle)
    manifest.verify = {
        "created": report["created"],
        "texts": report["texts"],
        "passed": report["passed"],
        "formats": {
            fmt: {
                "cosine_pooled_mean": s["pooled_output"]["cosine"]["mean"],
                "cosine_pooled_min": s["pooled_output"]["cosine"]["min"],
                "cosine_mean_pooled_mean": s["mean_pooled"]["cosine"]["mean"],
                "agreement": s.get("probe", {}).get("agreement"),
                "layer_cosine_mean": [round(d["cosine"]["mean"], 6) for d in s["per_layer"]["layers"]]
                if (s.get("per_layer") or {}).get("available")
                else None,
                "passed": s["passed"],
            }
            for fmt, s in report["formats"].items()
        },
    }
    write_manifest(bundle, manifest)
