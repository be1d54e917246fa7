"""Static GPU-delegate check: the GPU graph form is taken whole at every catalog width; the
classic form and GPU-hostile graphs are flagged for the right ops; the CPU loses nothing."""

import numpy as np
import pytest

from edgebert.checks import gpu as gpu_compat
from edgebert.exporters.convert import tflite
from edgebert.exporters.sources import load_source
from edgebert.quantize import recipes
from edgebert.runtime.runners import TFLiteRunner
from fixtures import tiny_models

CATALOG_HIDDEN = (128, 256, 512, 768, 1024)  # every hidden size in the catalog


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("widths")
    out = {}
    for h in CATALOG_HIDDEN:
        path = tiny_models.make_hf(root / f"h{h}", hidden=h, heads=h // 64, intermediate=2 * h, layers=1)
        out[h] = load_source(path)
    return out


def _types(findings):
    counts = {}
    for f in findings:
        counts[f["type"]] = counts.get(f["type"], 0) + 1
    return counts


@pytest.mark.parametrize(
    "hidden", [h if h in (128, 768) else pytest.param(h, marks=pytest.mark.slow) for h in CATALOG_HIDDEN]
)  # the narrowest and BERT-base by default
def test_gpu_form_is_taken_whole_at_every_width(hidden, sources, tmp_path):
    src = sources[hidden]
    for recipe in ("fp32", "wfp16_afp32", "wi8_afp32_naive"):
        static = tflite.convert(
            src, tmp_path / f"{recipe}_static.tflite", seq_length=16, batch_size=1, recipe=recipes.get(recipe)
        )
        r = gpu_compat.check_tflite(static)
        assert r["gpu_ready"] and r["refused"] == [] and r["wrong"] == [], (recipe, r)
        # Dynamic length with a static batch: no op is refused (no shape ops), but the measured
        # GPU miscomputes such graphs, so the check says so.
        dyn = tflite.convert(
            src, tmp_path / f"{recipe}_dyn.tflite", seq_length=None, batch_size=1, recipe=recipes.get(recipe)
        )
        r = gpu_compat.check_tflite(dyn)
        assert r["refused"] == [] and _types(r["wrong"]) == {"INPUT": 1} and r["dynamic_inputs"], (recipe, r)


def test_classic_form_is_flagged_and_gives_the_same_numbers(sources, tmp_path):
    src = sources[128]
    gpu = tflite.convert(src, tmp_path / "gpu.tflite", seq_length=16, batch_size=1)
    classic = tflite.convert(src, tmp_path / "classic.tflite", seq_length=16, batch_size=1, graph_form="classic")
    r = gpu_compat.check_tflite(classic)
    # word and type lookups with [batch, seq] indices, and x[:, 0, :] for [CLS]
    assert _types(r["refused"]) == {"GATHER": 2, "STRIDED_SLICE": 1}, r
    assert "gathers 1-D indices only" in r["refused"][0]["why"] or "shrink_axis_mask" in r["refused"][0]["why"]
    ids, mask, types = tiny_models.token_inputs(batch=1, seq=16, vocab=tiny_models.vocab_size())
    feeds = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    a, b = TFLiteRunner(gpu).run(feeds), TFLiteRunner(classic).run(feeds)
    for k in a:
        assert np.abs(a[k] - b[k]).max() <= 1e-5, k


def test_dynamic_batch_graph_needs_shape_ops(sources, tmp_path):
    path = tflite.convert(sources[256], tmp_path / "dyn_batch.tflite", seq_length=16)
    r = gpu_compat.check_tflite(path)
    assert _types(r["refused"]) == {"SHAPE": 1, "STRIDED_SLICE": 1}, r
    assert gpu_compat.summary(r).endswith("for the GPU export with --batch 1 --seq-len N")


def test_known_wrong_gather_and_corrupt_files(tmp_path):
    import tensorflow as tf

    holder = tf.Module()
    holder.table = tf.Variable(np.arange(16, dtype=np.float32).reshape(2, 8))

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.int32)])
    def f(ids):
        return {"x": tf.gather(holder.table, tf.reshape(ids, [-1]))}

    flat = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], holder).convert()
    (tmp_path / "two_rows.tflite").write_bytes(flat)
    r = gpu_compat.check_tflite(tmp_path / "two_rows.tflite")
    assert [(f["type"], f["effect"]) for f in r["wrong"]] == [("GATHER", gpu_compat.WRONG)]
    assert "known WRONG on the GPU (GATHER x1)" in gpu_compat.summary(r)
    (tmp_path / "cut.tflite").write_bytes(flat[:200])
    from edgebert.errors import EdgebertError

    with pytest.raises(EdgebertError, match="not a readable TFLite flatbuffer"):
        gpu_compat.check_tflite(tmp_path / "cut.tflite")


def test_default_model_static_export_is_gpu_ready(default_model_dir, tmp_path):
    src = load_source(default_model_dir)
    r = gpu_compat.check_tflite(tflite.convert(src, tmp_path / "m.tflite", seq_length=128, batch_size=1))
    assert r["gpu_ready"] and r["ops"] > 200, r
