"""Pure functions on synthetic inputs: the pieces the export, verify and runtime tests only
reach through whole models, checked here on cases small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from edgebert.errors import EdgebertError
from edgebert.eval import linear_probe
from edgebert.exporters.convert.layer_taps import Op, find_layer_outputs
from edgebert.runtime import delegates
from edgebert.runtime.edge_model import LENGTH_BUCKET, EdgeModel


# ------------------------------------------------------------------ layer-output search
def _onnx_like_layers():
    """Two layers as ONNX spells them: layer 0's output goes through SmoothQuant's scale and a
    quantizer before layer 1's query projection reads it."""
    return [
        Op("layer_0/attention/self/query/MatMul", "MatMul", ["x"], ["q0"]),
        Op("layer_0/output/LayerNorm/add_1", "Add", ["q0", "beta"], ["h0"]),
        Op("layer_1/attention/self/query/qkv_smooth", "Mul", ["h0", "s"], ["h0s"]),
        Op("layer_1/attention/self/query/quant", "DynamicQuantizeLinear", ["h0s"], ["h0q"]),
        Op("layer_1/attention/self/query/MatMul", "MatMulInteger", ["h0q", "w"], ["q1"]),
        Op("layer_1/attention/self/key/MatMul", "MatMulInteger", ["h0q", "wk"], ["k1"]),
    ]


def test_layer_output_is_found_through_smoothing_and_quantizers():
    assert find_layer_outputs(_onnx_like_layers(), {"beta", "s", "w", "wk"}, num_layers=2) == ["h0"]


def test_layer_output_of_a_folded_layernorm_is_the_add_the_residual_reads():
    """TFLite folds gamma/beta into the projection and names it after the folded ops: the
    layer's output is then the ADD named first in the fused name."""
    ops = [
        Op("layer_0/output/LayerNorm/normalize", "MUL", ["x", "r"], ["n0"]),
        Op("add_10", "ADD", ["n0", "beta"], ["h0"]),
        Op("mul_10;add_10;layer_1/attention/self/query/MatMul", "FULLY_CONNECTED", ["n0", "w"], ["q1"]),
    ]
    assert find_layer_outputs(ops, {"beta", "w", "r"}, num_layers=2) == ["h0"]


def test_a_graph_without_the_next_query_projection_is_refused():
    ops = [op for op in _onnx_like_layers() if "layer_1/attention/self/query/MatMul" not in op.name]
    with pytest.raises(EdgebertError, match="no query projection of layer 1"):
        find_layer_outputs(ops, set(), num_layers=2)


# ------------------------------------------------------------------ delegate counting
class _Graph:
    """The calls ``tflite_delegation`` makes on LiteRT's interpreter wrapper."""

    def __init__(self, nodes, outputs):
        self.nodes, self.outputs = nodes, outputs  # nodes: (name, inputs, outputs)

    def NumNodes(self):
        return len(self.nodes)

    def NodeName(self, i):
        return self.nodes[i][0]

    def NodeInputs(self, i):
        return self.nodes[i][1]

    def NodeOutputs(self, i):
        return self.nodes[i][2]

    def OutputIndices(self):
        return self.outputs


class _Interpreter:
    def __init__(self, graph):
        self._interpreter = graph


def test_delegated_ops_are_those_whose_outputs_only_the_partition_reads():
    # A -> [B -> C] -> D: the delegate takes B and C (reads t1, gives back t3); A feeds it and
    # D makes the model's output, so those two run on the CPU.
    nodes = [("A", [0], [1]), ("B", [1], [2]), ("C", [2], [3]), ("D", [3], [4]), ("DELEGATE", [1], [3])]
    total, delegated, partitions, cpu = delegates.tflite_delegation(_Interpreter(_Graph(nodes, [4])))
    assert (total, delegated, partitions, cpu) == (4, 2, 1, {"A": 1, "D": 1})


def test_without_a_delegate_every_op_runs_on_the_cpu():
    nodes = [("FULLY_CONNECTED", [0], [1]), ("FULLY_CONNECTED", [1], [2]), ("ADD", [2, -1], [3])]
    assert delegates.tflite_delegation(_Interpreter(_Graph(nodes, [3]))) == (3, 0, 0, {"FULLY_CONNECTED": 2, "ADD": 1})


