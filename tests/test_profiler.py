"""LiteRT's op profiler reached through its C API (benchmarks/litert_profiler.py) on a real file."""

import numpy as np

from fixtures import tiny_models


def test_litert_profiler_runs_the_file_as_the_interpreter_does_and_counts_its_layers(tiny_tflite):
    """The tiny model (2 layers, dynamic shape, resized to [1, 16]) compiled with profiling on:
    outputs equal the Interpreter's, every dense product is one XNNPACK event (2 x 6 + the pooler),
    and the per-layer split finds both layers."""
    from benchmarks.litert_profiler import is_product, profile_tflite

    ids, mask, types = tiny_models.token_inputs(batch=1, seq=16, vocab=tiny_models.vocab_size())
    feeds = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    feeds = {k: np.asarray(v, np.int32) for k, v in feeds.items()}
    out = profile_tflite(tiny_tflite["fp32_dynamic"], feeds, threads=1, layers=2, warmup=1, runs=3)
    assert out["max_abs_vs_interpreter"] <= 1e-6
    assert out["runs_profiled"] == 3
    products = [op for op in out["by_op_type_ms"] if is_product(op)]
    assert products == ["Fully Connected (NC, F32) GEMM"]
    assert set(out["by_layer_ms"]) == {"embeddings", "layer_00", "layer_01", "pooler"}
    assert out["by_runner_ms"]["xnnpack"] > 0
    assert out["products_per_run"] == 13
