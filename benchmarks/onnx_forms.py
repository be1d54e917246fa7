"""Which ONNX graph and int8 kernel ONNX Runtime runs fastest, measured side by side.

``python -m benchmarks onnx-forms [--models default,base] [--seq 128] [-o DIR]`` builds, from the
same weights (the default model, or the suite's random-weight BERT-base shape), every form the
exporter chose between and times them interleaved (rounds of a few calls each, so a machine
that slows down mid-run slows every form alike), at batch 1, 2 threads:

- fp32: tf2onnx's standard graph; the fused graph with MultiHeadAttention (the default) or
  Attention; the fused graph with ``SkipLayerNormalization`` instead of Add + LayerNormalization;
- int8 on the fused graph: per-row asymmetric (``wi8_afp32``), MatMulNBits 8-bit blocks of 128
  (``wi8_afp32_blocks``), ``quantize_dynamic`` with QAttention (``wi8_afp32_naive --onnx-graph
  fused``; that recipe's default is tf2onnx's graph),
  per-row with ``SkipLayerNormalization``, and per-row scales at fixed zero points
  (``FIXED_ZERO_POINTS``, the ``fixed_zero_points`` option of ``dynamic_per_row``).

The rest bound what any graph can reach, in the same interleaved rounds:

- ``FLOOR`` / ``FLOOR_FP32``: the model's dense products and nothing else (one
  ``DynamicQuantizeMatMul`` a product, ONNX Runtime's cheapest int8 product, quantization included;
  or one fp32 ``MatMul``), chained on a float input: no attention, LayerNorm, GELU or per-row work;
- ONNX Runtime's best single product (the suite's roofline files, int8 and fp32), which the
  "share of the roofline" bars divide by;
- the suite's TFLite bundles (fp32 and ``wi8_afp32``) on the default runner (XNNPACK with the
  weight cache), which the "ONNX fp32 >= TFLite fp32" bar compares with;
- ``TF``, the fp32 reference SavedModel run by TensorFlow (the suite's probe, in its own process
  before and after the rounds), which the speed bars are ratios to.

``bounds`` turns the table into those bars: what the model reaches, and the most it could reach
with nothing but its products. Writes ``onnx_forms.json`` and ``onnx_forms.md``. Weights are not
smoothed here (speed only; accuracy is ``benchmarks/quantization_accuracy.py``'s).
"""

from __future__ import annotations

import functools
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import probes, suite

ROUNDS, CALLS, WARMUP = 15, 3, 5
PARK_S, HEAT_S = 0.05, 0.05
QATTENTION = "int8 quantize_dynamic, QAttention (wi8_afp32_naive)"
PER_ROW = "int8 per-row (wi8_afp32)"
FP32 = "fp32 fused (MultiHeadAttention)"
FLOOR = "int8 dense products alone (floor: DynamicQuantizeMatMul chain)"
FLOOR_FP32 = "fp32 dense products alone (floor: MatMul chain)"
TFLITE = {"fp32": "TFLite fp32 (XNNPACK, weight cache)", "wi8_afp32": "TFLite int8 wi8_afp32 (XNNPACK, weight cache)"}
# The suite's roofline shapes: each runtime's best single product is the faster of the two.
ROOFLINE_SHAPES = [(128, 768, 3072), (128, 1024, 4096)]
TF = "TF SavedModel fp32 (the bars' baseline; its own process, before and after)"
# Symmetric where the input has both signs (LayerNorm outputs, attention context); 32 for
# FFN-out, whose input is GELU's output (>= -0.17).
FIXED_ZERO_POINTS = [
    ["attention/self/query_key_value|attention/output/dense|intermediate/dense", 128],
    ["^layer_\\d+/output/dense", 32],
]


