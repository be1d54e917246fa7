"""Recipes as data, calibration text, SmoothQuant and int8 embeddings: float-exact rewrites."""

import re

import numpy as np
import pytest

from edgebert.errors import EdgebertError
from edgebert.exporters.sources import load_source
from edgebert.model import numpy_bert
from edgebert.model.config import EMBEDDING_NAMES
from edgebert.quantize import calibration, embedding, recipes, smoothquant
from fixtures import tiny_models


def test_recipes_are_data_with_decoded_names_and_thresholds():
    all_ = recipes.all_recipes()
    assert {"fp32", "wfp16_afp32", "wi8_afp32", "wi8_ai8", "wi8_ai8_mixed", "wi8_ai16"} <= set(all_)
    for r in all_.values():
        assert re.fullmatch(r"fp32|w(i8|fp16)_a(fp32|i8|i16|i8i16)(_[a-z]+)?", r.name), r.name
        assert set(r.formats) <= {"tflite", "onnx"} and r.formats
        assert 0 <= r.thresholds["cosine_min"] <= r.thresholds["cosine_mean"] <= 1
        assert 0.5 <= r.thresholds["agreement_min"] <= 1  # checked by `edgebert verify` with labels
        assert r.int8 == r.name.startswith("wi8")
    default = recipes.get(recipes.DEFAULT_INT8)
    assert default.int8 and default.thresholds == {"cosine_mean": 0.999, "cosine_min": 0.99, "agreement_min": 0.99}
    with pytest.raises(EdgebertError, match="unknown recipe 'nope'.*wi8_afp32"):
        recipes.get("nope")


def _exact_session(model):
    """``model`` in ONNX Runtime as the runner loads it: on x86 without VNNI with the int8
    weights re-signed for the exact u8 x u8 kernel (``edgebert.formats.onnx_exact_int8``), whose u8 x s8
    kernel would add in saturating int16 (off by 0.4 of 5.4 on these products)."""
    import tempfile
    from pathlib import Path

    from edgebert.formats import onnx_exact_int8

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        path.write_bytes(model.SerializeToString())
        return onnx_exact_int8.cpu_session(path)[0]


def test_calibration_text_formats(tmp_path):
    default = calibration.read_texts()
    assert len(default) == 600 and all(t.strip() for t in default)
    f = tmp_path / "s.tsv"
    f.write_text("".join(f"{i}\t{(-1) ** i * 1.5}\tsentence number {i}\n" for i in range(10)) + "\n\n")
    texts = calibration.read_texts(f)
    assert texts[:2] == ["sentence number 0", "sentence number 1"] and len(texts) == 10
    cal, held = calibration.split(default, 64)
    assert len(held) == 64 and not set(cal) & set(held) and len(cal) == 536
    (tmp_path / "few.txt").write_text("one\ntwo\n")
    with pytest.raises(EdgebertError, match="has 2 sentences"):
        calibration.read_texts(tmp_path / "few.txt")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_source(tiny_models.make_hf(tmp_path_factory.mktemp("q") / "hf"))


def test_smoothing_leaves_float_outputs_unchanged_and_shrinks_outlier_channels(tiny):
    inputs = tiny_models.token_inputs(batch=3, seq=16, vocab=tiny.config.vocab_size)
    ranges = smoothquant.activation_ranges(tiny, [inputs])
    smoothed = smoothquant.smooth(tiny, ranges, alpha=0.5, layers=("qkv", "ffn_in", "attn_out", "ffn_out"))
    before = numpy_bert.forward(tiny.config, tiny.weights, *inputs)
    after = numpy_bert.forward(smoothed.config, smoothed.weights, *inputs)
    assert np.abs(before["sequence_output"] - after["sequence_output"]).max() <= 1e-5
    assert np.abs(before["pooled_output"] - after["pooled_output"]).max() <= 1e-5
    # The smoothed Q/K/V input has a flatter channel profile than the raw one.
    new = smoothquant.activation_ranges(smoothed, [inputs])
    key = "encoder/layer_1/attention/self/qkv_smooth"
    spread = lambda r: r.max() / np.median(r)  # noqa: E731
    assert spread(new[key] * smoothed.weights[key]) < spread(ranges[key])