# ------------------------------------------------------------------ Wilson bound
@pytest.mark.parametrize("p, n, want", [(0.5, 100, 0.58116), (1.0, 50, 1.0), (0.0, 20, 0.11918), (0.9, 0, 1.0)])
def test_wilson_upper_bound_matches_the_formula(p, n, want):
    assert linear_probe.wilson_upper(p, n) == pytest.approx(want, abs=1e-5)


def test_wilson_upper_bound_tightens_with_more_sentences():
    bounds = [linear_probe.wilson_upper(0.97, n) for n in (10, 100, 1000, 10000)]
    assert all(a > b for a, b in zip(bounds, bounds[1:])) and bounds[-1] > 0.97


# ------------------------------------------------------------------ length batching
def _model(seq_length=None, model_batch=None, batch_size=2):
    m = EdgeModel.__new__(EdgeModel)  # batching reads three attributes; no bundle needed
    m.seq_length, m.model_batch, m.batch_size = seq_length, model_batch, batch_size
    return m


def _feeds(lengths, width=32):
    mask = (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)
    ids = np.where(mask, np.arange(1, len(lengths) + 1)[:, None], 0).astype(np.int32)
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(mask)}


def test_dynamic_batches_run_longest_first_cut_to_a_multiple_of_the_bucket():
    feeds = _feeds([3, 20, 9, 17, 1])
    got = [(idx.tolist(), b["input_mask"].shape) for idx, b in _model().batches(feeds)]
    assert got == [([1, 3], (2, 24)), ([2, 0], (2, 16)), ([4], (1, 8))]
    assert LENGTH_BUCKET == 8
    for idx, b in _model().batches(feeds):  # rows keep their own tokens, only padding is cut
        assert (b["input_mask"].sum(1) == feeds["input_mask"][idx].sum(1)).all()


def test_fixed_length_and_fixed_batch_graphs_get_full_width_and_empty_rows():
    feeds = _feeds([3, 20, 9])
    got = [
        (idx.tolist(), b["input_word_ids"].shape, b["input_mask"][len(idx) :].sum())
        for idx, b in _model(seq_length=32, model_batch=2).batches(feeds)
    ]
    assert got == [([1, 2], (2, 32), 0), ([0], (2, 32), 0)]  # the last batch filled with one empty row


# ------------------------------------------------------------------ profile attribution
def test_profile_puts_unscoped_nodes_in_the_layer_they_follow(tmp_path):
    """ONNX Runtime's profile names nodes; the Keras graph leaves attention scores, GELU and
    LayerNorm statistics unscoped, so they count for the layer whose nodes precede them."""
    import onnx
    from onnx import TensorProto, helper

    from benchmarks.profile import node_parts

    names = [
        "embeddings/add",
        "layer_0/attention/self/query/MatMul",
        "MatMul_7",
        "Erf_4",
        "layer_1/output/add",
        "add_24",
        "pooler/dense/MatMul",
    ]
    nodes = [helper.make_node("Identity", [f"t{i}"], [f"t{i + 1}"], name=n) for i, n in enumerate(names)]
    io = [helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, [1]) for i in (0, len(names))]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:])), str(tmp_path / "m.onnx"))
    parts = node_parts(tmp_path / "m.onnx")
    assert [parts[n] for n in names] == [
        "embeddings",
        "layer_00",
        "layer_00",
        "layer_00",
        "layer_01",
        "layer_01",
        "pooler",
    ]