def skip_layer_norm(model) -> None:
    """Rewrites each ``LayerNormalization(Add(Add(matmul, bias), residual))`` of ``model`` as one
    ``com.microsoft.SkipLayerNormalization`` (the fused op this exporter does not write)."""
    from onnx import helper

    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consts = {i.name for i in g.initializer}
    drop, nodes = set(), []
    for n in g.node:
        add = producer.get(n.input[0]) if n.op_type == "LayerNormalization" else None
        bias_add = producer.get(add.input[0]) if add is not None and add.op_type == "Add" else None
        if bias_add is None or bias_add.op_type != "Add" or bias_add.input[1] not in consts:
            nodes.append(n)
            continue
        eps = next(a.f for a in n.attribute if a.name == "epsilon")
        ins = [bias_add.input[0], add.input[1], n.input[1], n.input[2], bias_add.input[1]]
        nodes.append(
            helper.make_node(
                "SkipLayerNormalization", ins, [n.output[0]], name=n.name, domain="com.microsoft", epsilon=eps
            )
        )
        drop |= {id(add), id(bias_add)}
    del g.node[:]
    g.node.extend(x for x in nodes if id(x) not in drop)


def roofline_name(backend: str, precision: str, shape: tuple[int, int, int]) -> str:
    runtime = {"onnx": "ONNX Runtime", "tflite": "TFLite (XNNPACK)"}[backend]
    return f"{runtime}: single {precision} product {'x'.join(map(str, shape))}"


SINGLE_PRODUCTS = {
    roofline_name(b, p, mkn): (b, p, mkn)
    for b in ("onnx", "tflite")
    for p in ("int8", "fp32")
    for mkn in ROOFLINE_SHAPES
}


