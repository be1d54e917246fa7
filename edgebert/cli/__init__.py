"""The ``edgebert`` command line. Export-side commands import TensorFlow only when run."""

from __future__ import annotations

import argparse
import sys

from edgebert.cli import android, export, finetune, models, recipes, run, verify
from edgebert.errors import EdgebertError

# In the order `edgebert --help` lists them; each module has add_parser(subparsers) and run(args).
COMMANDS = (models, recipes, export, finetune, android, verify, run)


class _Parser(argparse.ArgumentParser):
    run_parser: argparse.ArgumentParser  # `run` re-parses its texts intermixed with the flags


def build_parser() -> _Parser:
    p = _Parser(prog="edgebert", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        parser = command.add_parser(sub)
        if command is run:
            p.run_parser = parser
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        # Texts may come before or after the flags (argparse alone stops at the first flag).
        args = parser.run_parser.parse_intermixed_args(argv[1:])
    else:
        args = parser.parse_args(argv)
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
