"""``python -m benchmarks run [--quick] [--large]``: the numbers a user compares edgebert with.

For each model (the embedded default; BERT-base and Small BERT L4/H512 shapes with random
weights and the real uncased vocab; BERT-large in ``--large``) and each variant (TensorFlow
running the fp32 SavedModel, the baseline; TFLite fp32 / fp16 / dynamic int8 / full int8;
ONNX fp32 / dynamic int8 / static int8, through ``edgebert.load``) it measures, in fresh
processes, interleaving variants round by round so drift hits all alike: latency p50/p90 at
batch 1 for exact sequence lengths, real-text throughput with dynamic padding and padded to
128, file size, peak RSS of a process that only loads and runs, cold start (process start to
first result), export time and export peak RSS; plus a roofline point: the model's int8
multiply-accumulates per second against a single large int8 matrix product on the same
backend and threads. Writes ``results/benchmarks.json``, ``results/benchmarks.md`` and PNGs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edgebert.model.bundle import is_bundle, read_manifest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "sentiment" / "movieReviewSnippets_GroundTruth.txt"
RESULTS = ROOT / "benchmarks" / "results"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    layers: int = 0  # 0: the embedded default model
    hidden: int = 0
    heads: int = 0

    @property
    def intermediate(self) -> int:
        return 4 * self.hidden


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    backend: str  # tensorflow | tflite | onnx
    recipe: str | None  # None: the TensorFlow baseline


MODELS = {
    "default": ModelSpec("default (MiniLM-L6-H384)"),
    "small": ModelSpec("Small BERT L4-H512", 4, 512, 8),
    "base": ModelSpec("BERT-base shape L12-H768", 12, 768, 12),
    "large": ModelSpec("BERT-large shape L24-H1024", 24, 1024, 16),
}
VARIANTS = [
    Variant("TF SavedModel fp32", "tensorflow", None),
    Variant("TFLite fp32", "tflite", "fp32"),
    Variant("TFLite fp16", "tflite", "wfp16_afp32"),
    Variant("TFLite dynamic int8", "tflite", "wi8_afp32"),
    Variant("TFLite full int8", "tflite", "wi8_ai8"),
    Variant("ONNX fp32", "onnx", "fp32"),
    Variant("ONNX dynamic int8", "onnx", "wi8_afp32"),
    Variant("ONNX static int8", "onnx", "wi8_ai8"),
]
# fp32 of both formats too: issue 20's "ONNX fp32 >= TFLite fp32" is a ratio within one run.
QUICK_VARIANTS = ("TF SavedModel fp32", "TFLite fp32", "TFLite dynamic int8", "ONNX fp32", "ONNX dynamic int8")


@dataclasses.dataclass
class Plan:
    models: list[str]
    variants: list[Variant]
    seqs: list[int]
    reps: int
    rounds: int
    sentences: dict  # model key -> sentences for throughput
    threads: int
    out: Path


def make_plan(args) -> Plan:
    models = (
        args.models.split(",")
        if args.models
        else (["default", "base"] if args.quick else ["default", "small", "base"] + (["large"] if args.large else []))
    )
    variants = [v for v in VARIANTS if not args.quick or v.name in QUICK_VARIANTS]
    if args.variants:
        wanted = [w.strip() for w in args.variants.split(",")]
        variants = [v for v in VARIANTS if v.name in wanted]
    return Plan(
        models=models,
        variants=variants,
        seqs=[16, 128] if args.quick else [16, 64, 128, 512],
        reps=10 if args.quick else 20,
        rounds=args.rounds or (1 if args.quick else 2),
        sentences={m: (2000 if m == "default" else 200) if args.quick else 2000 for m in models},
        threads=args.threads,
        out=args.output,
    )


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- models and bundles
def model_source(key: str, work: Path) -> Path:
    """The default model's directory, or a random-weight BERT of the spec's shape (cached)."""
    from edgebert.hub import default_model

    spec = MODELS[key]
    if not spec.layers:
        return default_model.model_dir()
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures import tiny_models

    path = work / "models" / key
    if not (path / "model.safetensors").exists():
        _progress(f"writing a random-weight {spec.name} (real uncased vocab)")
        tiny_models.make_hf(
            path,
            seed=0,
            vocab_file=default_model.model_dir() / "vocab.txt",
            layers=spec.layers,
            hidden=spec.hidden,
            heads=spec.heads,
            intermediate=spec.intermediate,
            max_position=512,
        )
    return path


def export_bundle(key: str, recipe: str, formats: list[str], work: Path) -> dict:
    """Exports (or reuses) the bundle of ``key`` with ``recipe``; returns its path, manifest and export cost."""
    out = work / "bundles" / key / recipe
    record = out.with_suffix(".export.json")
    if is_bundle(out) and record.exists():
        manifest = read_manifest(out)
        if set(formats) <= set(manifest.models):
            return {"path": out, "manifest": manifest, **json.loads(record.read_text())}
    source = model_source(key, work)
    _progress(f"exporting {key} with {recipe} ({', '.join(formats)})")
    cmd = [
        str(Path(sys.executable).with_name("edgebert")),
        "export",
        str(source),
        "--recipe",
        recipe,
        "--format",
        ",".join(formats),
        "--allow-accuracy-loss",
        "-o",
        str(out),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # ru_maxrss: the largest of the export and its workers
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"export failed: {' '.join(cmd)}")
    cost = {"export_s": round(time.perf_counter() - t0, 1), "export_peak_rss_gb": round(usage.ru_maxrss / 1e6, 2)}
    record.write_text(json.dumps(cost))
    return {"path": out, "manifest": read_manifest(out), **cost}


# ---------------------------------------------------------------- fresh-process probes
def probe(kind: str, **kwargs) -> dict:
    """Runs ``benchmarks.probes`` in a fresh process; adds the cold start the parent saw."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.probes", kind, json.dumps(kwargs)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    cold = None
    lines = []
    for line in proc.stdout:
        if line.startswith("READY") and cold is None:
            cold = time.perf_counter() - t0
        lines.append(line)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise RuntimeError(f"probe {kind} failed: {err[-2000:]}")
    return {**json.loads(lines[-1]), "cold_start_s": cold}