def products_floor(layers: int, hidden: int, intermediate: int, path: Path, precision: str = "int8") -> None:
    """Writes the dense products of a BERT of that shape as one chain (per layer attention-out,
    FFN-in, FFN-out in sequence, the packed Q/K/V product beside them as an output), float input
    ``x`` [batch, seq, hidden]: what the products cost with nothing else. ``int8``: one
    ``DynamicQuantizeMatMul`` a product; ``fp32``: one ``MatMul``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = {"qkv": (hidden, 3 * hidden), "attention_out": (hidden, hidden)}
    shapes.update({"ffn_in": (hidden, intermediate), "ffn_out": (intermediate, hidden)})
    nodes, inits, outputs, x = [], [], [], "x"
    for i in range(layers):
        for name, (k, n) in shapes.items():
            w, y = f"layer_{i}/{name}/kernel", f"layer_{i}/{name}/out"
            # Weights (or scales) that keep the chain's values near 1: no overflow, no denormals.
            if precision == "fp32":
                inits.append(numpy_helper.from_array(rng.normal(0, 1 / np.sqrt(k), (k, n)).astype(np.float32), w))
                nodes.append(helper.make_node("MatMul", [x, w], [y]))
            else:
                inits.append(numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), w))
                # Uniform int8 weights have a standard deviation of 127 / sqrt(3).
                scale = np.full(n, np.sqrt(3.0) / (127 * np.sqrt(k)), np.float32)
                inits.append(numpy_helper.from_array(scale, w + "_scale"))
                node = helper.make_node("DynamicQuantizeMatMul", [x, w, w + "_scale"], [y], domain="com.microsoft")
                nodes.append(node)
            if name == "qkv":
                outputs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, None))
            else:
                x = y
    outputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, None))
    graph = helper.make_graph(
        nodes,
        "dense_products",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden])],
        outputs,
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(model, str(path))


def reference_saved_model(key: str, work: Path) -> Path:
    """The fp32 reference SavedModel of ``key`` (written into the edgebert cache if missing)."""
    from edgebert.exporters.convert import workers
    from edgebert.exporters.convert.tasks import ReferenceTask
    from edgebert.exporters.pipelines.export import reference_dir_for

    src = suite.model_source(key, work)
    job = work / "onnx_forms" / key / "reference_job"
    job.mkdir(parents=True, exist_ok=True)
    ref = workers.run(
        ReferenceTask(
            source=str(src), reference_dir=str(reference_dir_for(src)), texts=["a"], outputs_npz=str(job / "ref.npz")
        ),
        job,
    )
    return Path(ref["reference"])


def build_forms(key: str, work: Path) -> tuple[dict[str, Path], dict]:
    """Every form of ``key`` (name -> file), and the model's shape (``suite.macs``'s keys)."""
    import onnx

    from edgebert.exporters.convert import onnx_export, onnx_graph
    from edgebert.exporters.sources import load_source
    from edgebert.quantize import onnx_quant, onnx_row_int8, recipes

    out = work / "onnx_forms" / key
    out.mkdir(parents=True, exist_ok=True)
    src = load_source(suite.model_source(key, work))
    cfg, weights = src.config, src.weights
    paths = {}

    def path(name: str) -> Path:
        paths[name] = out / (re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".onnx")
        return paths[name]

    def quantized(name: str, fp32: Path, recipe: str) -> None:
        # The recipe's own ONNX method and parameters (no smoothing here: speed only).
        onnx_quant.apply(fp32, path(name), recipes.get(recipe), None)

    mha = path(FP32)
    onnx.save(onnx_graph.encoder_model(cfg, dict(weights)), str(mha))
    att = path("fp32 fused (Attention)")
    onnx.save(onnx_graph.encoder_model(cfg, dict(weights), attention="Attention"), str(att))
    skip = onnx.load(str(mha))
    skip_layer_norm(skip)
    onnx.save(skip, str(path("fp32 fused + SkipLayerNormalization")))
    onnx_export.convert(src, path("fp32 standard (tf2onnx)"), seq_length=None, graph="standard")
    quantized(PER_ROW, mha, "wi8_afp32")
    quantized("int8 per-row + SkipLayerNormalization", paths["fp32 fused + SkipLayerNormalization"], "wi8_afp32")
    quantized("int8 MatMulNBits 8/128 (wi8_afp32_blocks)", mha, "wi8_afp32_blocks")
    quantized(QATTENTION, att, "wi8_afp32_naive")
    onnx_row_int8.quantize(mha, path("int8 per-row, fixed zero points"), fixed_zero_points=FIXED_ZERO_POINTS)
    products_floor(cfg.num_layers, cfg.hidden_size, cfg.intermediate_size, path(FLOOR))
    products_floor(cfg.num_layers, cfg.hidden_size, cfg.intermediate_size, path(FLOOR_FP32), "fp32")
    for name, (backend, precision, mkn) in SINGLE_PRODUCTS.items():
        paths[name] = suite.matmul_models(work, *mkn)[backend if precision == "int8" else backend + "_fp32"]
    for recipe, name in TFLITE.items():
        paths[name] = suite.export_bundle(key, recipe, ["tflite"], work)["path"] / "model.tflite"
    shape = {"hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size, "num_layers": cfg.num_layers}
    return paths, shape


def time_forms(paths: dict[str, Path], seq: int, threads: int, hidden: int) -> dict[str, float]:
    """Median ms per call of every form, interleaved: ``.onnx`` files in an ONNX Runtime session as
    the runner opens it on this CPU, a BERT ``.tflite`` on the default runner (XNNPACK, weight
    cache), a single product's on LiteRT's Interpreter (XNNPACK) as the suite's roofline probe
    runs it; a BERT takes [1, seq] ids, any other graph ones of its input's shape."""
    import onnxruntime as ort

    from edgebert.formats import onnx_exact_int8
    from edgebert.runtime import runners

    ids = np.random.default_rng(0).integers(1000, 20000, (1, seq)).astype(np.int32)
    feeds = {"input_word_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": np.zeros_like(ids)}
    calls: dict[str, Callable[[], object]] = {}
    for name, path in paths.items():
        if path.suffix == ".tflite" and name in SINGLE_PRODUCTS:
            calls[name] = probes.tflite_product_call(str(path), threads)
            continue
        if path.suffix == ".tflite":
            runner = runners.open_runner(path, num_threads=threads, hidden_size=hidden, weight_cache=":memory")
            calls[name] = functools.partial(runner.run, feeds)
            continue
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        sess, _ = onnx_exact_int8.cpu_session(path, opts)  # as the runner loads it on this CPU
        first = sess.get_inputs()[0]
        if first.name in feeds:
            given = feeds
        else:
            static = all(isinstance(d, int) for d in first.shape)
            shape = first.shape if static else (1, seq, first.shape[-1])
            given = {first.name: np.ones(shape, np.float32)}
        calls[name] = functools.partial(sess.run, None, given)
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            # Each session has its own thread pool, whose threads spin after a run: let the last
            # form's park before timing this one (without this, 2 cores shared with a spinning
            # pool timed the default model's int8 file at 16.9 ms, its suite 11.1). Then run this
            # form for HEAT_S untimed: after the pause this VM's cores need 10-30 ms of work to
            # come back to speed (one 128x1024x4096 int8 product in LiteRT: 2.82 ms a call right
            # after 50 ms asleep, 2.24 after 10 ms of calls, 1.33 after 30 ms, 1.32 back to back).
            time.sleep(PARK_S)
            heat_end = time.perf_counter() + HEAT_S
            call()
            while time.perf_counter() < heat_end:
                call()
            for _ in range(CALLS):
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
    return {name: round(statistics.median(t) * 1000, 2) for name, t in times.items()}


