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
import json
import tempfile
from pathlib import Path

import numpy as np

from edgebert import linear_probe, metrics
from edgebert.errors import EdgebertError
from edgebert.exporters.export import _progress, run_worker
from edgebert.exporters.files import atomic_write_bytes
from edgebert.quantize.calibration import is_number
from edgebert.runtime import MANIFEST, load, read_manifest

PERCENTILES = (1, 5, 50)
NEUTRAL_BAND = 0.5  # ../shared/data/sentiment/README: binary labels drop |score| < 0.5



@dataclasses.dataclass
class VerifyRequest:
    bundle: Path
    texts: list[str]
    labels: list[int] | None = None
    reference: Path | None = None
    output: Path | None = None
    formats: tuple[str, ...] | None = None
    seq_length: int = 128


def read_texts(path: Path, labels_path: Path | None = None) -> tuple[list[str], list[int] | None]:
    """Sentences, one a line, or ``id<TAB>score<TAB>text`` (labels: the score's sign; scores
    within ``NEUTRAL_BAND`` of 0 dropped; a header line skipped)."""
    if not path.is_file():
        raise EdgebertError(f"texts file {path} not found", "pass one sentence a line, or id<TAB>score<TAB>text")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise EdgebertError(f"texts file {path} is empty", "pass one sentence a line")
    labels = None
    rows = [ln.split("\t", 2) for ln in lines]
    if rows and len(rows[0]) == 3 and not is_number(rows[0][1]):
        rows, lines = rows[1:], lines[1:]  # a header (id, sentiment, text)
    if lines and all(len(r) == 3 and is_number(r[1]) for r in rows):
        # The sentiment corpus convention: the score's sign, dropping |score| < NEUTRAL_BAND.
        scored = [(float(r[1]), r[2]) for r in rows if abs(float(r[1])) >= NEUTRAL_BAND and r[2].strip()]
        texts, labels = [t for _, t in scored], [int(s_ > 0) for s_, _ in scored]
    else:
        texts = lines
    if labels_path is not None:
        raw = [ln.strip() for ln in labels_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(raw) != len(texts):
            raise EdgebertError(f"{labels_path} has {len(raw)} labels for {len(texts)} texts", "one label a line")
        names = sorted(set(raw))
        labels = [names.index(x) for x in raw]
    return texts, labels


def _error_stats(got: np.ndarray, ref: np.ndarray) -> dict:
    cos = metrics.cosine(got, ref)
    rel = np.linalg.norm(got - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-12)
    return {"cosine": {"mean": float(cos.mean()), "min": float(cos.min()),
                       **{f"p{p}": float(np.percentile(cos, p)) for p in PERCENTILES}},
            "max_abs": float(np.abs(got - ref).max()),
            "relative_error": {"mean": float(rel.mean()), "max": float(rel.max())}}


def compare_outputs(got: dict, ref: dict, mask: np.ndarray) -> tuple[dict, dict]:
    """Per-output statistics, and the per-sentence cosines (for the plot)."""
    width = min(got["sequence_output"].shape[1], ref["sequence_output"].shape[1])
    m = mask[:, :width].astype(bool)
    gs, rs = got["sequence_output"][:, :width], ref["sequence_output"][:, :width]
    gm, rm = metrics.mean_pool(gs, m), metrics.mean_pool(rs, m)
    stats = {"pooled_output": _error_stats(got["pooled_output"], ref["pooled_output"]),
             "mean_pooled": _error_stats(gm, rm),
             "sequence_output": _error_stats(gs[m], rs[m]),
             "per_layer": None}  # bundles export pooled and sequence outputs only
    per_sentence = {"pooled_output": metrics.cosine(got["pooled_output"], ref["pooled_output"]),
                    "mean_pooled": metrics.cosine(gm, rm)}
    return stats, per_sentence


def probe(ref_emb: np.ndarray, got_emb: np.ndarray, labels: list[int]) -> dict:
    """Trains on reference embeddings (80%, L2 picked inside it), scores both on the other 20%."""
    y = np.asarray(labels)
    fitted = linear_probe.select_and_fit(ref_emb, y)
    te = fitted["held"]
    pr = linear_probe.predict(fitted["kernel"], fitted["bias"], ref_emb[te])
    pg = linear_probe.predict(fitted["kernel"], fitted["bias"], got_emb[te])
    agreement = float((pr == pg).mean())
    return {"train": int(len(fitted["train"])), "test": int(len(te)), "embedding": "mean_pooled", "l2": fitted["l2"],
            "reference_accuracy": float((pr == y[te]).mean()), "bundle_accuracy": float((pg == y[te]).mean()),
            "agreement": agreement, "agreement_upper95": linear_probe.wilson_upper(agreement, len(te))}


def verify(req: VerifyRequest, progress=_progress) -> dict:
    manifest = read_manifest(req.bundle)
    reference = Path(req.reference or manifest["reference"]["path"])
    if not reference.exists():
        raise EdgebertError(f"reference SavedModel {reference} not found (the manifest records where export wrote it)",
                            "pass --reference PATH, or export the bundle again on this machine")
    if not req.texts:
        raise EdgebertError("no texts to verify on", "pass --texts FILE")
    formats = req.formats or tuple(manifest["models"])
    thresholds = manifest["recipe"]["thresholds"]
    with tempfile.TemporaryDirectory(prefix="edgebert-verify-") as work:
        progress(f"[1/{len(formats) + 1}] running the reference SavedModel on {len(req.texts)} sentences")
        run_worker({"task": "reference", "source": str(reference), "reference_dir": str(reference),
                    "held_out": req.texts, "seq_length": req.seq_length,
                    "outputs_npz": str(Path(work) / "ref.npz")}, Path(work))
        ref = dict(np.load(Path(work) / "ref.npz"))
    report = {"bundle": str(req.bundle), "reference": str(reference), "texts": len(req.texts),
              "seq_length": req.seq_length, "thresholds": thresholds,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "formats": {}}
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
        got = m.encode(req.texts, seq_length=req.seq_length)
        stats, per_sentence = compare_outputs(got, ref, ref["input_mask"])
        stats["token_ids_match_reference"] = bool(np.array_equal(feeds["input_word_ids"],
                                                                 ref["input_word_ids"][:, :width]))
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
            line += (f", probe accuracy {p['reference_accuracy']:.3f} (reference) / {p['bundle_accuracy']:.3f} "
                     f"(bundle), agreement {p['agreement']:.4f}")
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
        out.append(f"probe agreement {p['agreement']:.4f} (95% upper bound {p['agreement_upper95']:.4f}) "
                   f"< {thresholds['agreement_min']}")
    if not stats.get("token_ids_match_reference", True):
        out.append("token ids differ from the reference's (vocab or casing mismatch)")
    return out


def write_report(report: dict, curves: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "verify.json", json.dumps(report, indent=1).encode())
    lines = [f"# verify {report['bundle']}", "",
             f"{report['texts']} sentences, seq {report['seq_length']}, reference `{report['reference']}`, "
             f"thresholds {report['thresholds']}", "",
             "| format | output | cos mean | cos min | cos p1 | max-abs | rel. err mean |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for fmt, s in report["formats"].items():
        for o in ("pooled_output", "mean_pooled", "sequence_output"):
            c = s[o]["cosine"]
            lines.append(f"| {fmt} | {o} | {c['mean']:.5f} | {c['min']:.5f} | {c['p1']:.5f} | {s[o]['max_abs']:.2e} | "
                         f"{s[o]['relative_error']['mean']:.2e} |")
    for fmt, s in report["formats"].items():
        if "probe" in s:
            p = s["probe"]
            lines.append(f"\n{fmt} probe ({p['train']} train / {p['test']} test, logistic regression on reference "
                         f"mean-pooled embeddings): reference {p['reference_accuracy']:.4f}, bundle "
                         f"{p['bundle_accuracy']:.4f}, agreement {p['agreement']:.4f}")
        lines.append(f"\n{fmt}: {'PASSED' if s['passed'] else 'FAILED: ' + '; '.join(s['misses'])}")
    lines.append("\nPer-layer drift: not available (bundles export pooled and sequence outputs only).")
    atomic_write_bytes(out / "verify.md", ("\n".join(lines) + "\n").encode())
    _plot(curves, report, out / "verify.png")


def _plot(curves: dict, report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, output in zip(axes, ("pooled_output", "mean_pooled")):
        for fmt, c in curves.items():
            ax.hist(1.0 - np.clip(c[output], -1, 1), bins=40, alpha=0.6, label=fmt, log=True)
        ax.axvline(1.0 - report["thresholds"]["cosine_min"], color="red", linestyle="--", label="gate (min)")
        ax.set_xlabel(f"1 - cosine vs reference ({output})")
        ax.set_ylabel("sentences")
        ax.legend()
    fig.suptitle(f"{Path(report['bundle']).name}: {report['texts']} sentences")
    fig.tight_layout()
    tmp = path.with_suffix(".png.partial")
    fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    tmp.replace(path)


def record_in_manifest(bundle: Path, report: dict) -> None:
    """Adds the verify summary to ``edgebert.json`` (rewritten atomically)."""
    manifest = read_manifest(bundle)
    manifest["verify"] = {
        "created": report["created"], "texts": report["texts"], "passed": report["passed"],
        "formats": {fmt: {"cosine_pooled_mean": s["pooled_output"]["cosine"]["mean"],
                          "cosine_pooled_min": s["pooled_output"]["cosine"]["min"],
                          "cosine_mean_pooled_mean": s["mean_pooled"]["cosine"]["mean"],
                          "agreement": s.get("probe", {}).get("agreement"), "passed": s["passed"]}
                    for fmt, s in report["formats"].items()}}
    atomic_write_bytes(bundle / MANIFEST, json.dumps(manifest, indent=1).encode())


