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

Two more entries bound what any graph can reach: ``FLOOR``, the model's dense products and nothing
else (one ``DynamicQuantizeMatMul`` a product, chained on a float input: no attention, LayerNorm,
GELU or per-row work; ONNX Runtime's cheapest int8 product, quantization included), and ``TF``, the
fp32 reference SavedModel run by TensorFlow (the suite's probe, in its own process before and after
the rounds), which the speed bars are ratios to.

Writes ``onnx_forms.json`` and ``onnx_forms.md``. Weights are not smoothed here (speed only;
accuracy is ``benchmarks/quantization_accuracy.py``'s).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks import suite

ROUNDS, CALLS, WARMUP = 15, 3, 5
PARK_S = 0.05
QATTENTION = "int8 quantize_dynamic, QAttention (wi8_afp32_naive)"
FLOOR = "int8 dense products alone (floor: DynamicQuantizeMatMul chain)"
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


def products_floor(layers: int, hidden: int, intermediate: int, path: Path) -> None:
    """Writes the dense products of a BERT of that shape as one chain of ``DynamicQuantizeMatMul``
    (per layer attention-out, FFN-in, FFN-out in sequence, the packed Q/K/V product beside them as
    an output), float input ``x`` [batch, seq, hidden]: what the products cost with nothing else."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = {"qkv": (hidden, 3 * hidden), "attention_out": (hidden, hidden)}
    shapes.update({"ffn_in": (hidden, intermediate), "ffn_out": (intermediate, hidden)})
    nodes, inits, outputs, x = [], [], [], "x"
    for i in range(layers):
        for name, (k, n) in shapes.items():
            w, y = f"layer_{i}/{name}/kernel", f"layer_{i}/{name}/out"
            inits.append(numpy_helper.from_array(rng.integers(-127, 128, (k, n)).astype(np.int8), w))
            # Scales that keep the chain's values near 1 (the speed does not depend on them).
            inits.append(numpy_helper.from_array(np.full(n, 1.0 / (127 * np.sqrt(k)), np.float32), w + "_scale"))
            nodes.append(helper.make_node("DynamicQuantizeMatMul", [x, w, w + "_scale"], [y], domain="com.microsoft"))
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


def build_forms(key: str, work: Path) -> dict[str, Path]:
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

    mha = path("fp32 fused (MultiHeadAttention)")
    onnx.save(onnx_graph.encoder_model(cfg, dict(weights)), str(mha))
    att = path("fp32 fused (Attention)")
    onnx.save(onnx_graph.encoder_model(cfg, dict(weights), attention="Attention"), str(att))
    skip = onnx.load(str(mha))
    skip_layer_norm(skip)
    onnx.save(skip, str(path("fp32 fused + SkipLayerNormalization")))
    onnx_export.convert(src, path("fp32 standard (tf2onnx)"), seq_length=None, graph="standard")
    quantized("int8 per-row (wi8_afp32)", mha, "wi8_afp32")
    quantized("int8 per-row + SkipLayerNormalization", paths["fp32 fused + SkipLayerNormalization"], "wi8_afp32")
    quantized("int8 MatMulNBits 8/128 (wi8_afp32_blocks)", mha, "wi8_afp32_blocks")
    quantized(QATTENTION, att, "wi8_afp32_naive")
    onnx_row_int8.quantize(mha, path("int8 per-row, fixed zero points"), fixed_zero_points=FIXED_ZERO_POINTS)
    products_floor(cfg.num_layers, cfg.hidden_size, cfg.intermediate_size, path(FLOOR))
    return paths


def time_forms(paths: dict[str, Path], seq: int, threads: int) -> dict[str, float]:
    """Median ms per call of every form, interleaved."""
    import onnxruntime as ort

    from edgebert import onnx_exact_int8

    ids = np.random.default_rng(0).integers(1000, 20000, (1, seq)).astype(np.int32)
    feeds = {"input_word_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": np.zeros_like(ids)}
    calls = {}
    for name, path in paths.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        sess, _ = onnx_exact_int8.cpu_session(path, opts)  # as the runner loads it on this CPU
        first = sess.get_inputs()[0]
        given = feeds if first.name in feeds else {first.name: np.ones((1, seq, first.shape[-1]), np.float32)}
        calls[name] = lambda sess=sess, given=given: sess.run(None, given)
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(ROUNDS):
        for name, call in calls.items():
            # Each session has its own thread pool, whose threads spin after a run: let the last
            # form's park, and wake this form's, before timing it (without this, 2 cores shared
            # with a spinning pool timed the default model's int8 file at 16.9 ms, its suite 11.1).
            time.sleep(PARK_S)
            call()
            for _ in range(CALLS):
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
    return {name: round(statistics.median(t) * 1000, 2) for name, t in times.items()}


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
    results["tf_before_after_ms"] = {}
    for key in models:
        saved_model, vocab = reference_saved_model(key, work), suite.model_source(key, work) / "vocab.txt"
        paths = build_forms(key, work)
        before = tensorflow_ms(saved_model, vocab, seq, threads)
        results["models"][key] = time_forms(paths, seq, threads)
        after = tensorflow_ms(saved_model, vocab, seq, threads)
        results["models"][key][TF] = round((before + after) / 2, 2)
        results["tf_before_after_ms"][key] = [round(before, 2), round(after, 2)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx_forms.json").write_text(json.dumps(results, indent=1))
    m = results["machine"]
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
        r = results["models"][key]
        lines.append(
            f"- {key}: 5x TF fp32 means at most {r[TF] / 5:.2f} ms; the dense products alone take "
            f"{r[FLOOR]:.2f} ms ({r[TF] / r[FLOOR]:.2f}x TF), the per-row int8 model "
            f"{r['int8 per-row (wi8_afp32)']:.2f} ms ({r[TF] / r['int8 per-row (wi8_afp32)']:.2f}x TF)."
        )
    (out / "onnx_forms.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results
