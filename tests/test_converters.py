"""The encoder graph converts to TFLite and ONNX and runs in ai-edge-litert / ONNX Runtime
like the source, at fixed and dynamic shapes, for every catalog hidden size."""

import numpy as np
import onnx
import pytest

from edgebert.eval import metrics
from edgebert.exporters.convert import onnx_export, tflite
from edgebert.exporters.sources import load_source
from edgebert.model import numpy_bert
from edgebert.runtime.runners import open_runner
from fixtures import tiny_models

CONVERTERS = {"tflite": (tflite.convert, ".tflite"), "onnx": (onnx_export.convert, ".onnx")}
TOL = 1e-4


def _feeds(ids, mask, types):
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}


def _max_abs(out, want, mask):
    m = mask.astype(bool)
    return max(
        np.abs(out["sequence_output"] - want["sequence_output"])[m].max(),
        np.abs(out["pooled_output"] - want["pooled_output"]).max(),
    )


@pytest.fixture(scope="module")
def long_tiny(tmp_path_factory):
    """A tiny model that accepts 160 positions, for the (2, 128) dynamic shape."""
    return load_source(tiny_models.make_hf(tmp_path_factory.mktemp("long") / "hf", max_position=160))


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_fixed_and_dynamic_shapes_match_the_source(fmt, long_tiny, tf2_hub_tiny, tmp_path):
    convert, ext = CONVERTERS[fmt]
    fixed = open_runner(convert(long_tiny, tmp_path / f"fixed{ext}", seq_length=16))
    dynamic = open_runner(convert(long_tiny, tmp_path / f"dynamic{ext}", seq_length=None))
    assert (fixed.seq_length, dynamic.seq_length) == (16, None)
    cfg = long_tiny.config
    inputs = tiny_models.token_inputs(batch=3, seq=16, vocab=cfg.vocab_size)
    want = numpy_bert.forward(cfg, long_tiny.weights, *inputs)
    assert _max_abs(fixed.run(_feeds(*inputs)), want, inputs[1]) <= TOL
    for batch, seq in [(1, 16), (4, 64), (2, 128)]:
        inputs = tiny_models.token_inputs(batch=batch, seq=seq, vocab=cfg.vocab_size, seed=seq)
        out = dynamic.run(_feeds(*inputs))
        assert out["sequence_output"].shape == (batch, seq, cfg.hidden_size)
        assert _max_abs(out, numpy_bert.forward(cfg, long_tiny.weights, *inputs), inputs[1]) <= TOL
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_tf2_hub_encoder_converts(fmt, tf2_hub_tiny, tmp_path):
    src = load_source(tf2_hub_tiny)
    convert, ext = CONVERTERS[fmt]
    runner = open_runner(convert(src, tmp_path / f"m{ext}", seq_length=16))
    inputs = tiny_models.token_inputs(batch=3, seq=16, vocab=src.config.vocab_size)
    from edgebert.exporters.sources.saved_model_util import load_saved_model
    from edgebert.exporters.sources.tf2_saved_model import run_encoder

    want = run_encoder(load_saved_model(tf2_hub_tiny), *inputs)
    assert _max_abs(runner.run(_feeds(*inputs)), want, inputs[1]) <= TOL


# Small BERT shapes: every catalog hidden size (128..768, 64-wide heads) in the default
# run; the deepest, widest one behind the slow marker.
ARCHS = [(2, 128), (4, 256), (2, 512), (2, 768), (2, 1024)]  # every hidden size of the catalog


@pytest.mark.parametrize("layers,hidden", ARCHS + [pytest.param(12, 768, marks=pytest.mark.slow)])
def test_small_bert_architectures_export_both_formats(layers, hidden, tmp_path):
    path = tiny_models.make_hf(
        tmp_path / "hf",
        layers=layers,
        hidden=hidden,
        heads=hidden // 64,
        intermediate=4 * hidden,
        max_position=128,
        hidden_act="gelu_new",
    )
    src = load_source(path)
    inputs = tiny_models.token_inputs(batch=2, seq=32, vocab=src.config.vocab_size)
    want = numpy_bert.forward(src.config, src.weights, *inputs)
    for fmt, (convert, ext) in CONVERTERS.items():
        runner = open_runner(convert(src, tmp_path / f"m{ext}", seq_length=32))
        err = _max_abs(runner.run(_feeds(*inputs)), want, inputs[1])
        assert err <= TOL, f"{fmt} L{layers} H{hidden}: max-abs {err}"


