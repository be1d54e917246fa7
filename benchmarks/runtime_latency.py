"""Runtime speed of bundles through ``edgebert.load``: cold start, per-call latency, real-text
throughput (dynamic padding vs a fixed length), and peak RSS of a process that only runs it.

    python benchmarks/runtime_latency.py BUNDLE [BUNDLE ...] [--threads 2] [-o out/runtime]

Each measurement runs in a fresh process (``python -c``), so import, load and RSS are what
a device process sees. Variants are interleaved round by round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from edgebert.model.bundle import read_manifest

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"

PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import edgebert
from edgebert.exporters.convert.costs import peak_gb  # VmHWM: ru_maxrss keeps a forking parent's pages
m = edgebert.load(sys.argv[1], backend=sys.argv[2], num_threads=int(sys.argv[3]))
m.embed("The movie was great")
cold = time.perf_counter() - t0
lat = []
for _ in range(50):
    t = time.perf_counter(); m.embed("The movie was great, and the actors were even better."); lat.append(time.perf_counter() - t)
texts = [l.split("\t")[2] for l in open(sys.argv[4], encoding="utf-8").read().splitlines()[1:] if l.count("\t") >= 2][:2000]
t = time.perf_counter(); m.embed(texts); thr = len(texts) / (time.perf_counter() - t)
lat.sort()
print(json.dumps({"cold_start_s": cold, "p50_ms": lat[len(lat) // 2] * 1e3, "p90_ms": lat[int(len(lat) * 0.9)] * 1e3,
                  "sentences_per_s": thr, "peak_rss_mb": peak_gb() * 1e3,
                  "tensorflow_imported": "tensorflow" in sys.modules, "seq": m.seq_length or "dynamic"}))
"""


def measure(bundle: Path, backend: str, threads: int) -> dict:
    p = subprocess.run(
        [sys.executable, "-c", PROBE, str(bundle), backend, str(threads), str(SENTENCES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=ROOT / "out" / "runtime")
    args = ap.parse_args(argv)
    variants = []
    for b in args.bundles:
        manifest = read_manifest(b)
        variants += [(b, fmt) for fmt in manifest.models]
    runs: dict = {f"{b.name}/{fmt}": [] for b, fmt in variants}
    for _ in range(args.rounds):
        for b, fmt in variants:
            runs[f"{b.name}/{fmt}"].append(measure(b, fmt, args.threads))
    rows = {}
    for key, rs in runs.items():
        rows[key] = {
            k: statistics.median(r[k] for r in rs)
            for k in rs[0]
            if isinstance(rs[0][k], (int, float)) and not isinstance(rs[0][k], bool)
        }
        rows[key]["seq"] = rs[0]["seq"]
        rows[key]["tensorflow_imported"] = any(r["tensorflow_imported"] for r in rs)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(rows, indent=1))
    md = [
        f"threads {args.threads}, medians of {args.rounds} fresh processes",
        "",
        "| bundle/format | seq | cold start s | call p50 ms | call p90 ms | sentences/s (2,000 real) | peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in rows.items():
        md.append(
            f"| {key} | {r['seq']} | {r['cold_start_s']:.2f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['sentences_per_s']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    (args.output / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    _plot(rows, args.output / "throughput.png")
    return 0


def _plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(rows)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh(keys, [rows[k]["sentences_per_s"] for k in keys])
    ax.set_xlabel("sentences/s on 2,000 movie-review sentences")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