def test_litert_profile_parts_anchor_on_the_dense_products():
    """XNNPACK's operator events carry no op names, so layers are counted by dense products: with
    13 products and 2 layers each layer owns 6, the 13th is the pooler's; an event belongs to the
    part of the last product before it, events before the first product to the embeddings."""
    from benchmarks.litert_profiler import DEFAULT_EVENT, DELEGATE_OPERATOR_EVENT, OPERATOR_EVENT, Event, summarize

    def ev(tag, us, kind=DELEGATE_OPERATOR_EVENT):
        return Event(tag, kind, us, 0)

    fc = "Fully Connected (NC, QDU8, F32, QC8W) GEMM"
    layer = [ev(fc, 10)] * 6 + [ev("Add (ND)", 2), ev("Mean (ND) Reduce2", 1)]
    run = [
        ev("Invoke", 200, DEFAULT_EVENT),
        ev("GATHER", 3, OPERATOR_EVENT),
        *layer,
        *layer,
        ev(fc, 4),
        ev("TanH (NC)", 1),
    ]
    out = summarize([run, run], layers=2)
    assert out["runs_profiled"] == 2 and out["model_run_ms_p50"] == 0.2
    assert out["by_layer_ms"] == {"embeddings": 0.003, "layer_00": 0.063, "layer_01": 0.063, "pooler": 0.005}
    assert out["by_op_type_ms"][fc] == 0.124
    assert out["by_runner_ms"] == {"builtin": 0.003, "xnnpack": 0.131}
    assert out["op_events_per_run"] == 19 and out["products_per_run"] == 13
    assert out["product_ms_by_position"] == [0.01] * 6


# ------------------------------------------------------------------ progress of long steps
def test_ticker_speaks_at_most_every_interval_and_at_the_end(monkeypatch):
    from edgebert.exporters.pipelines import progress

    clock = iter([0.0, 5.0, 16.0, 20.0, 40.0])  # start, then one reading per add()
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    t = progress.Ticker("bundle", 40, say=lines.append, every_s=15.0)
    for _ in range(4):
        t.add(10)
    # 5 s: quiet; 16 s: 20 done at 1.25/s, 16 s left; 20 s: quiet; 40 s: the end, said because it spoke
    assert lines == ["  bundle: 20/40 sentences (1.25/s, about 16 s left)", "  bundle: 40/40 sentences (1.00/s, 40 s)"]