def test_int8_embedding_rows_are_within_half_a_step_and_the_graph_uses_them(tiny):
    import tensorflow as tf

    from edgebert.exporters.convert.encoder_graph import BertEncoderModule

    q = embedding.int8_rows(tiny)
    table = tiny.weights[EMBEDDING_NAMES["word"]]
    deq = q.weights[embedding.INT8].astype(np.float32) * q.weights[embedding.SCALE]
    assert EMBEDDING_NAMES["word"] not in q.weights and q.weights[embedding.INT8].dtype == np.int8
    assert (np.abs(deq - table) <= q.weights[embedding.SCALE] / 2 + 1e-7).all()
    inputs = tiny_models.token_inputs(batch=2, seq=16, vocab=tiny.config.vocab_size)
    out = BertEncoderModule(q.config, q.weights)(
        {n: tf.constant(a) for n, a in zip(("input_word_ids", "input_mask", "input_type_ids"), inputs)}
    )
    want = numpy_bert.forward(tiny.config, {**tiny.weights, EMBEDDING_NAMES["word"]: deq}, *inputs)
    assert np.abs(out["pooled_output"].numpy() - want["pooled_output"]).max() <= 1e-4


# ------------------------------------------------------------------ recipes read as data
def test_every_recipe_section_is_read_by_its_format_method():
    from edgebert.quantize import onnx_quant, tflite_quant

    tables = {"tflite": tflite_quant.METHODS, "onnx": onnx_quant.METHODS}
    used = {"tflite": set(), "onnx": set()}
    for r in recipes.all_recipes().values():
        for fmt in r.formats:
            method, params = recipes.method_of(r, fmt, tables[fmt])  # raises on a key nothing reads
            used[fmt].add(params["method"])
    # every method in the tables serves some recipe: no dead entries either way
    assert used == {fmt: set(t) for fmt, t in tables.items()}


def _recipe(**over):
    base = dict(
        name="wi8_test",
        description="t",
        formats=("tflite", "onnx"),
        int8=True,
        thresholds={"cosine_mean": 0.9, "cosine_min": 0.8},
    )
    return recipes.Recipe(**{**base, **over})


@pytest.mark.parametrize(
    "section, message",
    [
        ({"method": "nope"}, "onnx method 'nope' is not one of float, float16_weights"),
        ({"method": "matmul_nbits", "bits": 8, "block_size": 32}, "needs accuracy_level"),
        ({"method": "quantize_dynamic", "per_chanel": True}, "reads no per_chanel"),
        ({"method": "float", "embedding": "int4"}, "embedding 'int4' is not one of"),
    ],
)
def test_a_recipe_section_that_would_be_ignored_is_refused(section, message):
    from edgebert.quantize import onnx_quant

    with pytest.raises(ValueError, match=message):
        recipes.method_of(_recipe(onnx=section), "onnx", onnx_quant.METHODS)


def test_unread_keys_outside_the_format_sections_are_refused():
    with pytest.raises(ValueError, match=r"smoothing keys \['beta'\] are read by nothing"):
        recipes._check_sections("x", {"smoothing": {"alpha": 0.5, "beta": 1}})
    recipes._check_sections(
        "x",
        {"smoothing": {"alpha": 0.5, "layers": ["qkv"], "calibration_sentences": 8}, "graph": {"mask_bias": -100.0}},
    )