def macs(spec_cfg: dict, seq: int) -> float:
    """Multiply-accumulates of one [1, seq] forward pass (dense layers and attention products)."""
    H, I, L = spec_cfg["hidden_size"], spec_cfg["intermediate_size"], spec_cfg["num_layers"]
    return float(L * (4 * seq * H * H + 2 * seq * H * I + 2 * seq * seq * H) + H * H)


def matmul_models(work: Path, m: int, k: int, n: int) -> dict:
    """One [m, k] x [k, n] product per backend: quantized as the dynamic int8 recipe quantizes
    BERT's (keys ``tflite``, ``onnx``) and in fp32 (``tflite_fp32``, ``onnx_fp32``)."""
    out = work / "roofline"
    stem = f"matmul_{m}x{k}x{n}"
    paths = {
        "tflite": out / f"{stem}.tflite",
        "onnx": out / f"{stem}.onnx",
        "tflite_fp32": out / f"{stem}_fp32.tflite",
        "onnx_fp32": out / f"{stem}_fp32.onnx",
    }
    if all(p.exists() for p in paths.values()):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    code = f"""
import numpy as np, tensorflow as tf, onnx
from pathlib import Path
from edgebert.quantize import recipes, tflite_quant, onnx_quant
w = tf.constant(np.random.default_rng(0).normal(0, 0.05, ({k}, {n})).astype(np.float32))
f = tf.function(lambda x: tf.matmul(x, w), input_signature=[tf.TensorSpec([{m}, {k}], tf.float32)])
r = recipes.get("wi8_afp32")
c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
Path("{paths["tflite_fp32"]}").write_bytes(c.convert())
c = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
tflite_quant.configure(c, r, None)
Path("{paths["tflite"]}").write_bytes(c.convert())
from onnx import TensorProto, helper, numpy_helper
graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")], "matmul",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [{m}, {k}])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [{m}, {n}])],
                          [numpy_helper.from_array(w.numpy(), "w")])
fp32 = Path("{paths["onnx_fp32"]}")
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
onnx_quant.apply(fp32, Path("{paths["onnx"]}"), r, None)
"""
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        capture_output=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    return paths


