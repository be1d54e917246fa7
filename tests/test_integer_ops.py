"""The integer-only check (``edgebert.checks.integer_ops``) and the integer recipe ``wi8_ai8i16``."""

import numpy as np
import pytest

from edgebert.checks import integer_ops
from edgebert.eval import metrics
from edgebert.model.bundle import read_manifest
from edgebert.runtime import runners
from fixtures import exports


def _export(source, out, recipe, **kw):
    return exports.export_json(source, out, recipe, allow_accuracy_loss=True, **kw)


def test_integer_recipe_leaves_no_float_op_and_the_check_finds_float_ones(hf_tiny, tmp_path):
    m = _export(hf_tiny, tmp_path / "int", "wi8_ai8i16", seq_length=16, batch_size=1)
    for fmt, e in m["models"].items():
        report = e["integer_ops"]
        assert report["integer_only"] and report["float_ops"] == [] and report["ops"] > 100, (fmt, report)
        # Read again from the file: what the manifest says is what the file holds.
        check = integer_ops.check_tflite if fmt == "tflite" else integer_ops.check_onnx
        assert check(tmp_path / "int" / e["file"]) == report
    tfl = integer_ops.check_tflite(tmp_path / "int" / "model.tflite")
    # Float only at the boundary: the int32 mask / type ids cast for a QUANTIZE, two DEQUANTIZEd outputs.
    assert tfl["boundary"]["DEQUANTIZE"] == 2 and tfl["boundary"]["QUANTIZE"] >= 2
    # Dynamic-range int8 keeps float activations around int8 weights: every dense layer is a float op.
    dyn = _export(hf_tiny, tmp_path / "dyn", "wi8_afp32", seq_length=16)
    for fmt, e in dyn["models"].items():
        report = e["integer_ops"]
        kinds = {f["type"] for f in report["float_ops"]}
        assert not report["integer_only"], fmt
        assert ("FULLY_CONNECTED" if fmt == "tflite" else "MatMulIntegerToFloat") in kinds, (fmt, kinds)
        assert integer_ops.summary(report).startswith("integer-only: no, ")
    assert integer_ops.summary(m["models"]["tflite"]["integer_ops"]).startswith("integer-only: yes (")


def test_integer_recipe_mixes_int8_and_int16_by_its_precision_section(hf_tiny, tmp_path):
    """The op groups the recipe names keep int16 activations; the dense layers it does not name are
    int8 x int8 (the fast kernels); the word embedding table is int8."""
    from ai_edge_litert.interpreter import Interpreter

    _export(hf_tiny, tmp_path / "b", "wi8_ai8i16", seq_length=16, batch_size=1, formats=("tflite",))
    it = Interpreter(model_path=str(tmp_path / "b" / "model.tflite"))
    by_name = {}
    for op in it._get_ops_details():
        outs = [it._get_tensor_details(t, 0) for t in op["outputs"]]
        by_name[outs[0]["name"]] = (
            op["op_name"],
            outs[0]["dtype"],
            [it._get_tensor_details(t, 0) for t in op["inputs"]],
        )

    def kind(pattern):
        return {(op, dt.__name__) for name, (op, dt, _) in by_name.items() if pattern in name}

    assert kind("layer_0/attention/output/LayerNorm/tokens/Rsqrt") == {("RSQRT", "int16")}
    assert ("SOFTMAX", "int16") in kind("layer_1/attention/self/softmax")  # then requantized for the int8 context
    assert ("ADD", "int16") in kind("layer_0/output/residual")
    assert ("FULLY_CONNECTED", "int16") in kind("layer_0/output/dense")  # reads GELU's outliers
    for dense in ("layer_0/attention/self/query", "layer_0/attention/output/dense", "layer_1/intermediate/dense"):
        fc = [v for n, v in by_name.items() if n.startswith(dense) and v[0] == "FULLY_CONNECTED"]
        assert fc and fc[0][1] is np.int8 and {t["dtype"] for t in fc[0][2][:2]} == {np.int8}, dense
    gather = [v for v in by_name.values() if v[0] == "GATHER"]
    assert [t["dtype"] for t in gather[0][2][:1]] == [np.int8]  # the table


