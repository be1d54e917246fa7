"""The ``edgebert models`` command: the TF Hub BERT collection as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

MODEL_COLUMNS = ("handle", "layers", "hidden", "heads", "intermediate", "casing", "language", "vocab_size", "format")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    m = subparsers.add_parser("models", help="list the TF Hub BERT collection")
    m.add_argument("--layers", type=int, help="only models with this many layers")
    m.add_argument("--hidden", type=int, help="only models with this hidden size")
    m.add_argument("--casing", choices=["cased", "uncased"])
    m.add_argument("--language", choices=["en", "zh", "multi"])
    m.add_argument("--format", choices=["tf2_saved_model", "tf1_hub_module"])
    m.add_argument("--grep", help="only handles containing this text")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(func=run)
    return m


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from edgebert.hub import catalog

    filters = {"layers": "layers", "hidden": "hidden", "casing": "casing", "language": "language", "fmt": "format"}
    rows = catalog.filter_models(contains=args.grep, **{k: getattr(args, flag) for k, flag in filters.items()})
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in rows], indent=1))
        return 0
    table = [MODEL_COLUMNS] + [tuple(str(getattr(m, c)) for c in MODEL_COLUMNS) for m in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(MODEL_COLUMNS))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(rows)} models", file=sys.stderr)
    return 0