def test_a_new_recipe_is_a_json_entry(tiny, tmp_path):
    """A recipe nobody wrote code for (MatMulNBits with 32-wide blocks) runs through the
    registry: the ONNX file has the blocks it asked for and stays close to fp32."""
    import onnx
    import onnxruntime as ort

    from edgebert.exporters.convert import onnx_export

    fp32 = onnx_export.convert(tiny, tmp_path / "fp32.onnx", seq_length=None)
    new = _recipe(onnx={"method": "matmul_nbits", "bits": 8, "block_size": 32, "accuracy_level": 4})
    out = onnx_export.convert(tiny, tmp_path / "q.onnx", seq_length=None, recipe=new)
    nbits = [n for n in onnx.load(str(out)).graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 4 * tiny.config.num_layers + 1  # packed q/k/v, attention out, FFN in and out; the pooler
    assert {a.i for n in nbits for a in n.attribute if a.name == "block_size"} == {32}
    feeds = dict(zip(("input_word_ids", "input_mask", "input_type_ids"), tiny_models.token_inputs()))
    want, got = (ort.InferenceSession(str(p)).run(["pooled_output"], feeds)[0] for p in (fp32, out))
    cos = (want * got).sum(1) / np.linalg.norm(want, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.999 and np.abs(want - got).max() > 0  # quantized, and close


def test_per_row_int8_equals_the_exact_asymmetric_product():
    """``onnx_row_int8`` run by ONNX Runtime equals the asymmetric per-row product computed in
    numpy: each row's own scale and zero point (its range widened to hold 0), the zero point's
    share taken out, per-channel int8 weights."""
    from onnx import TensorProto, helper, numpy_helper

    from edgebert.quantize import onnx_row_int8

    rng = np.random.default_rng(0)
    k, n = 96, 200
    w = rng.normal(0, 0.05, (k, n)).astype(np.float32)
    w[:, 3] = np.abs(w[:, 3]) + 0.02  # a column with a large int8 sum: a large zero-point share
    x = rng.normal(0.4, 1.0, (2, 5, k)).astype(np.float32)
    x[0, 0] = np.abs(x[0, 0])  # a row with no negative value: its range is widened to 0
    x[1, 4] = 0.0  # a row of zeros: a tiny span, not a division by 0
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="dense/MatMul")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, n])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_row_int8.rewrite(model)
    ops = [nd.op_type for nd in model.graph.node]
    # 13 nodes a product (each costs ONNX Runtime a dispatch): ReduceMax, Max, ReduceMin, Min, Sub,
    # Mul (the scale), Neg, QuantizeLinear (zero point), QuantizeLinear, MatMulIntegerToFloat,
    # DequantizeLinear (zero point x scale), Mul, Sub.
    assert len(ops) == 13 and ops.count("MatMulIntegerToFloat") == 1, ops
    y = _exact_session(model).run(None, {"x": x})[0]

    ws = np.abs(w).max(0) / 127
    wq = np.clip(np.round(w / ws), -127, 127)
    hi, lo = np.maximum(x.max(-1, keepdims=True), 1e-30), np.minimum(x.min(-1, keepdims=True), 0)
    scale = ((hi - lo) / 255).astype(np.float32)
    zp = np.round(-lo / scale)
    xq = np.clip(np.round(x / scale) + zp, 0, 255)
    exact = scale * ((xq - zp) @ wq) * ws
    assert np.abs(y - exact).max() <= 1e-4 * np.abs(exact).max()
    assert not y[1, 4].any()
    real = np.ones(x.shape[:2], bool)
    real[1, 4] = False
    y, x = y[real], x[real]
    cos = (y * (x @ w)).sum(-1) / np.linalg.norm(y, axis=-1) / np.linalg.norm(x @ w, axis=-1)
    assert cos.min() >= 0.999, cos.min()


def test_per_row_int8_at_fixed_zero_points_equals_the_exact_product():
    """``fixed_zero_points``: each matching MatMul's rows get their own scale, the smallest that
    holds the row at the tensor's one zero point z (``max(max / (255 - z), -min / z)``), which
    ``MatMulIntegerToFloat`` applies itself: equal to that product in numpy, for z = 128
    (symmetric) and z = 16 (an activation's output, bounded below); a MatMul no pair names keeps its own
    zero point per row."""
    from onnx import TensorProto, helper, numpy_helper

    from edgebert.quantize import onnx_row_int8

    rng = np.random.default_rng(1)
    k, n = 96, 200
    w = rng.normal(0, 0.05, (k, n)).astype(np.float32)
    w2 = rng.normal(0, 0.05, (n, k)).astype(np.float32)
    w3 = rng.normal(0, 0.05, (k, k)).astype(np.float32)
    x = rng.normal(0.3, 1.0, (2, 5, k)).astype(np.float32)
    x[0, 0] = -np.abs(x[0, 0])  # a row of one sign: its minimum sets the scale
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="layer_0/intermediate/dense/MatMul"),
            helper.make_node("Relu", ["h"], ["r"], name="layer_0/intermediate/activation"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="layer_0/output/dense/MatMul"),
            helper.make_node("MatMul", ["y", "w3"], ["p"], name="pooler/dense/MatMul"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, k])],
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in "hyp"],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(w3, "w3")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_row_int8.rewrite(model, fixed_zero_points=[["intermediate/dense", 128], ["^layer_\\d+/output/dense", 16]])
    ops = [nd.op_type for nd in model.graph.node]
    assert (
        ops.count("MatMulIntegerToFloat") == 3 and ops.count("DequantizeLinear") == 1
    )  # per-row zero point: the pooler
    h, y, _ = _exact_session(model).run(None, {"x": x})

    def exact(a, weight, z):
        ws = np.abs(weight).max(0) / 127
        wq = np.clip(np.round(weight / ws), -127, 127)
        scale = np.maximum(a.max(-1, keepdims=True) / (255 - z), -a.min(-1, keepdims=True) / z)
        aq = np.round(a / scale) + z
        assert aq.min() >= 0 and aq.max() <= 255  # nothing clips
        return scale * ((aq - z) @ wq) * ws

    for got, a, weight, z in ((h, x, w, 128), (y, np.maximum(h, 0), w2, 16)):
        want = exact(a, weight, z)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
        cos = (got * (a @ weight)).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(a @ weight, axis=-1)
        assert cos.min() >= 0.999, cos.min()