def _op_counts(path) -> dict:
    import collections

    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_fused_onnx_graph_matches_the_standard_graph_and_keeps_its_fused_ops(long_tiny, tmp_path):
    """The directly written fused graph computes what tf2onnx's standard graph computes, with
    one MultiHeadAttention, two LayerNormalization and one BiasGelu (exact GELU) per layer."""
    from edgebert.exporters.convert import onnx_graph

    cfg = long_tiny.config
    report = {}
    fused = onnx_export.convert(long_tiny, tmp_path / "fused.onnx", seq_length=None, report=report)
    standard = onnx_export.convert(long_tiny, tmp_path / "standard.onnx", seq_length=None, graph="standard")
    want_ops = onnx_graph.fused_op_counts(cfg)
    assert want_ops == {"LayerNormalization": 5, "MultiHeadAttention": 2, "BiasGelu": 2}
    counts = _op_counts(fused)
    assert {op: counts[op] for op in want_ops} == want_ops
    assert report["onnx_graph"]["fused_ops"] == want_ops and report["onnx_graph"]["max_abs_vs_numpy"] <= TOL
    assert not set(want_ops) & set(_op_counts(standard))  # tf2onnx writes standard operators only
    inputs = tiny_models.token_inputs(batch=3, seq=40, vocab=cfg.vocab_size, seed=3)
    a, b = open_runner(fused).run(_feeds(*inputs)), open_runner(standard).run(_feeds(*inputs))
    assert _max_abs(a, b, inputs[1]) <= 1e-5
    assert _max_abs(a, numpy_bert.forward(cfg, long_tiny.weights, *inputs), inputs[1]) <= TOL


@pytest.mark.parametrize(
    "recipe,fused",
    [
        (
            "wi8_afp32",
            # Per product: the input and its rows' zero points quantized, their share dequantized.
            {
                "MultiHeadAttention": 2,
                "LayerNormalization": 5,
                "MatMulIntegerToFloat": 8,
                "QuantizeLinear": 16,
                "DequantizeLinear": 8,
            },
        ),
        ("wi8_afp32_naive", {"QAttention": 2, "LayerNormalization": 5, "MatMulInteger": 7}),  # --onnx-graph fused
    ],
)
def test_int8_onnx_recipes_keep_the_fused_graph(recipe, fused, long_tiny, tmp_path):
    """Quantizing must not unfuse: every dense layer (2 layers x 4; Q/K/V packed; the pooler too
    where the recipe does not keep it float) becomes an int8 kernel and the fused attention and
    LayerNorms stay."""
    from edgebert.quantize import recipes

    path = onnx_export.convert(
        long_tiny, tmp_path / "q.onnx", seq_length=None, recipe=recipes.get(recipe), graph="fused"
    )
    counts = _op_counts(path)
    assert {op: counts[op] for op in fused} == fused, counts
    float_products = recipes.get(recipe).onnx.get("float_products")
    # No dense layer left in float but the recipe's float products.
    assert [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "MatMul"] == (
        ["pooler/dense/MatMul"] if float_products else []
    ), counts
    inputs = tiny_models.token_inputs(batch=2, seq=24, vocab=long_tiny.config.vocab_size)
    want = numpy_bert.forward(long_tiny.config, long_tiny.weights, *inputs)
    out = open_runner(path).run(_feeds(*inputs))
    cos = (out["pooled_output"] * want["pooled_output"]).sum(1) / (
        np.linalg.norm(out["pooled_output"], axis=1) * np.linalg.norm(want["pooled_output"], axis=1)
    )
    assert cos.min() > 0.99, cos