# ---------------------------------------------------------------- the run
def run(plan: Plan) -> dict:
    work = plan.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": machine(plan.threads),
        "plan": {
            "models": plan.models,
            "seqs": plan.seqs,
            "reps": plan.reps,
            "rounds": plan.rounds,
            "threads": plan.threads,
            "sentences": plan.sentences,
        },
        "models": {},
    }
    t_start = time.perf_counter()
    for key in plan.models:
        bundles = {}
        for recipe in sorted({v.recipe for v in plan.variants if v.recipe}):
            formats = sorted({v.backend for v in plan.variants if v.recipe == recipe})
            bundles[recipe] = export_bundle(key, recipe, formats, work)
        any_manifest = next(iter(bundles.values()))["manifest"]
        ref = any_manifest.reference["path"]
        rows = {v.name: [] for v in plan.variants}
        for rnd in range(plan.rounds):
            for v in plan.variants:  # interleaved: one process per variant per round
                _progress(f"[{key} round {rnd + 1}/{plan.rounds}] {v.name}")
                common = dict(
                    threads=plan.threads,
                    seqs=plan.seqs,
                    reps=plan.reps,
                    corpus=str(CORPUS),
                    n_texts=plan.sentences[key],
                )
                if v.backend == "tensorflow":
                    tok = any_manifest.tokenizer
                    vocab = str(next(iter(bundles.values()))["path"] / tok["vocab"])
                    r = probe("tensorflow", saved_model=ref, vocab=vocab, lower=tok["do_lower_case"], **common)
                else:
                    path = str(bundles[v.recipe]["path"])
                    r = probe("runtime", bundle=path, backend=v.backend, **common)
                    plain = probe("rss_only", bundle=path, backend=v.backend, threads=plan.threads)
                    r.update(rss_only_mb=plain["peak_rss_mb"], rss_seq128_mb=plain.get("peak_rss_seq128_mb"))
                    if v.backend == "tflite":
                        # XNNPACK's weight cache: the first process builds it, a second one measures.
                        cache = str(work / "xnnpack-cache" / key / v.recipe)
                        for _ in range(2):
                            cached = probe(
                                "rss_only",
                                bundle=path,
                                backend=v.backend,
                                threads=plan.threads,
                                weight_cache="auto",
                                cache_dir=cache,
                            )
                        r.update(
                            rss_cache_mb=cached["peak_rss_mb"],
                            rss_cache_seq128_mb=cached.get("peak_rss_seq128_mb"),
                            cache_p50_ms_seq128=cached.get("p50_ms_seq128"),
                            interpreter_p50_ms_seq128=plain.get("p50_ms_seq128"),
                        )
                rows[v.name].append(r)
        model_result = {"architecture": any_manifest.architecture, "variants": {}}
        for v in plan.variants:
            agg = _median(rows[v.name])
            if v.recipe:
                b = bundles[v.recipe]
                entry = b["manifest"].models[v.backend]
                agg.update(
                    file_mb=entry.total_bytes / 1e6,
                    export_s=b["export_s"],
                    export_peak_rss_gb=b["export_peak_rss_gb"],
                    cosine_pooled=entry.accuracy["pooled_output"]["cosine"]["mean"],
                    gate_passed=entry.gate["passed"],
                )
            model_result["variants"][v.name] = agg
        _add_ratios(model_result, plan)
        results["models"][key] = model_result
        _progress(f"{key}: done ({(time.perf_counter() - t_start) / 60:.1f} min so far)")
    results["roofline"] = roofline(plan, work, results)
    results["roofline_fp32"] = roofline(plan, work, results, "fp32")
    results["wall_minutes"] = round((time.perf_counter() - t_start) / 60, 1)
    return results


