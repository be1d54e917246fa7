"""The public API: load()'s option objects and the deprecated keywords they replace, the
EdgeModel / BertModel and manifest / info aliases, and the Runner protocol every runner meets."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import edgebert
from edgebert import EdgebertError, EdgeModel, GpuOptions, OnnxOptions, TfliteOptions, load
from edgebert.runtime import runners
from edgebert.runtime.options import RunnerSettings
from edgebert.runtime.runner_protocol import Runner
from fixtures import exports


@pytest.fixture(scope="module")
def tiny_bundle(hf_tiny, tmp_path_factory):
    """The tiny model, fp32, dynamic length, both formats."""
    from edgebert.exporters.pipelines.export import export

    out = tmp_path_factory.mktemp("api") / "bundle"
    export(exports.request(hf_tiny, out, "fp32", seq_length=None))
    return out


def test_the_package_exports_the_public_api():
    for name in ("EdgeModel", "BertModel", "TfliteOptions", "GpuOptions", "OnnxOptions", "load", "EdgebertError"):
        assert name in edgebert.__all__ and hasattr(edgebert, name)
    assert edgebert.BertModel is edgebert.EdgeModel


def test_options_are_frozen_with_the_old_defaults():
    assert TfliteOptions() == TfliteOptions(weight_cache="auto", delegate_library=None)
    assert GpuOptions() == GpuOptions(enforce_f32=False, strict=False)
    assert OnnxOptions().exact_int8 is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        GpuOptions().strict = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (dict(weight_cache="off"), dict(tflite=TfliteOptions(weight_cache="off"))),
        (dict(backend="onnx", exact_int8=False), dict(backend="onnx", onnx=OnnxOptions(exact_int8=False))),
        (
            dict(backend="onnx", exact_int8=True, weight_cache="off"),
            dict(backend="onnx", onnx=OnnxOptions(exact_int8=True), tflite=TfliteOptions(weight_cache="off")),
        ),
    ],
)
def test_old_keywords_give_the_same_runner_settings_with_a_deprecation_warning(tiny_bundle, old, new):
    with pytest.warns(DeprecationWarning, match=r"load\(\w+=\.\.\.\) is deprecated; pass \w+=edgebert\.\w+Options"):
        before = load(tiny_bundle, num_threads=1, **old)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        after = load(tiny_bundle, num_threads=1, **new)
    assert isinstance(before.runner_settings, RunnerSettings)
    assert before.runner_settings == after.runner_settings
    assert (before.backend, before.delegate.used) == (after.backend, after.delegate.used)
    assert np.array_equal(before.embed("a fine film"), after.embed("a fine film"))


def test_gpu_keywords_fold_into_gpu_options():
    """strict / gpu_enforce_f32 become GpuOptions (refused later where no GPU is, as before)."""
    from edgebert.runtime import options

    with pytest.warns(DeprecationWarning) as caught:
        got = options.from_deprecated_keywords({"strict": True, "gpu_enforce_f32": True}, {}, "load")
    assert got == {"gpu": GpuOptions(enforce_f32=True, strict=True)}
    assert [str(w.message) for w in caught] == [
        "load(strict=...) is deprecated; pass gpu=edgebert.GpuOptions(strict=...)",
        "load(gpu_enforce_f32=...) is deprecated; pass gpu=edgebert.GpuOptions(enforce_f32=...)",
    ]


def test_the_edge_model_constructor_takes_the_old_keywords_too(tiny_bundle):
    with pytest.warns(DeprecationWarning, match=r"load\(weight_cache=\.\.\.\) is deprecated") as caught:
        m = EdgeModel(tiny_bundle, num_threads=1, weight_cache="off")
    assert m.runner_settings.weight_cache is None and m.delegate.used == "xnnpack"
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_old_gpu_keywords_keep_their_old_lax_checks(tiny_bundle):
    """strict= with delegate='cpu' was ignored; it still is (a GpuOptions there is an error)."""
    with pytest.warns(DeprecationWarning) as caught:
        m = load(tiny_bundle, delegate="cpu", num_threads=1, strict=True, weight_cache="off")
    assert m.runner_settings.strict and {w.filename for w in caught} == {__file__}
    assert "load(strict=...) is deprecated; pass gpu=edgebert.GpuOptions(strict=...)" in {
        str(w.message) for w in caught
    }


def test_misplaced_options_are_one_line_errors_that_name_the_fix(tiny_bundle):
    with pytest.raises(EdgebertError, match=r"GpuOptions apply to delegate='gpu', not delegate='cpu' \(pass delegate"):
        load(tiny_bundle, delegate="cpu", gpu=GpuOptions(enforce_f32=True))
    with pytest.raises(EdgebertError, match=r"applies to backend='onnx', not backend='tflite'"):
        load(tiny_bundle, backend="tflite", onnx=OnnxOptions(exact_int8=True))
    with pytest.raises(EdgebertError, match=r"tflite= takes a TfliteOptions, got a dict"):
        load(tiny_bundle, tflite={"weight_cache": "off"})  # type: ignore[arg-type]
    with pytest.raises(EdgebertError, match=r"got both weight_cache= and tflite= \(pass tflite=TfliteOptions"):
        load(tiny_bundle, weight_cache="off", tflite=TfliteOptions())
    with pytest.raises(EdgebertError, match="weight_cache is an option of TFLite on the CPU"):
        load(tiny_bundle, backend="onnx", tflite=TfliteOptions(weight_cache="w.xnnpack"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'threads'"):
        load(tiny_bundle, threads=2)


def test_auto_backend_takes_the_options_of_both_formats(tiny_bundle):
    m = load(tiny_bundle, num_threads=1, tflite=TfliteOptions(weight_cache="off"), onnx=OnnxOptions(exact_int8=False))
    assert m.backend == "tflite" and m.runner_settings.weight_cache is None


def test_manifest_and_its_deprecated_alias(tiny_bundle):
    m = load(tiny_bundle, num_threads=1, tflite=TfliteOptions(weight_cache="off"))
    assert m.manifest.architecture["hidden_size"] == m.hidden_size
    with pytest.warns(DeprecationWarning, match="use EdgeModel.manifest"):
        assert m.info is m.manifest
    assert repr(m).startswith("EdgeModel(")


@pytest.mark.parametrize(
    ("backend", "tflite", "cls"),
    [
        ("tflite", TfliteOptions(weight_cache="off"), runners.TFLiteRunner),
        ("tflite", TfliteOptions(weight_cache=":memory"), runners.LiteRtAcceleratedRunner),
        ("onnx", None, runners.OnnxRunner),
    ],
)
def test_every_runner_satisfies_the_runner_protocol(tiny_bundle, backend, tflite, cls):
    m = load(tiny_bundle, backend=backend, num_threads=1, tflite=tflite)
    with m._runner() as runner:
        assert type(runner) is cls and isinstance(runner, Runner)
        assert runner.path == m.model_path and runner.report is m.delegate and isinstance(runner.runtime, str)
        feeds = m.tokenize(["a fine film", "a dull one"])
        assert set(runner.run(feeds)) >= {"pooled_output", "sequence_output"}
    m.close()
