"""Static Edge TPU check (``edgebert.checks.edgetpu``) on real converted files of the tiny model:
Coral's op table, 8-bit-only tensors, static shapes, and the single segment that ends at the
first op the compiler cannot map."""

import pytest

from edgebert.checks import edgetpu as edgetpu_compat
from edgebert.errors import EdgebertError
from fixtures import exports


def _own(report):
    """{op type: count} of the ops the rules refuse by themselves (not only for their place)."""
    out = {}
    for f in report["refused"]:
        if f["why"] != edgetpu_compat.AFTER_FIRST:
            out[f["type"]] = out.get(f["type"], 0) + 1
    return out


def test_bert_stops_at_its_first_op_and_the_check_says_why(tiny_tflite):
    fp32 = edgetpu_compat.check_tflite(tiny_tflite["fp32"])
    assert fp32["mapped"] == 0 and not fp32["edgetpu_ready"] and len(fp32["refused"]) == fp32["ops"]
    assert "FLOAT32 tensor: the Edge TPU takes 8-bit tensors only" in {f["why"] for f in fp32["refused"]}
    # Even fully int8, BERT needs ops no version of Coral's table lists (2 layers: 2 x 2 BATCH_MATMUL).
    int8 = edgetpu_compat.check_tflite(tiny_tflite["full_int8"])
    own = _own(int8)
    assert own["BATCH_MATMUL"] == 4 and own["GATHER"] >= 1 and own["GELU"] == 2, own
    by_type = {f["type"]: f["why"] for f in int8["refused"]}
    assert by_type["BATCH_MATMUL"] == "not in the Edge TPU op table"
    first = int8["first_unmapped"]
    assert int8["mapped"] == first["op"] and first["why"] != edgetpu_compat.AFTER_FIRST
    # Everything from the first unmapped op on runs on the CPU, mappable or not.
    assert [f["op"] for f in int8["refused"]] == list(range(first["op"], int8["ops"]))
    assert any(f["why"] == edgetpu_compat.AFTER_FIRST for f in int8["refused"])
    # int16 activations: refused wherever they appear.
    a16 = edgetpu_compat.check_tflite(tiny_tflite["a16w8"])
    assert _own(a16)["FULLY_CONNECTED"] == sum(1 for f in a16["refused"] if f["type"] == "FULLY_CONNECTED")
    assert any(f["why"].startswith("INT16 tensor") for f in a16["refused"])
    line = edgetpu_compat.summary(int8)
    assert line.startswith(f"Edge TPU (compiler rules): {int8['mapped']}/{int8['ops']} ops mapped; stops at op ")
    assert "BATCH_MATMUL x4" in line


def test_op_rules_on_the_int8_file(tiny_tflite):
    """Per op: an int8 FULLY_CONNECTED with its int32 constant bias is mappable; SOFTMAX over
    attention scores is not (the table's 1-D limit); QUANTIZE of a float input is not."""
    from edgebert.formats import tflite_graph

    seen = {}

    def visit(fb, sg):
        for i in range(sg.OperatorsLength()):
            o = tflite_graph.Op(fb, sg, sg.Operators(i))
            seen.setdefault(o.name, edgetpu_compat.validate(o))
        return {}

    tflite_graph.check_signatures(tiny_tflite["full_int8"], visit)
    assert seen["FULLY_CONNECTED"] is None and seen["ADD"] is None
    assert seen["SOFTMAX"] == "SOFTMAX takes a 1-D input of at most 16,000 elements (this one is [1, 4, 16, 16])"
    assert seen["QUANTIZE"] == "FLOAT32 tensor: the Edge TPU takes 8-bit tensors only"
    assert seen["GATHER"] == seen["BATCH_MATMUL"] == seen["GELU"] == "not in the Edge TPU op table"


def test_export_stores_the_report_and_unreadable_files_are_named(hf_tiny, tmp_path):
    m = exports.export_json(hf_tiny, tmp_path / "b", formats=("tflite",), seq_length=16, batch_size=1)
    stored = m["models"]["tflite"]["edgetpu_compatibility"]
    assert stored == edgetpu_compat.check_tflite(tmp_path / "b" / "model.tflite")
    assert stored["mapped"] == 0 and stored["source"] == edgetpu_compat.SOURCE
    (tmp_path / "cut.tflite").write_bytes((tmp_path / "b" / "model.tflite").read_bytes()[:200])
    with pytest.raises(EdgebertError, match="not a readable TFLite flatbuffer"):
        edgetpu_compat.check_tflite(tmp_path / "cut.tflite")