def test_a_recipe_file_is_read_and_checked_like_the_built_in_ones(tmp_path, capsys):
    import json

    from edgebert import cli

    assert cli.main(["recipes", "--show", "wi8_ai8i16"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "my_wi8_ai8i16" and data["precision"] == recipes.get("wi8_ai8i16").precision
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    r = recipes.get(str(path))
    assert r.name == "my_wi8_ai8i16" and r.ref == str(path.resolve()) and r.to_json()["path"] == r.ref
    assert "path" not in recipes.get("wi8_ai8i16").to_json()  # built-in manifests stay as they were

    def refused(content, match):
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        with pytest.raises(EdgebertError, match=match):
            recipes.get(str(path))

    refused("{not json", "is not JSON")
    refused({**data, "name": "wi8_ai8i16"}, "reuses the built-in name wi8_ai8i16")
    refused({k: v for k, v in data.items() if k != "thresholds"}, "missing thresholds")
    refused({**data, "precison": {}}, "unknown fields precison")
    refused({**data, "onnx": {"method": "fast"}}, "onnx method 'fast' is not one of")
    refused({**data, "precision": {"int16": "x"}}, r"precision keys \['int16'\] are read by nothing")
    with pytest.raises(EdgebertError, match="recipe file .*nope.json not found"):
        recipes.get(str(tmp_path / "nope.json"))


def test_android_int8_kinds_name_their_recipes():
    assert [recipes.android_recipe(k) for k in (False, True, "dynamic", "integer", "a16w8")] == [
        "fp32",
        "wi8_afp32",
        "wi8_afp32",
        "wi8_ai8i16",
        "wi8_ai16",
    ]
    assert all(recipes.get(recipes.android_recipe(k)).int8 for k in recipes.INT8_KINDS)
    with pytest.raises(EdgebertError, match="--int8 'w4' is not a kind of int8.*dynamic, integer, a16w8"):
        recipes.android_recipe("w4")


def test_per_row_int8_by_normalized_rows_equals_the_exact_product_and_float_products_stay_float():
    """``normalized_rows``: a matching MatMul divides each row by its largest magnitude, lets
    ``DynamicQuantizeMatMul`` quantize the result with one uint8 range (0 included) and multiplies
    the rows back: equal to that product in numpy. ``float_products``: a matching MatMul stays
    a float MatMul with its weights untouched."""
    from onnx import TensorProto, helper, numpy_helper

    from edgebert.quantize import onnx_row_int8

    rng = np.random.default_rng(2)
    k, n = 96, 200
    w = rng.normal(0, 0.05, (k, n)).astype(np.float32)
    w3 = rng.normal(0, 0.05, (n, k)).astype(np.float32)
    x = rng.normal(0.3, 1.0, (2, 5, k)).astype(np.float32)
    x[1, 2] *= 40  # an outlier token: with its own scale it costs the others nothing
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="layer_0/attention/output/dense/MatMul"),
            helper.make_node("MatMul", ["h", "w3"], ["p"], name="pooler/dense/MatMul"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, k])],
        [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in "hp"],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w3, "w3")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_row_int8.rewrite(model, normalized_rows="attention/output", float_products="^pooler/")
    ops = [nd.op_type for nd in model.graph.node]
    assert ops.count("DynamicQuantizeMatMul") == 1 and ops.count("MatMul") == 1 and "Round" not in ops, ops
    assert np.array_equal(numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w3")), w3)
    h, p = _exact_session(model).run(None, {"x": x})

    ws = np.abs(w).max(0) / 127
    wq = np.clip(np.round(w / ws), -127, 127)
    peak = np.abs(x).max(-1, keepdims=True)
    unit = x / peak
    hi, lo = max(unit.max(), 0.0), min(unit.min(), 0.0)
    scale = (hi - lo) / 255
    zp = np.clip(np.round(-lo / scale), 0, 255)
    uq = np.clip(np.round(unit / scale) + zp, 0, 255)
    want = peak * (scale * ((uq - zp) @ wq) * ws)
    assert np.abs(h - want).max() <= 1e-4 * np.abs(want).max()
    # Float against float: only the summation order differs (the outlier row's products are
    # 40x the rest); int8 would be off by about 1e-2 of the output's range.
    np.testing.assert_allclose(p, h @ w3, rtol=1e-4, atol=1e-5 * np.abs(p).max())
    cos = (h * (x @ w)).sum(-1) / np.linalg.norm(h, axis=-1) / np.linalg.norm(x @ w, axis=-1)
    assert cos.min() >= 0.999, cos.min()


def test_gptq_rounds_onto_the_converters_int8_grid_with_less_output_error_than_rounding():
    """``gptq.gptq_int8``: every column on its symmetric int8 grid with the step the
    converters recompute (``max |column| / 127``, the largest weight pinned at 127 steps), so
    they find the same integers; ``x @ W``'s error on correlated inputs well under
    round-to-nearest's."""
    from edgebert.quantize import gptq

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 64)) @ rng.normal(size=(64, 64)) + rng.normal(size=64)
    w = rng.normal(0, 0.05, (64, 48)).astype(np.float32)
    got = gptq.gptq_int8(w, x.T @ x, damp=0.01)
    step = np.abs(w).max(0) / 127
    np.testing.assert_allclose(np.abs(got).max(0) / 127, step, rtol=1e-6)  # the same grid
    steps = got / step
    assert np.abs(steps - np.round(steps)).max() < 1e-3 and np.abs(steps).max() <= 127 + 1e-3
    nearest = np.clip(np.round(w / step), -127, 127) * step
    err_gptq, err_nearest = np.linalg.norm(x @ (got - w)), np.linalg.norm(x @ (nearest - w))
    assert err_gptq < 0.8 * err_nearest, (err_gptq, err_nearest)  # 0.72 here


