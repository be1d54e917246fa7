"""``python -m benchmarks run [--quick] [--large] [--models a,b] [--variants ...] [-o DIR]``.

``--quick`` (under 10 minutes here): the default model and the BERT-base shape; TensorFlow
fp32, TFLite and ONNX fp32 and dynamic int8; lengths 16 and 128; one round (``--rounds N``). Without it: also the Small
BERT L4/H512 shape, every variant, lengths 16/64/128/512, two rounds; ``--large`` adds the
BERT-large shape. Exported bundles are kept under ``DIR/work`` and reused by later runs.

``python -m benchmarks export-cost [--models default,base,multilingual,large] [-o DIR]``: cold
``export --int8`` time and peak memory per step, verify on 500 sentences, runtime RSS
(``benchmarks/export_cost.py``); ``--check`` exports again and fails when a step's peak grew over
10% on the committed records.

``python -m benchmarks profile [--models default,base] [--recipe R] [--seq N] [-o DIR]``: LiteRT's
and ONNX Runtime's own profiles per op type and per layer (``benchmarks/profile.py``).

``python -m benchmarks onnx-forms [--models default,base] [--seq N] [-o DIR]``: every ONNX graph
form and int8 kernel the exporter chose between, timed side by side (``benchmarks/onnx_forms.py``).

``python -m benchmarks ab BUNDLE_A BUNDLE_B [--backend tflite|onnx] [--seq N]``: two bundles
timed interleaved in one process through the runtime (``benchmarks/ab.py``).

``python -m benchmarks buckets [--sentences N] [-o DIR]``: real-text throughput at batch 1 of a
length-bucketed bundle vs one fixed at 128 (``benchmarks/buckets.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import ab, buckets, export_cost, onnx_forms, profile, report, suite


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the suite")
    r.add_argument("--quick", action="store_true", help="the small plan (under 10 minutes on 2 cores)")
    r.add_argument("--large", action="store_true", help="add the BERT-large shape")
    r.add_argument("--models", help=f"comma-separated subset of {', '.join(suite.MODELS)}")
    r.add_argument("--variants", help="comma-separated variant names (see benchmarks/suite.py VARIANTS)")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--rounds", type=int, help="fresh processes per variant (default: 1 with --quick, else 2)")
    r.add_argument("-o", "--output", type=Path, default=suite.RESULTS)
    ec = sub.add_parser("export-cost", help="export time and peak memory per step, cold, --int8")
    ec.add_argument(
        "--models",
        default="default,base,multilingual,large",
        help="comma-separated subset of default, small, base, multilingual, large",
    )
    ec.add_argument("-o", "--output", type=Path, default=suite.RESULTS / "export_cost")
    ec.add_argument(
        "--runtime-only",
        action="store_true",
        help="measure the runtime RSS of the bundles the last run wrote again (no export)",
    )
    ec.add_argument(
        "--check",
        action="store_true",
        help="export again and fail if any step's peak grew over 10%% on the committed records (records kept)",
    )
    bk = sub.add_parser("buckets", help="length buckets vs fixed 128: real-text throughput at batch 1")
    bk.add_argument("--sentences", type=int, default=1000)
    bk.add_argument("--rounds", type=int, default=3)
    bk.add_argument("-o", "--output", type=Path, default=suite.RESULTS / "buckets")
    pf = sub.add_parser("profile", help="each runtime's own profile per op type and per layer (TFLite and ONNX)")
    pf.add_argument("--models", default="default,base", help=f"comma-separated subset of {', '.join(suite.MODELS)}")
    pf.add_argument("--recipe", default="wi8_afp32")
    pf.add_argument("--seq", type=int, default=128)
    pf.add_argument("--threads", type=int, default=2)
    pf.add_argument("-o", "--output", type=Path, default=suite.RESULTS / "profile")
    of = sub.add_parser("onnx-forms", help="ONNX graph forms and int8 kernels, timed side by side")
    of.add_argument("--models", default="default,base", help=f"comma-separated subset of {', '.join(suite.MODELS)}")
    of.add_argument("--seq", type=int, default=128)
    of.add_argument("--threads", type=int, default=2)
    of.add_argument("-o", "--output", type=Path, default=suite.RESULTS / "onnx_forms")
    abp = sub.add_parser("ab", help="two bundles timed interleaved in one process")
    abp.add_argument("bundles", nargs=2)
    abp.add_argument("--backend", default="tflite", choices=("tflite", "onnx"))
    abp.add_argument("--seq", type=int, default=128)
    abp.add_argument("--rounds", type=int, default=15)
    abp.add_argument("--calls", type=int, default=10)
    abp.add_argument("--threads", type=int, default=2)
    rp = sub.add_parser("report", help="write the Markdown table and plots again from a results JSON")
    rp.add_argument("json", type=Path)
    args = ap.parse_args(argv)
    if args.command == "export-cost" and args.check:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        return export_cost.check(models, args.output, suite.RESULTS / "export_cost" / "export_cost.json")
    if args.command == "export-cost":
        command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
        export_cost.main(
            [m.strip() for m in args.models.split(",") if m.strip()],
            args.output,
            command,
            runtime_only=args.runtime_only,
        )
        return 0
    if args.command == "buckets":
        command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
        buckets.main(args.output, args.sentences, args.rounds, command=command)
        return 0
    if args.command == "profile":
        command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        profile.main(models, args.recipe, args.seq, args.threads, args.output, command)
        return 0
    if args.command == "onnx-forms":
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        onnx_forms.run(models, args.seq, args.threads, args.output)
        return 0
    if args.command == "ab":
        ab.run(list(args.bundles), args.backend, args.seq, args.rounds, args.calls, args.threads)
        return 0
    if args.command == "report":
        res = json.loads(args.json.read_text())
        for model in res["models"].values():  # JSON made the sequence lengths strings
            for r in model["variants"].values():
                for key in ("latency", "speedup_vs_tf"):
                    if key in r:
                        r[key] = {int(k): v for k, v in r[key].items()}
        md = report.markdown(res, res.get("command", "python -m benchmarks run"))
        args.json.with_suffix(".md").write_text(md)
        report.plots(res, args.json.parent, args.json.stem)
        print(md)
        return 0
    plan = suite.make_plan(args)
    res = suite.run(plan)
    res["command"] = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    plan.out.mkdir(parents=True, exist_ok=True)
    name = "benchmarks_quick" if args.quick else "benchmarks"
    (plan.out / f"{name}.json").write_text(json.dumps(res, indent=1))
    md = report.markdown(res, res["command"])
    (plan.out / f"{name}.md").write_text(md)
    report.plots(res, plan.out, name)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
