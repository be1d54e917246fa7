"""The ``edgebert`` command line. Export-side commands import TensorFlow only when run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edgebert.errors import EdgebertError

MODEL_COLUMNS = ("handle", "layers", "hidden", "heads", "intermediate", "casing", "language",
                 "vocab_size", "format")


def _cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from edgebert import catalog

    rows = catalog.filter_models(layers=args.layers, hidden=args.hidden, casing=args.casing,
                                 language=args.language, fmt=args.format, contains=args.grep)
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in rows], indent=1))
        return 0
    table = [MODEL_COLUMNS] + [tuple(str(getattr(m, c)) for c in MODEL_COLUMNS) for m in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(MODEL_COLUMNS))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(rows)} models", file=sys.stderr)
    return 0


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF raises real errors; its logs are noise here
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def _cmd_export(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    try:
        from edgebert.exporters.reference import build_reference
        from edgebert.exporters.sources import load_source
    except ImportError as e:
        raise EdgebertError(f"exporting needs the export extra ({e.name} is missing)",
                            "pip install 'edgebert[export]'") from None
    from edgebert import default_model

    source = args.source or str(default_model.model_dir())
    label = args.source or f"{default_model.NAME} (embedded default)"
    print(f"reading {label}", file=sys.stderr)
    src = load_source(source)
    out = Path(args.output)
    ref = build_reference(src, out / "reference")
    shapes = _reference_shapes(ref)
    c = ref.config
    print(f"source:    {label} [{src.kind}]")
    print(f"model:     L={c.num_layers} H={c.hidden_size} A={c.num_heads} I={c.intermediate_size} "
          f"vocab={c.vocab_size} activation={c.activation} do_lower_case={ref.do_lower_case}")
    where = "the source itself (a TF Hub encoder SavedModel)" if ref.max_abs_vs_source is None else ""
    print(f"reference: {ref.path} {where}".rstrip())
    print(f"sha256:    {ref.sha256}")
    if ref.max_abs_vs_source is not None:
        print(f"verified:  max-abs {ref.max_abs_vs_source:.2e} vs the source's own outputs")
    for name, shape in shapes.items():
        print(f"  {name}: {shape}")
    return 0


def _reference_shapes(ref) -> dict:
    """Output shapes for one input of TF Hub preprocessing's 128 tokens (or max_position)."""
    import numpy as np

    from edgebert.exporters.sources.saved_model_util import load_saved_model
    from edgebert.exporters.sources.tf2_saved_model import run_encoder

    ids = np.zeros((1, min(128, ref.config.max_position)), np.int32)
    out = run_encoder(load_saved_model(ref.path), ids, np.ones_like(ids), np.zeros_like(ids))
    shapes = {k: tuple(v.shape) for k, v in out.items() if k != "encoder_outputs"}
    shapes["encoder_outputs"] = f"{len(out['encoder_outputs'])} x {tuple(out['encoder_outputs'][0].shape)}"
    return shapes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgebert", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list the TF Hub BERT collection")
    m.add_argument("--layers", type=int, help="only models with this many layers")
    m.add_argument("--hidden", type=int, help="only models with this hidden size")
    m.add_argument("--casing", choices=["cased", "uncased"])
    m.add_argument("--language", choices=["en", "zh", "multi"])
    m.add_argument("--format", choices=["tf2_saved_model", "tf1_hub_module"])
    m.add_argument("--grep", help="only handles containing this text")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(func=_cmd_models)

    e = sub.add_parser("export", help="import a model into the reference SavedModel")
    e.add_argument("source", nargs="?", help="catalog handle or model directory "
                   "(default: the embedded all-MiniLM-L6-v2)")
    e.add_argument("-o", "--output", default="edgebert-out", help="output directory (default: %(default)s)")
    e.set_defaults(func=_cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgebertError as e:
        print(f"edgebert: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgebert: interrupted; nothing was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
