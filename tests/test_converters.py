"""The encoder graph converts to TFLite and ONNX and runs in ai-edge-litert / ONNX Runtime
like the source, at fixed and dynamic shapes, for every catalog hidden size."""

import numpy as np
import pytest

from edgebert.backends import open_runner
from edgebert.exporters.convert import onnx_export, tflite
from edgebert.exporters.sources import load_source
from edgebert.model import numpy_bert
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


def test_onnx_fusion_is_kept_only_when_it_reproduces_the_graph(long_tiny, monkeypatch, tmp_path):
    """ORT's optimizer once swapped Q and K silently; a fused graph that differs is dropped."""
    import onnxruntime.transformers.optimizer as ort_opt

    report = {}
    onnx_export.convert(long_tiny, tmp_path / "a.onnx", seq_length=16, optimize=True, report=report)
    assert report["onnx_optimizer"]["kept"] and report["onnx_optimizer"]["max_abs_vs_unfused"] <= 1e-4

    class Broken:
        def __init__(self, model):
            # Swap the Q and K projections of layer 0, as the faulty fusion effectively did.
            for node in model.graph.node:
                if node.name.startswith("layer_0/attention/self/query/MatMul"):
                    q = node
                if node.name.startswith("layer_0/attention/self/key/MatMul"):
                    k = node
            q.input[1], k.input[1] = k.input[1], q.input[1]
            self.model = model

    monkeypatch.setattr(ort_opt, "optimize_model", lambda proto, **kw: Broken(proto))
    report = {}
    path = onnx_export.convert(long_tiny, tmp_path / "b.onnx", seq_length=16, optimize=True, report=report)
    assert not report["onnx_optimizer"]["kept"] and report["onnx_optimizer"]["max_abs_vs_unfused"] > 1e-3
    inputs = tiny_models.token_inputs(batch=2, seq=16, vocab=long_tiny.config.vocab_size)
    want = numpy_bert.forward(long_tiny.config, long_tiny.weights, *inputs)
    assert _max_abs(open_runner(path).run(_feeds(*inputs)), want, inputs[1]) <= TOL  # the unfused graph