def test_float_products_stay_float_in_tflite_with_their_int8_values(long_tiny, tmp_path):
    """``wi8_afp32`` keeps the pooler float (``float_products``): in the TFLite file its weight
    is FLOAT32 and holds the int8 weights dequantized (each output row a multiple of its own
    step), every other dense weight is INT8, and the float product computes the pooled output
    from the file's own sequence output."""
    from ai_edge_litert import schema_py_generated as schema

    from edgebert.quantize import recipes

    path = tflite.convert(long_tiny, tmp_path / "d.tflite", seq_length=None, recipe=recipes.get("wi8_afp32"))
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    sg = model.subgraphs[0]
    fc = [i for i, c in enumerate(model.operatorCodes) if max(c.builtinCode, c.deprecatedBuiltinCode) == 9]
    weights = {}
    for op in (op for op in sg.operators if op.opcodeIndex in fc):
        w, b = sg.tensors[op.inputs[1]], sg.tensors[op.inputs[2]]
        weights[w.name.decode()] = (w, model.buffers[w.buffer], model.buffers[b.buffer])
    kinds = {name: w.type for name, (w, _, _) in weights.items()}
    assert kinds.pop("pooler/dense/MatMul") == schema.TensorType.FLOAT32
    assert len(kinds) == 2 * 6 and set(kinds.values()) == {schema.TensorType.INT8}, kinds
    w, wbuf, bbuf = weights["pooler/dense/MatMul"]
    kernel = np.frombuffer(bytes(wbuf.data), "<f4").reshape(w.shape)  # [out, in]
    steps = kernel / (np.abs(kernel).max(1, keepdims=True) / 127)
    assert np.abs(steps - np.round(steps)).max() < 1e-3 and np.abs(steps).max() == pytest.approx(127)
    bias = np.frombuffer(bytes(bbuf.data), "<f4")
    inputs = tiny_models.token_inputs(batch=2, seq=24, vocab=long_tiny.config.vocab_size)
    out = open_runner(path).run(_feeds(*inputs))
    np.testing.assert_allclose(out["pooled_output"], np.tanh(out["sequence_output"][:, 0] @ kernel.T + bias), atol=2e-6)
    want = numpy_bert.forward(long_tiny.config, long_tiny.weights, *inputs)["pooled_output"]
    assert metrics.cosine(out["pooled_output"], want).min() > 0.99


def test_each_recipe_gets_its_graph_and_refuses_one_it_cannot_quantize(long_tiny, tmp_path):
    """quantize_dynamic keeps the converters' default route (tf2onnx's standard graph), the
    per-row kernel also runs there (standard operators for NPU execution providers), and static
    QDQ has no fused form."""
    from edgebert.errors import EdgebertError
    from edgebert.quantize import onnx_quant, recipes

    fused_ops = {"MultiHeadAttention", "Attention", "QAttention", "BiasGelu", "FastGelu"}
    naive = onnx_export.convert(long_tiny, tmp_path / "n.onnx", seq_length=None, recipe=recipes.get("wi8_afp32_naive"))
    assert not fused_ops & set(_op_counts(naive)) and _op_counts(naive)["MatMulInteger"] > 0
    report = {}
    row = onnx_export.convert(
        long_tiny,
        tmp_path / "r.onnx",
        seq_length=None,
        recipe=recipes.get("wi8_afp32"),
        graph="standard",
        report=report,
    )
    counts = _op_counts(row)
    assert report["onnx_graph"]["form"] == "standard" and not fused_ops & set(counts)
    # Q.K and P.V stay float, and the pooler (the recipe's float_products).
    assert counts["MatMulIntegerToFloat"] == 2 * 6 and counts["MatMul"] == 2 * 2 + 1
    inputs = tiny_models.token_inputs(batch=2, seq=24, vocab=long_tiny.config.vocab_size)
    want = numpy_bert.forward(long_tiny.config, long_tiny.weights, *inputs)["pooled_output"]
    got = open_runner(row).run(_feeds(*inputs))["pooled_output"]
    assert metrics.cosine(got, want).min() > 0.99
    with pytest.raises(EdgebertError, match="cannot quantize the fused ONNX graph") as e:
        onnx_quant.graph_of(recipes.get("wi8_ai8"), "fused")
    assert e.value.fix == "use --onnx-graph standard"


def test_a_fused_graph_that_differs_is_refused(long_tiny, monkeypatch, tmp_path):
    """ORT's optimizer once swapped Q and K silently: a fused graph that does not reproduce the
    numpy BERT is not written."""
    from edgebert.errors import EdgebertError
    from edgebert.exporters.convert import onnx_graph
    from edgebert.model.config import layer_names

    real = onnx_graph.encoder_model

    def swapped(cfg, weights, **kw):
        n = layer_names(0)
        weights = {**weights, n["q_w"]: weights[n["k_w"]], n["k_w"]: weights[n["q_w"]]}
        return real(cfg, weights, **kw)

    monkeypatch.setattr(onnx_graph, "encoder_model", swapped)
    with pytest.raises(EdgebertError, match="differs from the numpy BERT") as e:
        onnx_export.convert(long_tiny, tmp_path / "b.onnx", seq_length=16)
    assert "--onnx-graph standard" in e.value.fix
    assert not (tmp_path / "b.onnx").exists()
