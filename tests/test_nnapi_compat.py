"""Static NNAPI-delegate check (``edgebert.checks.nnapi``) on real converted files of the tiny
model: what NNAPIDelegateKernel::Validate accepts per feature level, the op versions it knows,
the partition limit, dynamic shapes, and what ``load(delegate="nnapi")`` says."""

import pytest

from edgebert.checks import nnapi as nnapi_compat
from edgebert.errors import EdgebertError
from edgebert.runtime.edge_model import load
from fixtures import exports


def _kinds(report):
    counts = {}
    for f in report["refused"]:
        counts[(f["type"], f["why"])] = counts.get((f["type"], f["why"]), 0) + 1
    return counts


GELU = ("GELU", "no NNAPI mapping for this op in Validate")


def test_fp32_static_graph_is_taken_but_for_gelu(tiny_tflite):
    r = nnapi_compat.check_tflite(tiny_tflite["fp32"])
    # 102 ops; the 2 GELUs (one per layer) cut the rest into 3 partitions, all within the limit of 3.
    assert (r["feature_level"], r["ops"], r["delegated"], r["partitions"]) == (8, 102, 100, 3), r
    assert _kinds(r) == {GELU: 2} and not r["nnapi_ready"] and not r["dynamic_inputs"]
    assert nnapi_compat.summary(r) == (
        "NNAPI (feature level 8): 100/102 ops delegated in 3 partition(s); "
        "refused: 2 GELU (no NNAPI mapping for this op in Validate)"
    )
    # Feature level 4 (Android 11): BATCH_MATMUL and int32 RESHAPE need level 6, which cuts the
    # graph into 7 partitions, of which only the 3 largest are delegated.
    r4 = nnapi_compat.check_tflite(tiny_tflite["fp32"], feature_level=4)
    kinds = _kinds(r4)
    assert kinds[("BATCH_MATMUL", "needs feature level 6")] == 4
    assert kinds[("RESHAPE", "INT32 input: needs feature level 6")] == 2
    assert r4["partitions"] == 3 and r4["delegated"] == 62, r4
    assert "outside the 3 largest of 7 partitions" in nnapi_compat.summary(r4)
    # Level 3 (Android 10): the rank-3 FULLY_CONNECTED (keep_num_dims) needs level 4.
    r3 = nnapi_compat.check_tflite(tiny_tflite["fp32"], feature_level=3)
    assert (
        _kinds(r3)[("FULLY_CONNECTED", "keep_num_dims (a rank-3 [batch, seq, hidden] output) needs feature level 4")]
        == 12
    )


def test_dynamic_shape_refuses_the_whole_model(tiny_tflite):
    r = nnapi_compat.check_tflite(tiny_tflite["fp32_dynamic"])
    assert r["dynamic_inputs"] and r["delegated"] == 0 and not r["nnapi_ready"]
    assert r["refused"][0]["type"] == "MODEL" and "static shapes only" in r["refused"][0]["why"]
    assert nnapi_compat.summary(r).startswith("NNAPI (feature level 8): not for this bundle (a dynamic shape")


def test_dynamic_range_fully_connected_is_refused_by_op_version(tiny_tflite):
    r = nnapi_compat.check_tflite(tiny_tflite["dynamic_range"])
    # TF 2.21 writes float-activation / per-channel int8-weight FULLY_CONNECTED as version 12;
    # Validate takes FULLY_CONNECTED up to version 5, at every feature level.
    fc = ("FULLY_CONNECTED", "op version 12 > 5, the newest the delegate validates")
    assert _kinds(r)[fc] == 13 and _kinds(r)[GELU] == 2
    assert r["ops"] == 103 and r["delegated"] == 46, r
    assert "refused: 13 FULLY_CONNECTED (op version 12 > 5" in nnapi_compat.summary(r)
    assert _kinds(nnapi_compat.check_tflite(tiny_tflite["dynamic_range"], feature_level=3))[fc] == 13


def test_full_integer_needs_feature_level_4_for_asymmetric_int8(tiny_tflite):
    r8 = nnapi_compat.check_tflite(tiny_tflite["full_int8"])
    assert _kinds(r8) == {GELU: 2} and (r8["ops"], r8["delegated"]) == (106, 104), r8
    r4, r3 = (nnapi_compat.check_tflite(tiny_tflite["full_int8"], feature_level=n) for n in (4, 3))
    int8_out = ("QUANTIZE", "INT8 output: needs feature level 4")
    asym = ("DEQUANTIZE", "asymmetric int8 (zero point != 0) needs feature level 4; level 3 takes symmetric int8 only")
    assert _kinds(r3)[int8_out] == 2 and _kinds(r3)[asym] == 1
    assert int8_out not in _kinds(r4) and asym not in _kinds(r4)
    # int8 RSQRT only from level 7, whatever the level 4 device.
    assert _kinds(r4)[("RSQRT", "INT8 input: needs feature level 7")] == 5
    assert ("RSQRT", "INT8 input: needs feature level 7") not in _kinds(
        nnapi_compat.check_tflite(tiny_tflite["full_int8"], 7)
    )


def test_bad_level_and_corrupt_file(tiny_tflite, tmp_path):
    with pytest.raises(EdgebertError, match="feature level 9 does not exist"):
        nnapi_compat.check_tflite(tiny_tflite["fp32"], feature_level=9)
    (tmp_path / "cut.tflite").write_bytes(tiny_tflite["fp32"].read_bytes()[:200])
    with pytest.raises(EdgebertError, match="not a readable TFLite flatbuffer"):
        nnapi_compat.check_tflite(tmp_path / "cut.tflite")


def test_export_stores_the_report_and_load_says_what_falls_back(hf_tiny, tmp_path):
    m = exports.export_json(hf_tiny, tmp_path / "b", formats=("tflite",), seq_length=16, batch_size=1)
    stored = m["models"]["tflite"]["nnapi_compatibility"]
    assert stored["feature_level"] == 8 and _kinds(stored) == {GELU: 2}
    # No NNAPI delegate library on this machine: the error names what would not be delegated.
    with pytest.raises(EdgebertError, match=r"no TFLite nnapi delegate .*static check: NNAPI \(feature level 8\): "):
        load(tmp_path / "b", delegate="nnapi")
    with pytest.warns(RuntimeWarning, match=r"refused: 2 GELU"):
        load(tmp_path / "b", delegate="nnapi", fallback=True, num_threads=1)
