"""``edgebert export``: recipes, bundles, the accuracy gate, atomicity, CLI errors."""

import dataclasses
import json

import numpy as np
import onnx
import pytest

from edgebert.cli import main
from edgebert.errors import EdgebertError
from edgebert.eval import metrics
from edgebert.exporters.convert import layer_taps, onnx_external, workers
from edgebert.exporters.convert.tasks import ReferenceTask
from edgebert.exporters.pipelines.export import export
from edgebert.exporters.sources import load_source
from edgebert.files import file_sha256
from edgebert.model import numpy_bert
from edgebert.quantize import recipes
from edgebert.runtime import runners
from fixtures import exports, tiny_models


def _request(source, out, recipe="fp32", **kw):
    return exports.request(source, out, recipe, seq_length=16, **kw)


def _no_leftovers(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# The gate's outcome for each recipe's tiny export (2 layers, hidden 32, random weights; 64
# held-out sentences), measured on the 2-core AMD EPYC (AVX512-VNNI), 2026-12-08: every recipe
# passes in both formats but the two a16 integer-only recipes in TFLite, which miss on the
# pooled output's min cosine only (wi8_ai8i16 0.96545 < 0.97, wi8_ai16 0.96563 < 0.98; their
# ONNX files 0.99821 / 0.99931). The lowest passing figures: pooled min 0.99454 (wi8_ai8 ONNX,
# bar 0.9), pooled mean 0.99744 (wi8_ai8 ONNX, bar 0.99), fp32 max-abs 1.6e-6 (bar 1e-4).
# The test exports with allow_accuracy_loss so the failing ones are written and run too.
TINY_GATE_MISSES = {
    ("wi8_ai8i16", "tflite"): ("pooled_output", "min"),
    ("wi8_ai16", "tflite"): ("pooled_output", "min"),
}


def _check_tiny_gate(recipe, fmt, entry):
    gate, thresholds = entry["gate"], recipes.get(recipe).thresholds
    assert entry["accuracy"]["n"] == 64 and gate["thresholds"] == thresholds, (recipe, fmt)
    miss = TINY_GATE_MISSES.get((recipe, fmt))
    assert gate["passed"] == (miss is None) and len(gate["misses"]) == (miss is not None), (recipe, fmt, gate)
    for output in ("pooled_output", "mean_pooled"):
        acc = entry["accuracy"][output]
        for stat in ("mean", "min"):
            value, bar = acc["cosine"][stat], thresholds[f"cosine_{stat}"]
            if miss == (output, stat):  # the miss as measured, not a collapse
                assert 0.96 <= value < bar and gate["misses"][0].startswith(f"{output} {stat} cosine"), (recipe, fmt)
            else:
                assert value >= bar, (recipe, fmt, output, stat, value, bar)
        assert acc["max_abs"] <= thresholds.get("max_abs", np.inf), (recipe, fmt, output, acc["max_abs"])


@pytest.mark.parametrize("recipe", list(recipes.all_recipes()))
def test_every_recipe_writes_a_runnable_bundle(recipe, hf_tiny, tmp_path):
    out = tmp_path / "bundle"
    formats = recipes.get(recipe).formats  # wi8_afp32_blocks is ONNX only
    m = export(_request(hf_tiny, out, recipe, allow_accuracy_loss=True, formats=formats)).to_json()
    files = {"tflite": ["model.tflite"], "onnx": ["model.onnx", "model.onnx.data"]}  # ONNX weights beside the graph
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["edgebert.json", "vocab.txt", *(n for f in formats for n in files[f])]
    )
    assert json.loads((out / "edgebert.json").read_text()) == m
    assert m["format_version"] == 1 and m["recipe"]["name"] == recipe and m["seq_length"] == 16
    assert m["source"]["kind"] == "hf" and len(m["reference"]["sha256"]) == 64
    assert m["architecture"]["hidden_size"] == 32 and m["tokenizer"]["do_lower_case"] is True
    assert m["tools"]["tensorflow"].startswith("2.21") and m["tools"]["onnxruntime"]
    for _fmt, e in m["models"].items():
        f = out / e["file"]
        assert e["sha256"] == file_sha256(f) and e["bytes"] == f.stat().st_size
        if _fmt == "onnx":
            data = out / e["data_file"]
            assert e["data_sha256"] == file_sha256(data) and e["data_bytes"] == data.stat().st_size
            graph = onnx.load(str(f), load_external_data=False).graph  # every tensor of 1 KB or more moved out
            inline = [t.name for t in graph.initializer if len(t.raw_data) >= onnx_external.MIN_EXTERNAL_BYTES]
            assert inline == [] and any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer)
        assert [i["name"] for i in e["inputs"]] == list(runners.INPUT_NAMES)
        runner = runners.open_runner(f)
        ids, mask, types = tiny_models.token_inputs(batch=2, seq=16, vocab=45)
        feeds = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
        res = runner.run(feeds)
        assert res["sequence_output"].shape == (2, 16, 32) and np.isfinite(res["pooled_output"]).all()
        if _fmt == "tflite":  # the default CPU path (XNNPACK's weight cache) gives the Interpreter's numbers
            cached = runners.open_runner(f, hidden_size=32, weight_cache=str(tmp_path / f"{recipe}.xnnpack")).run(feeds)
            assert all(np.array_equal(res[k], cached[k]) for k in res), recipe
        _check_tiny_gate(recipe, _fmt, e)
    assert _no_leftovers(tmp_path) == []
    _check_layer_taps(out, m, recipe, hf_tiny, tmp_path)