def test_a_quick_step_says_nothing(monkeypatch):
    from edgebert.exporters.pipelines import progress

    clock = iter([0.0, 1.0, 2.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    t = progress.Ticker("gate", 16, say=lines.append)
    t.add(8)
    t.add(8)
    assert lines == []


def test_encoding_in_chunks_pads_as_one_call_does():
    from edgebert.exporters.pipelines.verify import encode_with_progress

    class Model:  # a dynamic-length model: each call's width is its longest text (words here)
        def encode(self, texts, seq_length):
            width = max(len(t.split()) for t in texts)
            mask = np.array([[1] * len(t.split()) + [0] * (width - len(t.split())) for t in texts], np.int32)
            seq = mask[..., None] * np.array([[len(t)] for t in texts], np.float32)[:, :, None]
            return {
                "pooled_output": np.array([[len(t)] for t in texts], np.float32),
                "sequence_output": seq,
                "input_mask": mask,
            }

    texts = ["a", "a b c", "a b", "a b c d e", "a"]
    whole = Model().encode(texts, 128)
    chunked = encode_with_progress(Model(), texts, 128, progress=lambda _: None, chunk=2)
    for k in whole:
        assert chunked[k].shape == whole[k].shape
        np.testing.assert_array_equal(chunked[k], whole[k])


def test_roofline_shares_hold_each_variant_against_its_own_precision():
    from benchmarks import report

    res = {
        "roofline": {
            "tflite": {"gmacs_per_s": 800.0, "shape": [128, 1024, 4096]},
            "onnx": {"gmacs_per_s": 600.0, "shape": [1, 2, 3]},
        },
        "roofline_fp32": {
            "tflite": {"gmacs_per_s": 200.0, "shape": [128, 1024, 4096]},
            "onnx": {"gmacs_per_s": 160.0, "shape": [1, 2, 3]},
        },
        "models": {
            "base": {
                "variants": {
                    "TF SavedModel fp32": {"gmacs_per_s_seq128": 100.0},  # no roofline of its own
                    "TFLite fp32": {"gmacs_per_s_seq128": 150.0},
                    "TFLite dynamic int8": {"gmacs_per_s_seq128": 520.0},
                    "ONNX fp32": {"gmacs_per_s_seq128": 120.0},
                    "ONNX dynamic int8": {"gmacs_per_s_seq128": 450.0},
                    "ONNX static int8": {"gmacs_per_s_seq128": 300.0},  # static: not the dynamic roofline
                }
            }
        },
    }
    assert report.roofline_shares(res) == [
        "base: TFLite fp32 150 GMAC/s = 75%; TFLite dynamic int8 520 GMAC/s = 65%; "
        "ONNX fp32 120 GMAC/s = 75%; ONNX dynamic int8 450 GMAC/s = 75%"
    ]
    assert report.roofline_shares({"models": res["models"]}) == []
    machine = dict.fromkeys(
        ("cpu", "cores", "threads", "python", "ai-edge-litert", "onnxruntime", "tensorflow", "date"), "x"
    )
    plan = {"rounds": 1, "reps": 10}
    md = report.markdown({**res, "machine": machine, "plan": plan, "models": {}, "wall_minutes": 1}, "cmd")
    assert "fp32 roofline, the same products in fp32: tflite 200.0 GMAC/s" in md


def test_onnx_forms_bounds_hold_each_runtime_against_its_own_single_product():
    from benchmarks import onnx_forms as of

    cfg = {"hidden_size": 64, "intermediate_size": 256, "num_layers": 2}
    total = 2 * (4 * 128 * 64 * 64 + 2 * 128 * 64 * 256 + 2 * 128 * 128 * 64) + 64 * 64
    ms = {of.TF: 50.0, of.PER_ROW: 10.0, of.FLOOR: 5.0, of.FP32: 12.0, of.FLOOR_FP32: 9.0}
    ms |= {of.TFLITE["wi8_afp32"]: 4.0, of.TFLITE["fp32"]: 10.0}
    for name, (backend, precision, (m, k, n)) in of.SINGLE_PRODUCTS.items():
        # 1000 GMAC/s for ONNX Runtime's int8 at the large shape, half that at the small one.
        rate = {"onnx": 1000.0, "tflite": 2000.0}[backend] / (1 if precision == "int8" else 4)
        ms[name] = m * k * n / (rate if k == 1024 else rate / 2) / 1e6
    b = of.bounds(ms, cfg, 128)
    assert b["roofline_int8_gmacs"] == 1000.0 and b["tflite_roofline_int8_gmacs"] == 2000.0
    assert b["roofline_fp32_gmacs"] == 250.0
    assert b["onnx_int8_share"] == round(total / 10.0 / 1e6 / 1000.0, 3)
    assert b["floor_int8_share"] == round(total / 5.0 / 1e6 / 1000.0, 3)
    assert b["tflite_int8_share"] == round(total / 4.0 / 1e6 / 2000.0, 3)
    assert (b["five_x_tf_ms"], b["onnx_int8_x_tf"], b["tflite_int8_x_tf"], b["floor_int8_x_tf"]) == (10, 5, 12.5, 10)
    assert (b["onnx_fp32_over_tflite_fp32"], b["floor_fp32_over_tflite_fp32"]) == (1.2, 0.9)


@pytest.mark.parametrize("precision, op", [("int8", "DynamicQuantizeMatMul"), ("fp32", "MatMul")])
def test_products_floor_is_the_models_dense_products_and_nothing_else(tmp_path, precision, op):
    import onnx
    import onnxruntime as ort

    from benchmarks.onnx_forms import products_floor

    path = tmp_path / "floor.onnx"
    products_floor(2, 16, 64, path, precision)
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node] == [op] * 8  # Q/K/V, attention-out, FFN-in, FFN-out a layer
    shapes = sorted(tuple(i.dims) for i in model.graph.initializer if i.name.endswith("/kernel"))
    assert shapes == sorted([(16, 48), (16, 16), (16, 64), (64, 16)] * 2)
    x = np.random.default_rng(0).normal(0, 1, (1, 8, 16)).astype(np.float32)
    outs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    # The chain keeps its values near 1 (no overflow or denormals skewing the timing).
    assert [o.shape for o in outs] == [(1, 8, 48), (1, 8, 48), (1, 8, 16)]
    assert 0.1 < float(np.abs(outs[-1]).mean()) < 10
