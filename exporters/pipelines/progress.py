"""Progress lines of the long commands (export, verify, android, finetune), on stderr so that
stdout stays the command's result."""

from __future__ import annotations

import sys


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