def _check_layer_taps(out, manifest, recipe, source_dir, tmp_path):
    """verify's tapped copies (every recipe's graph form, int8 taps dequantized) return each
    layer's output, and leave the model's own outputs bit-identical."""
    src = load_source(source_dir)
    ids, mask, types = tiny_models.token_inputs(batch=2, seq=16, vocab=45)
    feeds = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types}
    ref = numpy_bert.forward(src.config, src.weights, ids, mask, types)["encoder_outputs"]
    real = mask.astype(bool)
    layers = manifest["architecture"]["num_layers"]
    for fmt, e in manifest["models"].items():
        tapped, quant = layer_taps.tap_model(out / e["file"], layers, tmp_path)
        got = runners.open_runner(tapped).run(feeds)
        plain = runners.open_runner(out / e["file"]).run(feeds)
        assert np.array_equal(got["sequence_output"], plain["sequence_output"]), fmt
        for i in range(layers - 1):
            x = layer_taps.dequantize(got[f"layer_tap_{i}"], quant[f"layer_tap_{i}"])
            cos = metrics.cosine(x[real], ref[i][real]).mean()
            # Float recipes: exact. Calibrated int8 activations drift on a random tiny model (ONNX static: 0.81),
            # but the tap must still be closer to its own layer than to the next one.
            floor = 0.99999 if recipe in ("fp32", "wfp16_afp32") else 0.7 if "_ai" in recipe else 0.9
            assert x.shape == (2, 16, 32) and cos >= floor, (fmt, i, cos)
            assert cos > metrics.cosine(x[real], ref[i + 1][real]).mean() + 0.05, (fmt, i)


def test_gate_failure_writes_no_bundle(hf_tiny, tmp_path, capsys):
    strict = dataclasses.replace(recipes.get("wi8_afp32_naive"), thresholds={"cosine_mean": 1.01, "cosine_min": 1.01})
    with pytest.raises(EdgebertError, match="accuracy gate of recipe wi8_afp32_naive failed .* no bundle written"):
        export(_request(hf_tiny, tmp_path / "bundle", strict))
    assert not (tmp_path / "bundle").exists() and _no_leftovers(tmp_path) == []
    err = capsys.readouterr().err
    assert "FAILS: pooled_output mean cosine" in err


def test_interrupted_export_leaves_no_bundle(hf_tiny, tmp_path, monkeypatch):
    real = workers.run

    def dies_on_onnx(task, work):
        if getattr(task, "format", None) == "onnx":
            raise KeyboardInterrupt
        return real(task, work)

    monkeypatch.setattr(workers, "run", dies_on_onnx)
    with pytest.raises(KeyboardInterrupt):
        export(_request(hf_tiny, tmp_path / "bundle"))
    assert not (tmp_path / "bundle").exists() and _no_leftovers(tmp_path) == []


