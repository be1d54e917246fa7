"""The ``edgebert verify`` command: a bundle against its fp32 reference (TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebert.cli import common


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    v = subparsers.add_parser("verify", help="compare a bundle with its fp32 reference SavedModel (report + exit code)")
    v.add_argument("bundle", help="bundle directory")
    v.add_argument("--reference", help="reference SavedModel (default: the one in the bundle's manifest)")
    v.add_argument(
        "--texts",
        help="one sentence a line, or id<TAB>score<TAB>text (the score's sign gives labels); "
        "default: the bundled calibration corpus",
    )
    v.add_argument("--labels", help="one label a line, for the probe (with one-sentence-a-line texts)")
    v.add_argument("--limit", type=int, help="use only the first N sentences")
    v.add_argument("--format", help="formats to check (default: all in the bundle)")
    v.add_argument("--seq-len", type=int, default=128, help="tokenize to this length (default: %(default)s)")
    v.add_argument("-o", "--output", help="report directory (default: BUNDLE/verify)")
    v.set_defaults(func=run)
    return v


def run(args: argparse.Namespace) -> int:
    with common.export_side("verify (it runs the reference SavedModel)"):
        from edgebert.eval.text_files import read_texts
        from edgebert.exporters.pipelines.verify import VerifyRequest, verify
    from edgebert.quantize import calibration

    if args.texts:
        texts, labels = read_texts(Path(args.texts), Path(args.labels) if args.labels else None)
    else:
        texts, labels = calibration.read_texts(None), None
    if args.limit:
        texts, labels = texts[: args.limit], (labels[: args.limit] if labels else None)
    formats = tuple(f.strip() for f in args.format.split(",")) if args.format else None
    out = Path(args.output) if args.output else Path(args.bundle) / "verify"
    report = verify(
        VerifyRequest(
            bundle=Path(args.bundle),
            texts=texts,
            labels=labels,
            reference=Path(args.reference) if args.reference else None,
            output=out,
            formats=formats,
            seq_length=args.seq_len,
        )
    )
    print(f"report: {out}/verify.md, verify.json, verify.png")
    for fmt, s in report["formats"].items():
        c, mp = s["pooled_output"]["cosine"], s["mean_pooled"]["cosine"]
        extra = f"  agreement {s['probe']['agreement']:.4f}" if "probe" in s else ""
        print(
            f"  {fmt:7s} cosine pooled {c['mean']:.5f} (min {c['min']:.5f})  mean-pooled {mp['mean']:.5f} "
            f"(min {mp['min']:.5f}){extra}  {'passed' if s['passed'] else 'FAILED: ' + '; '.join(s['misses'])}"
        )
    return 0 if report["passed"] else 2
