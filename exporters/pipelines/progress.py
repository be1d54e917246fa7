"""Progress lines of the long commands (export, verify, android, finetune), on stderr so that
stdout stays the command's result."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Ticker:
    """Progress of a counted step (sentences run through a model).

    Says ``label: done/total unit (rate/s, about N s left)`` at most every ``every_s`` seconds,
    so a fast step stays quiet and a slow one (int16 reference kernels: seconds a sentence)
    shows that it moves; and a last line at the end when it has said anything.
    """

    def __init__(
        self, label: str, total: int, unit: str = "sentences", say: Callable[[str], None] = say, every_s: float = 15.0
    ):
        self.label, self.total, self.unit, self._say, self.every_s = label, total, unit, say, every_s
        self.done = 0
        self._start = self._last = time.monotonic()
        self._spoken = False

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last < self.every_s and not (self._spoken and self.done >= self.total):
            return
        self._last, self._spoken = now, True
        rate = self.done / max(now - self._start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        tail = f", about {left:.0f} s left" if self.done < self.total else f", {now - self._start:.0f} s"
        self._say(f"  {self.label}: {self.done}/{self.total} {self.unit} ({rate:.2f}/s{tail})")