def bounds(ms: dict[str, float], cfg: dict, seq: int) -> dict[str, float]:
    """Issue 20's bars from one model's column of the table: ratios to TensorFlow, shares of each
    runtime's best single product, the most any ONNX graph could reach (its dense products alone,
    everything else free), and ONNX fp32 (and its products alone) over TFLite fp32.

    Args:
      ms: form -> median ms, the model's column (``TF`` included).
      cfg: ``hidden_size``, ``intermediate_size``, ``num_layers``.
      seq: the sequence length the column was timed at.
    """
    total = suite.macs(cfg, seq)

    def best_rate(backend: str, precision: str) -> float:  # GMAC/s of the faster roofline shape
        shapes = ROOFLINE_SHAPES
        return max(m * k * n / ms[roofline_name(backend, precision, (m, k, n))] / 1e6 for m, k, n in shapes)

    r8 = {b: best_rate(b, "int8") for b in ("onnx", "tflite")}
    r32 = {b: best_rate(b, "fp32") for b in ("onnx", "tflite")}

    def share(name: str, backend: str) -> float:  # the model's GMAC/s over the runtime's best int8
        return round(total / ms[name] / 1e6 / r8[backend], 3)

    return {
        "roofline_int8_gmacs": round(r8["onnx"], 1),
        "roofline_fp32_gmacs": round(r32["onnx"], 1),
        "tflite_roofline_int8_gmacs": round(r8["tflite"], 1),
        "tflite_roofline_fp32_gmacs": round(r32["tflite"], 1),
        "tflite_int8_share": share(TFLITE["wi8_afp32"], "tflite"),
        "five_x_tf_ms": round(ms[TF] / 5, 2),
        "onnx_int8_x_tf": round(ms[TF] / ms[PER_ROW], 2),
        "tflite_int8_x_tf": round(ms[TF] / ms[TFLITE["wi8_afp32"]], 2),
        "floor_int8_x_tf": round(ms[TF] / ms[FLOOR], 2),
        "onnx_int8_share": share(PER_ROW, "onnx"),
        # The model's multiply-accumulates over the time of its dense products alone: an upper
        # bound on any ONNX graph's share (the attention's products and the rest not counted).
        "floor_int8_share": share(FLOOR, "onnx"),
        "onnx_fp32_over_tflite_fp32": round(ms[FP32] / ms[TFLITE["fp32"]], 3),
        "floor_fp32_over_tflite_fp32": round(ms[FLOOR_FP32] / ms[TFLITE["fp32"]], 3),
    }