def _median(runs: list[dict]) -> dict:
    out: dict = {}
    for k, v in runs[0].items():
        if k == "latency":
            out[k] = {s: {q: statistics.median(r[k][s][q] for r in runs) for q in v[s]} for s in v}
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = statistics.median(r[k] for r in runs)
        else:
            out[k] = v
    return out


def _add_ratios(model_result: dict, plan: Plan) -> None:
    base = model_result["variants"].get("TF SavedModel fp32")
    for _name, r in model_result["variants"].items():
        lat = {int(s): q for s, q in r["latency"].items()}
        r["latency"] = lat
        r["dynamic_vs_fixed128"] = r["dynamic_sentences_per_s"] / r["fixed128_sentences_per_s"]
        if base:
            b = {int(s): q for s, q in base["latency"].items()}
            r["speedup_vs_tf"] = {s: b[s]["p50_ms"] / lat[s]["p50_ms"] for s in lat if s in b}
            r["throughput_vs_tf"] = r["dynamic_sentences_per_s"] / base["fixed128_sentences_per_s"]
        if "file_mb" in r:
            for key in ("rss_only_mb", "rss_seq128_mb", "rss_cache_mb", "rss_cache_seq128_mb"):
                if r.get(key):
                    r[key.replace("_mb", "_over_file")] = r[key] / r["file_mb"]
            # The main table's RSS is the default runner's: the weight cache where TFLite has one.
            r["rss_mb"] = r.get("rss_cache_mb") or r.get("rss_only_mb")
            if r["rss_mb"]:
                r["rss_over_file"] = r["rss_mb"] / r["file_mb"]
        cfg = model_result["architecture"]
        if 128 in lat:
            r["gmacs_per_s_seq128"] = macs(cfg, 128) / (lat[128]["p50_ms"] / 1e3) / 1e9


def roofline(plan: Plan, work: Path, results: dict, precision: str = "int8") -> dict:
    """The best matrix-product rate per backend: ``int8`` as the dynamic int8 recipe runs BERT,
    or ``fp32`` (what the fp32 variants are held against)."""
    out = {}
    shapes = [(128, 768, 3072), (128, 1024, 4096)]
    for backend in ("tflite", "onnx"):
        best = None
        for m, k, n in shapes:
            path = matmul_models(work, m, k, n)[backend if precision == "int8" else backend + "_fp32"]
            r = probe(f"matmul_{backend}", path=str(path), threads=plan.threads, reps=plan.reps * 3)
            rate = m * k * n / (r["p50_ms"] / 1e3) / 1e9
            if best is None or rate > best["gmacs_per_s"]:
                best = {
                    "shape": [m, k, n],
                    "gmacs_per_s": rate,
                    "p50_ms": r["p50_ms"],
                    "resigned": r.get("resigned", 0),
                }
        out[backend] = best
    return out


def int8_isa(flags: set[str]) -> str:
    """The best int8 dot-product instructions among the CPU's flags: int8 speed-ups are only
    compared between machines that have the same."""
    for flag, name in (
        ("amx_int8", "AMX-INT8"),
        ("avx512_vnni", "AVX512-VNNI"),
        ("avx_vnni", "AVX-VNNI"),
        ("asimddp", "Arm dot product"),
        ("avx2", "AVX2 only"),
        ("asimd", "Arm NEON only"),
    ):
        if flag in flags:
            return name
    return "no SIMD int8 dot product"


def machine(threads: int) -> dict:
    from edgebert.formats.onnx_exact_int8 import cpu_flags

    cpu, flags = "unknown", cpu_flags() or set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for d in ("ai-edge-litert", "onnxruntime", "tensorflow", "numpy"):
        try:
            versions[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            versions[d] = None
    return {
        "cpu": cpu,
        "int8_isa": int8_isa(flags),
        "cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        **versions,
    }
