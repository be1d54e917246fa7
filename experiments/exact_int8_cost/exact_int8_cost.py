"""What the exact int8 form costs: one ONNX int8 file run as stored (u8 x s8) and re-signed
(u8 x u8, ``edgebert.formats.onnx_exact_int8``), interleaved in one process, batch 1, seq 128.

    .venv/bin/python experiments/exact_int8_cost/exact_int8_cost.py BUNDLE/model.onnx [rounds]

On a CPU whose u8 x s8 kernel is exact (VNNI, Arm) the stored form is what the runner runs;
on x86 without VNNI the stored form's numbers are wrong (saturating int16 sums) and this only
says what exactness costs in time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import edgebert
    from edgebert.runtime import runners as backends

    path = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    feeds = edgebert.load(path.parent, backend="onnx", num_threads=2).tokenize(["word " * 300], None, 128)
    runners = {form: backends.open_runner(path, num_threads=2, exact_int8=form) for form in (False, True)}
    for r in runners.values():
        for _ in range(5):
            r.run(feeds)
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(rounds):
        for form in (False, True) if i % 2 == 0 else (True, False):
            for _ in range(10):
                t = time.perf_counter()
                runners[form].run(feeds)
                times[form].append(time.perf_counter() - t)
    for form, ts in times.items():
        name = "re-signed u8 x u8" if form else "stored u8 x s8"
        print(f"{name}: p50 {np.median(ts) * 1e3:.2f} ms (p10 {np.percentile(ts, 10) * 1e3:.2f})")


if __name__ == "__main__":
    main()