def tensorflow_ms(saved_model: Path, vocab: Path, seq: int, threads: int) -> float:
    """p50 ms of the reference SavedModel in TensorFlow at ``seq``, in a fresh process as the
    suite's baseline (in this process its thread pool and ONNX Runtime's spin against each other
    on 2 cores)."""
    r = suite.probe(
        "tensorflow",
        saved_model=str(saved_model),
        vocab=str(vocab),
        lower=True,
        threads=threads,
        seqs=[seq],
        reps=30,
        corpus=str(suite.CORPUS),
        n_texts=32,
    )
    return float(r["latency"][str(seq)]["p50_ms"])  # JSON made the length a string


def run(models: list[str], seq: int, threads: int, out: Path) -> dict:
    work = out / "work"
    results: dict = {"machine": suite.machine(threads), "seq": seq, "threads": threads, "models": {}}
    results["tf_before_after_ms"], results["bounds"] = {}, {}
    for key in models:
        saved_model, vocab = reference_saved_model(key, work), suite.model_source(key, work) / "vocab.txt"
        paths, shape = build_forms(key, work)
        before = tensorflow_ms(saved_model, vocab, seq, threads)
        results["models"][key] = time_forms(paths, seq, threads, shape["hidden_size"])
        after = tensorflow_ms(saved_model, vocab, seq, threads)
        results["models"][key][TF] = round((before + after) / 2, 2)
        results["tf_before_after_ms"][key] = [round(before, 2), round(after, 2)]
        results["bounds"][key] = bounds(results["models"][key], shape, seq)
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx_forms.json").write_text(json.dumps(results, indent=1))
    text = report(results, models)
    (out / "onnx_forms.md").write_text(text)
    print(text)
    return results


def report(results: dict, models: list[str]) -> str:
    m, seq, threads = results["machine"], results["seq"], results["threads"]
    lines = [
        f"# ONNX forms, seq {seq}, batch 1, {threads} threads",
        "",
        f"`python -m benchmarks onnx-forms --models {','.join(models)} --seq {seq}` on {m.get('cpu')} "
        f"({m.get('int8_isa')}); medians of {ROUNDS} interleaved rounds x {CALLS} calls.",
        "",
        "| form | " + " | ".join(f"{k} ms" for k in models) + " |",
        "| --- | " + " | ".join("---" for _ in models) + " |",
    ]
    names = list(next(iter(results["models"].values())))
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{results['models'][k][name]:.2f}" for k in models) + " |")
    lines.append("")
    for key in models:
        r, b = results["models"][key], results["bounds"][key]
        lines += [
            f"- {key}: 5x TF fp32 means at most {b['five_x_tf_ms']:.2f} ms: TFLite int8 "
            f"{b['tflite_int8_x_tf']:.2f}x TF, ONNX int8 (per-row) {b['onnx_int8_x_tf']:.2f}x; the int8 dense "
            f"products alone take {r[FLOOR]:.2f} ms ({b['floor_int8_x_tf']:.2f}x TF).",
            f"  Of ONNX Runtime's best single int8 product ({b['roofline_int8_gmacs']:.0f} GMAC/s): the per-row "
            f"model {b['onnx_int8_share']:.0%}; with nothing but its dense products at most "
            f"{b['floor_int8_share']:.0%}. Of TFLite's ({b['tflite_roofline_int8_gmacs']:.0f} GMAC/s): TFLite "
            f"int8 {b['tflite_int8_share']:.0%}.",
            f"  fp32: ONNX (fused) {r[FP32]:.2f} ms = {b['onnx_fp32_over_tflite_fp32']:.2f}x TFLite fp32's "
            f"{r[TFLITE['fp32']]:.2f}; ONNX Runtime's fp32 dense products alone {r[FLOOR_FP32]:.2f} ms = "
            f"{b['floor_fp32_over_tflite_fp32']:.2f}x (single fp32 product {b['roofline_fp32_gmacs']:.0f} GMAC/s).",
        ]
    return "\n".join(lines) + "\n"