def test_a16w8_recipe_is_integer_only_with_int16_activations_everywhere(hf_tiny, tmp_path):
    """``wi8_ai16``: every compute op reads and writes int16 (TFLite) / uint16 (ONNX QDQ) activations
    around int8 weights; only the word embedding table's lookup stays int8."""
    from ai_edge_litert.interpreter import Interpreter

    m = _export(hf_tiny, tmp_path / "b", "wi8_ai16", seq_length=16, batch_size=1)
    for fmt, e in m["models"].items():
        assert e["integer_ops"]["integer_only"], (fmt, e["integer_ops"])
    it = Interpreter(model_path=str(tmp_path / "b" / "model.tflite"))
    kinds = {}
    for op in it._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE", "CAST"):
            continue  # the boundary, and the table's int8 -> int16 requantization
        out = it._get_tensor_details(op["outputs"][0], 0)["dtype"].__name__
        kinds.setdefault(out, set()).add(op["op_name"])
    assert {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "ADD", "MUL"} <= kinds["int16"], kinds
    assert kinds.get("int8", set()) <= {"GATHER"}, kinds  # the int8 word table
    fcs = [op for op in it._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    assert fcs and {it._get_tensor_details(op["inputs"][1], 0)["dtype"].__name__ for op in fcs} == {"int8"}
    # The recipe's graph spelling: each of the 5 LayerNorms normalizes [CLS]'s row apart, so two
    # RSQRTs each, and the two rows' variances carry ranges of their own.
    rsqrt = [op for op in it._get_ops_details() if op["op_name"] == "RSQRT"]
    assert len(rsqrt) == 10
    scales = {it._get_tensor_details(op["inputs"][0], 0)["quantization_parameters"]["scales"][0] for op in rsqrt}
    assert len(scales) == 10
    import onnx

    g = onnx.load(str(tmp_path / "b" / "model.onnx")).graph
    zero_points = {i.name: i.data_type for i in g.initializer}
    q_types: dict = {}
    for n in g.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2:
            q_types.setdefault(n.name.startswith("embeddings/word_embeddings/"), set()).add(zero_points[n.input[2]])
    # Every activation 16-bit but the table lookup's (and its reshape's): int8 as the table, then
    # requantized to 16-bit.
    u16, i8 = onnx.TensorProto.UINT16, onnx.TensorProto.INT8
    assert q_types == {False: {u16}, True: {i8, u16}}, q_types


def test_layer_norm_cls_apart_is_the_same_function_in_float(hf_tiny, tmp_path):
    """The graph spelling ``layer_norm_cls_apart`` (LayerNorm of [CLS]'s row apart, so an integer
    recipe gives [CLS]'s massive activations their own ranges) computes what the plain LayerNorm
    computes: the same fp32 outputs on padded batches, one CONCATENATION per LayerNorm."""
    import dataclasses

    from ai_edge_litert.interpreter import Interpreter

    from edgebert.exporters.convert import tflite
    from edgebert.exporters.sources import load_source
    from edgebert.quantize import recipes
    from fixtures import tiny_models

    plain = recipes.get("fp32")
    apart = dataclasses.replace(plain, graph={"layer_norm_cls_apart": True})
    ids, mask, types = tiny_models.token_inputs(batch=3, seq=16, vocab=tiny_models.vocab_size())
    feeds = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    outs, ops = {}, {}
    for name, recipe in (("plain", plain), ("apart", apart)):
        path = tflite.convert(load_source(hf_tiny), tmp_path / f"{name}.tflite", seq_length=None, recipe=recipe)
        it = Interpreter(model_path=str(path))
        outs[name] = it.get_signature_runner()(**feeds)
        ops[name] = [op["op_name"] for op in it._get_ops_details()]
    for k in outs["plain"]:
        assert np.max(np.abs(outs["plain"][k] - outs["apart"][k])) <= 1e-5, k
    layer_norms = 1 + 2 * 2  # embeddings + 2 per layer
    assert ops["apart"].count("CONCATENATION") == ops["plain"].count("CONCATENATION") + layer_norms
    assert ops["apart"].count("RSQRT") == 2 * ops["plain"].count("RSQRT") == 2 * layer_norms


@pytest.mark.slow
def test_integer_recipe_keeps_the_default_models_accuracy(default_model_dir, sentiment_dir, in_shared_cache, tmp_path):
    """The real model, both formats, static [1, 64]: integer-only, and within the recipe's
    thresholds on 200 real sentences (the calibration corpus is the file's last 600)."""
    from edgebert.eval.text_files import read_sentences
    from edgebert.exporters.sources import load_source
    from edgebert.model import numpy_bert
    from edgebert.tokenizer.wordpiece import BertTokenizer

    out = tmp_path / "b"
    m = exports.export_json(default_model_dir, out, "wi8_ai8i16", label="default", seq_length=64, batch_size=1)
    texts = read_sentences(sentiment_dir / "movieReviewSnippets_GroundTruth.txt", "test sentences")[:200]
    manifest = read_manifest(out)
    src = load_source(default_model_dir)
    feeds = BertTokenizer(out / "vocab.txt", True)(texts, seq_length=64)
    ref = numpy_bert.forward(src.config, src.weights, *(feeds[k] for k in runners.INPUT_NAMES), dtype=np.float32)
    for fmt, e in manifest.models.items():
        assert m["models"][fmt]["integer_ops"]["integer_only"], fmt
        runner = runners.open_runner(out / e.file, num_threads=2)
        got = runners.run_batches(runner, ({k: v[i : i + 1] for k, v in feeds.items()} for i in range(len(texts))))
        res = metrics.compare(got, ref, feeds["input_mask"])
        for output in ("pooled_output", "mean_pooled"):
            cos = res[output]["cosine"]
            # Measured 2026-12-01 on 1,000 sentences at [1, 128]: README, integer-only int8.
            assert cos["mean"] >= 0.99 and cos["min"] >= 0.97, (fmt, output, cos)
        assert e.bytes <= 0.3 * 90.9e6, fmt  # the fp32 file is 90.9 MB


@pytest.mark.parametrize("bad", ["truncated", "not_onnx"])
def test_integer_check_names_an_unreadable_file(tmp_path, bad):
    from edgebert.errors import EdgebertError

    p = tmp_path / ("m.tflite" if bad == "truncated" else "m.onnx")
    p.write_bytes(b"TFL3" + b"\0" * 10)
    check = integer_ops.check_tflite if p.suffix == ".tflite" else integer_ops.check_onnx
    with pytest.raises(EdgebertError, match="m\\.(tflite|onnx)"):
        check(p)


def test_export_takes_a_recipe_file_into_its_worker(hf_tiny, tmp_path):
    """A recipe file that also keeps the FFN-in dense layers int16: the converted file follows it,
    and the manifest records the file's recipe."""
    import json

    from edgebert.quantize import recipes

    data = recipes.get("wi8_ai8i16").to_json()
    data["name"] = "ffn_in_int16"
    data["precision"]["int16_select"] += r"|^layer_\d+/intermediate/dense/"
    path = tmp_path / "ffn.json"
    path.write_text(json.dumps(data))
    m = _export(hf_tiny, tmp_path / "b", str(path), seq_length=16, batch_size=1, formats=("tflite",))
    assert m["recipe"]["name"] == "ffn_in_int16" and m["recipe"]["path"] == str(path.resolve())
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tmp_path / "b" / "model.tflite"))
    widths = {
        it._get_tensor_details(op["outputs"][0], 0)["name"].split(";")[0]: it._get_tensor_details(op["outputs"][0], 0)[
            "dtype"
        ].__name__
        for op in it._get_ops_details()
        if op["op_name"] == "FULLY_CONNECTED"
    }
    ffn_in = [w for n, w in widths.items() if "intermediate/dense" in n]
    query = [w for n, w in widths.items() if "attention/self/query" in n]
    assert ffn_in and set(ffn_in) == {"int16"} and set(query) == {"int8"}, widths
