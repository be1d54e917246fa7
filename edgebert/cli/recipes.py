"""The ``edgebert recipes`` command: the quantization recipes, or one as a file to edit."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    r = subparsers.add_parser("recipes", help="list the quantization recipes")
    r.add_argument(
        "--show",
        metavar="RECIPE",
        help="print one recipe as JSON, renamed my_RECIPE: edit it and pass the file to export --recipe",
    )
    r.set_defaults(func=run)
    return r


def run(args: argparse.Namespace) -> int:
    from edgebert.quantize import recipes

    if args.show:  # one recipe as a file of its own: the start of a custom recipe
        r = recipes.get(args.show).to_json()
        r.pop("path", None)
        print(
            json.dumps({**r, "name": f"my_{r['name']}" if args.show in recipes.all_recipes() else r["name"]}, indent=1)
        )
        return 0
    for r in recipes.all_recipes().values():
        t = r.thresholds
        print(
            f"{r.name:16s} {','.join(r.formats):12s} gate cos mean>={t['cosine_mean']} min>={t['cosine_min']}"
            f"  {r.description}"
        )
    return 0