def test_gptq_statistics_are_each_inputs_gram_and_rounding_keeps_the_model(tmp_path):
    """``input_grams`` holds ``X^T X`` over real tokens of each dense input (layer 1's Q/K/V
    input is layer 0's output); ``round_weights`` moves every layer kernel onto its grid, keeps
    shapes, leaves the pooler and embeddings alone, and the model's output close."""
    from edgebert.model.config import layer_names
    from edgebert.quantize import gptq

    src = load_source(tiny_models.make_hf(tmp_path / "hf"))
    ids, mask, types = tiny_models.token_inputs(batch=3, seq=16, vocab=src.config.vocab_size)
    grams = gptq.input_grams(src, [(ids, mask, types)])
    out0 = numpy_bert.forward(src.config, src.weights, ids, mask, types, dtype=np.float32)["encoder_outputs"][0]
    real = out0[mask.astype(bool)]
    np.testing.assert_allclose(grams[layer_names(1)["qkv_smooth"]], real.T @ real, rtol=1e-4, atol=1e-3)
    # The statistics of the smoothing pass (unsmoothed inputs), carried over to the smoothed
    # model, are the smoothed model's own.
    raw: dict = {}
    ranges = smoothquant.activation_ranges(src, [(ids, mask, types)], raw)
    smoothed = smoothquant.smooth(src, ranges, 0.5, ("qkv", "ffn_in"))
    gptq.smooth_grams(raw, smoothed.weights)
    direct = gptq.input_grams(smoothed, [(ids, mask, types)])
    assert set(raw) == set(direct)
    for name in direct:
        np.testing.assert_allclose(raw[name], direct[name], rtol=1e-3, atol=1e-3 * np.abs(direct[name]).max())
    rounded = gptq.round_weights(src, grams, damp=0.01)
    changed = {k for k in src.weights if rounded.weights[k] is not src.weights[k]}
    kernels = {
        layer_names(i)[k] for i in range(src.config.num_layers) for k in ("q_w", "k_w", "v_w", "o_w", "i_w", "out_w")
    }
    assert changed == kernels
    for k in kernels:
        a, b = src.weights[k], rounded.weights[k]
        assert a.shape == b.shape and b.dtype == np.float32
        steps = b / (np.abs(a).max(0) / 127)
        assert np.abs(steps - np.round(steps)).max() < 1e-3
    want = numpy_bert.forward(src.config, src.weights, ids, mask, types)["pooled_output"]
    got = numpy_bert.forward(src.config, rounded.weights, ids, mask, types)["pooled_output"]
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 0.999, cos
