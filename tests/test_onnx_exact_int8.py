"""ONNX int8 weights re-signed for ONNX Runtime's exact u8 x u8 kernel (x86 without VNNI), by a
protobuf edit that needs no ``onnx`` package."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebert.errors import EdgebertError
from edgebert.formats import onnx_exact_int8, onnx_wire

K, N = 256, 64


def _graph(tmp_path, external: bool):
    """A graph with each integer product ONNX Runtime has, on full-range u8 activations and
    int8 weights (the case VPMADDUBSW saturates on), plus one int8 weight that a Cast also
    reads (which must stay as it is)."""
    rng = np.random.default_rng(0)
    w = {n: rng.integers(-127, 128, (K, N)).astype(np.int8) for n in ("w_itf", "w_dqm", "w_mmi", "w_shared")}
    inits = [numpy_helper.from_array(v, n) for n, v in w.items()]
    inits += [
        numpy_helper.from_array(np.full(N, 0.01, np.float32), "b_scale"),
        numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
    ]
    nodes = [
        helper.make_node(
            "MatMulIntegerToFloat", ["a", "w_itf", "a_scale", "b_scale"], ["y_itf"], domain="com.microsoft"
        ),
        helper.make_node("DynamicQuantizeMatMul", ["x", "w_dqm", "b_scale"], ["y_dqm"], domain="com.microsoft"),
        helper.make_node("MatMulInteger", ["a", "w_mmi"], ["y_mmi"]),
        helper.make_node("MatMulInteger", ["a", "w_shared"], ["y_shared"]),
        helper.make_node("Cast", ["w_shared"], ["w_shared_f"], to=TensorProto.FLOAT),
    ]
    outputs = [
        helper.make_tensor_value_info("y_itf", TensorProto.FLOAT, [None, N]),
        helper.make_tensor_value_info("y_dqm", TensorProto.FLOAT, [None, N]),
        helper.make_tensor_value_info("y_mmi", TensorProto.INT32, [None, N]),
        helper.make_tensor_value_info("y_shared", TensorProto.INT32, [None, N]),
        helper.make_tensor_value_info("w_shared_f", TensorProto.FLOAT, [K, N]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [None, K]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, K]),
        ],
        outputs,
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 10
    path = tmp_path / "src" / "model.onnx"
    path.parent.mkdir()
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path, w


def _run(path, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-data"])
def test_rewrite_resigns_product_weights_and_runs_exact(tmp_path, external):
    path, w = _graph(tmp_path, external)
    assert onnx_exact_int8.rewrite(path, tmp_path / "out") == 3
    got = onnx.load(str(tmp_path / "out" / "model.onnx"))
    inits = {i.name: numpy_helper.to_array(i, str(tmp_path / "out")) for i in got.graph.initializer}
    for name in ("w_itf", "w_dqm", "w_mmi"):
        assert inits[name].dtype == np.uint8 and np.array_equal(inits[name].astype(int) - 128, w[name])
    assert inits["w_shared"].dtype == np.int8 and np.array_equal(inits["w_shared"], w["w_shared"])
    assert inits[onnx_exact_int8.ZERO_POINT].shape == () and int(inits[onnx_exact_int8.ZERO_POINT]) == 128
    zp = onnx_exact_int8.ZERO_POINT
    assert [list(n.input) for n in got.graph.node] == [
        ["a", "w_itf", "a_scale", "b_scale", "", zp],
        ["x", "w_dqm", "b_scale", zp],
        ["a", "w_mmi", "", zp],
        ["a", "w_shared"],
        ["w_shared"],
    ]
    onnx.checker.check_model(str(tmp_path / "out" / "model.onnx"))

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, K)).astype(np.uint8)
    x = rng.standard_normal((32, K)).astype(np.float32)
    y_itf, _, y_mmi, y_shared, w_cast = _run(tmp_path / "out" / "model.onnx", {"a": a, "x": x})
    exact = a.astype(np.int64) @ w["w_itf"].astype(np.int64)
    exact_mmi = a.astype(np.int64) @ w["w_mmi"].astype(np.int64)
    np.testing.assert_allclose(y_itf, exact * np.float32(0.02 * 0.01), rtol=1e-5)
    assert np.array_equal(y_mmi, exact_mmi)
    assert np.array_equal(w_cast, w["w_shared"].astype(np.float32))
    # The source's u8 x s8 product: exact where the CPU accumulates in int32, off where it saturates.
    native_itf, _, native_mmi, native_shared, _ = _run(path, {"a": a, "x": x})
    assert np.array_equal(native_shared, y_shared)  # the weight left alone runs as before
    # (Each product against its own weight's: until 2026-12-07 both branches compared the w_mmi
    # product with w_itf's, which let the saturating branch pass whatever ONNX Runtime computed and
    # failed the exact branch on the first AVX512-VNNI machine that ran it.)
    if onnx_exact_int8.u8s8_saturates():
        assert np.abs(native_mmi - exact_mmi).max() > 1000  # the reason for all this
    else:
        assert np.array_equal(native_mmi, exact_mmi) and np.array_equal(native_itf, y_itf)


def test_external_data_file_travels_even_when_no_weight_in_it_is_resigned(tmp_path):
    """Int8 weights inline, a float tensor in the data file: the copy still needs that file."""
    from onnx import external_data_helper

    path, w = _graph(tmp_path, external=False)
    model = onnx.load(str(path))
    scale = next(i for i in model.graph.initializer if i.name == "b_scale")
    external_data_helper.set_external_data(scale, "floats.bin")
    onnx.save(model, str(path))
    assert (path.parent / "floats.bin").is_file()
    assert onnx_exact_int8.rewrite(path, tmp_path / "out") == 3
    assert (tmp_path / "out" / "floats.bin").read_bytes() == (path.parent / "floats.bin").read_bytes()
    a = np.random.default_rng(1).integers(0, 256, (8, K)).astype(np.uint8)
    x = np.zeros((8, K), np.float32)
    y_itf = _run(tmp_path / "out" / "model.onnx", {"a": a, "x": x})[0]
    exact = a.astype(np.int64) @ w["w_itf"].astype(np.int64)
    np.testing.assert_allclose(y_itf, exact * np.float32(0.02 * 0.01), rtol=1e-5)


def test_rewrite_keeps_every_other_byte(tmp_path):
    """Fields the edit does not touch pass through as they were: doc strings, opsets, metadata."""
    path, _ = _graph(tmp_path, external=False)
    model = onnx.load(str(path))
    model.doc_string = "kept"
    model.metadata_props.add(key="edgebert", value="kept too")
    model.graph.node[4].doc_string = "a cast"
    onnx.save(model, str(path))
    onnx_exact_int8.rewrite(path, tmp_path / "out")
    got = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert got.doc_string == "kept" and got.metadata_props[0].value == "kept too"
    assert got.graph.node[4] == model.graph.node[4] and got.graph.output == model.graph.output
    assert got.opset_import == model.opset_import and got.ir_version == model.ir_version


def test_nothing_to_rewrite_writes_nothing(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [x]))
    model.graph.output[0].name = "y"
    onnx.save(model, str(tmp_path / "m.onnx"))
    assert onnx_exact_int8.rewrite(tmp_path / "m.onnx", tmp_path / "out") == 0
    assert not (tmp_path / "out").exists()
    with onnx_exact_int8.loadable(tmp_path / "m.onnx", exact_int8=True) as (p, n):
        assert p == tmp_path / "m.onnx" and n == 0


def test_truncated_file_is_refused(tmp_path):
    path, _ = _graph(tmp_path, external=False)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(EdgebertError, match="truncated"):
        onnx_exact_int8.rewrite(cut, tmp_path / "out")
    assert onnx_wire.read_varint(onnx_wire.varint(300), 0) == (300, 2)
    assert onnx_wire.packed_ints(onnx_wire.parse(onnx_wire.encode(5, onnx_wire.varint(-3))), 5) == [-3]


@pytest.mark.parametrize(
    "flags,machine,saturates",
    [
        ({"avx2", "fma"}, "x86_64", True),  # AVX2 only: VPMADDUBSW
        ({"avx2", "avx512f", "avx512bw"}, "x86_64", True),  # AVX-512 without VNNI: the same
        ({"avx2", "avx512bw", "avx512_vnni"}, "x86_64", False),
        ({"avx2", "avx_vnni"}, "AMD64", False),
        (None, "x86_64", True),  # flags unreadable: the exact side
        ({"asimd"}, "aarch64", False),  # Arm kernels widen to 16 bits
    ],
)
def test_which_cpus_saturate(flags, machine, saturates, monkeypatch):
    monkeypatch.setattr(onnx_exact_int8, "cpu_flags", lambda: flags)
    assert onnx_exact_int8.u8s8_saturates(machine=machine) is saturates