def test_output_that_is_not_a_bundle_is_not_overwritten(hf_tiny, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(EdgebertError, match="exists and is not an edgebert bundle"):
        export(dataclasses.replace(_request(hf_tiny, out), formats=("tflite",)))
    assert (out / "thesis.tex").read_text() == "years of work"


def test_cli_export_prints_bundle_and_accuracy(hf_tiny, tmp_path, capsys):
    assert main(["export", str(hf_tiny), "--format", "tflite", "--seq-len", "dynamic", "-o", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert f"bundle:    {tmp_path / 'b'}" in out and "model.tflite" in out and "gate passed" in out
    m = json.loads((tmp_path / "b" / "edgebert.json").read_text())
    assert m["seq_length"] is None and list(m["models"]) == ["tflite"]
    assert m["models"]["tflite"]["inputs"][0]["shape"] == [-1, -1]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--format", "tflite,coreml"], "unknown format 'coreml'"),
        (["--seq-len", "2"], "--seq-len must be an integer >= 3 or 'dynamic', got '2'"),
        (["--recipe", "wi3_magic"], "unknown recipe 'wi3_magic'"),
        (["--int8", "--recipe", "fp32"], "--int8 asks for an int8 recipe but --recipe fp32 is not one"),
        (["--calibration", "/nonexistent.txt"], "calibration file /nonexistent.txt not found"),
        # length buckets (tests/test_buckets.py)
        (["--seq-len", "32,16"], "length buckets must be distinct lengths >= 3 in ascending order, got 32,16"),
        (["--seq-len", "16,x"], "--seq-len must be an integer >= 3"),
        (["--seq-len", "8,16", "--recipe", "wi8_ai8"], "recipe wi8_ai8 calibrates activations per graph"),
        (["--seq-len", "8,64"], "--seq-len 64 exceeds the model's 40 positions"),
    ],
)
def test_cli_argument_errors(argv, message, hf_tiny, tmp_path, capsys):
    assert main(["export", str(hf_tiny), "-o", str(tmp_path / "b"), *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edgebert: error: ") and message in err[-1]
    assert not (tmp_path / "b").exists()


# Default tier: it reads the default_bundles this file's memory test exports anyway. Each sentence
# runs alone at its own length (as edgebert's runtime runs a batch of one): 4x faster than padded
# to 128, the same figures. Measured on the 2-core AMD EPYC, 2026-12-08: TFLite pooled 0.99966
# (min 0.99916), mean-pooled 0.99956 (min 0.99879); ONNX 0.99969 (min 0.99935), 0.99956 (min
# 0.99840); sizes 0.268x (TFLite) and 0.267x (ONNX, graph and weights) of fp32.
def test_default_int8_keeps_accuracy_on_1000_real_sentences(default_bundles, sentiment_dir, tmp_path):
    """The issue's bar: mean cosine >= 0.999 and min >= 0.99 (pooled and mean-pooled),
    both formats, 1,000 movie-review sentences, and <= 0.27x the fp32 files (ONNX: the graph
    and its weights file together)."""
    lines = (sentiment_dir / "movieReviewSnippets_GroundTruth.txt").read_text(encoding="utf-8").splitlines()
    texts = [l.split("\t")[2] for l in lines if l.count("\t") >= 2][:1000]
    int8_dir, m = default_bundles["wi8_afp32"]
    ref = workers.run(
        ReferenceTask(
            source=m["reference"]["path"],
            reference_dir=m["reference"]["path"],
            texts=texts,
            outputs_npz=str(tmp_path / "ref.npz"),
        ),
        tmp_path,
    )
    assert ref["sha256"] == m["reference"]["sha256"]
    expected = dict(np.load(tmp_path / "ref.npz"))
    feeds = {k: expected.pop(k) for k in runners.INPUT_NAMES}
    fp32_dir, fp32 = default_bundles["fp32"]
    for fmt, e in m["models"].items():
        size, fp32_size = (x["bytes"] + x.get("data_bytes", 0) for x in (e, fp32["models"][fmt]))
        assert size <= 0.27 * fp32_size, (fmt, size, fp32_size)
        runner = runners.open_runner(int8_dir / e["file"])
        lengths = feeds["input_mask"].sum(1)
        got = runners.run_batches(
            runner, ({k: v[i : i + 1, : lengths[i]] for k, v in feeds.items()} for i in range(len(texts)))
        )
        width = feeds["input_mask"].shape[1]  # the reference's 128
        got["sequence_output"] = np.pad(
            got["sequence_output"], ((0, 0), (0, width - got["sequence_output"].shape[1]), (0, 0))
        )
        res = metrics.compare(got, expected, feeds["input_mask"])
        for output in ("pooled_output", "mean_pooled"):
            c = res[output]["cosine"]
            assert c["mean"] >= 0.999 and c["min"] >= 0.99, (fmt, output, c)
    for e in fp32["models"].values():
        assert e["accuracy"]["pooled_output"]["max_abs"] <= 1e-4


# Each worker step holds TensorFlow itself (0.80 GB after its import on an AVX512 Xeon) plus
# copies of the weights. Measured worker peaks (2-core AMD EPYC, 2026-12-08; fp32 file 90.3 MB):
# fp32 import 1.011, TFLite 1.490, ONNX 1.403 GB; int8 import 1.016, TFLite 1.337, ONNX 1.328 GB.
# The largest, fp32 TFLite, is 7.6 copies over TensorFlow (1.49-1.50 GB on both CPU kinds
# before: 7.8); the bound, 8 copies (1.52 GB), is 2% above it. What this guards against:
# freezing the weights into graph copies (tf2onnx from constants, TFLite from a frozen GraphDef)
# cost 38x the fp32 file on this model (4.2 GB for 90 MB).
STEP_BASE_GB, STEP_WEIGHT_COPIES = 0.80, 8


def test_export_steps_peak_at_tensorflow_plus_8_copies_of_the_weights(default_bundles):
    for recipe, (_, m) in default_bundles.items():
        cost = m["export_cost"]
        fp32_gb = default_bundles["fp32"][1]["models"]["tflite"]["bytes"] / 1e9
        steps = {s["step"]: s for s in cost["steps"]}
        assert list(steps) == ["import", "tflite", "onnx", "gate"], recipe
        limit = STEP_BASE_GB + STEP_WEIGHT_COPIES * fp32_gb
        for name in ("import", "tflite", "onnx"):
            s = steps[name]
            assert 0 < s["worker_peak_rss_gb"] <= limit, (recipe, name, s, limit)
            assert s["peak_rss_gb"] >= s["worker_peak_rss_gb"] and s["seconds"] > 0
        assert cost["peak_rss_gb"] == max(s["peak_rss_gb"] for s in cost["steps"])
        assert abs(cost["seconds"] - sum(s["seconds"] for s in cost["steps"])) < 0.5


def test_worker_tasks_round_trip_and_refuse_unknown_fields():
    from edgebert.exporters.convert import tasks
    from edgebert.exporters.convert.tasks import ConvertTask

    t = ConvertTask(
        format="onnx",
        recipe="wi8_afp32",
        reference="/ref",
        out="/out.onnx",
        buckets=[16, 32],
        head={"task": "embedder", "pooling": "mean"},
    )
    data = json.loads(json.dumps(tasks.to_json(t)))
    assert data["task"] == "convert" and tasks.from_json(data) == t
    r = ReferenceTask(source="/src", reference_dir="/ref", texts=["a b"], outputs_npz="/o.npz", seq_length=None)
    assert tasks.from_json(json.loads(json.dumps(tasks.to_json(r)))) == r
    with pytest.raises(TypeError, match="held_out"):  # the old dict key: caught where the task is read
        tasks.from_json({**tasks.to_json(r), "held_out": ["a"]})


def test_calibration_is_cached_by_what_it_depends_on(hf_tiny, tmp_path):
    """SmoothQuant's ranges and GPTQ's kernels are written once to the calibration cache, named
    by the reference, the recipe sections, the text and the length: exporting the same model
    again reads them and writes the same model bytes; another rounding setting is another entry."""
    from edgebert.cache import cache_dir

    default = recipes.get("wi8_afp32")
    export(_request(hf_tiny, tmp_path / "a", default, formats=("tflite",)))
    entries = sorted(p.name.split("-")[0] for p in (cache_dir() / "calibration").iterdir())
    assert entries == ["rounding", "smoothing"]
    export(_request(hf_tiny, tmp_path / "b", default, formats=("tflite",)))
    assert len(list((cache_dir() / "calibration").iterdir())) == 2
    assert file_sha256(tmp_path / "a" / "model.tflite") == file_sha256(tmp_path / "b" / "model.tflite")
    data = {**default.to_json(), "name": "my_damp", "rounding": {**default.rounding, "damp": 0.1}}
    (tmp_path / "my_damp.json").write_text(json.dumps(data))
    other = recipes.from_file(tmp_path / "my_damp.json")  # what the worker reads again
    export(_request(hf_tiny, tmp_path / "c", other, formats=("tflite",)))
    assert file_sha256(tmp_path / "a" / "model.tflite") != file_sha256(tmp_path / "c" / "model.tflite")
    entries = sorted(p.name.split("-")[0] for p in (cache_dir() / "calibration").iterdir())
    assert entries == ["rounding", "rounding", "smoothing"]
