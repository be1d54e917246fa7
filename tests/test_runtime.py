"""``edgebert.load``: outputs vs the reference SavedModel on TF Hub preprocessing's ids, batching,
threads, memory, delegates and their errors, ``edgebert run``."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import preprocess_reference
import pytest
from conftest import require

from edgebert.cli import main
from edgebert.errors import EdgebertError
from edgebert.eval import metrics
from edgebert.quantize import recipes
from edgebert.runtime.edge_model import load
from edgebert.runtime.options import GpuOptions, OnnxOptions, TfliteOptions

HARD = ["Straße und ﬁsh, naïve CAFÉ", "东京是日本的首都。", "e-mail: a.b@c.d — «quoted» text…", "ok", "Hi!"]


def _texts(sentiment_dir, n=64):
    lines = (sentiment_dir / "movieReviewSnippets_GroundTruth.txt").read_text(encoding="utf-8").splitlines()
    real = [ln.split("\t")[2] for ln in lines if ln.count("\t") >= 2][: n - len(HARD) - 2]
    long = " ".join(real[:12]) * 3  # far over 128 tokens: truncated
    return HARD + real + [long, "unbelievably overdramatised " * 60]


@pytest.fixture(scope="module")
def oracle(default_bundles, tmp_path_factory):
    """TF Hub preprocessing (the tokenizer's oracle) and the reference SavedModel, run in TF."""
    import tensorflow as tf

    bundle, manifest = default_bundles["fp32"]
    pre = preprocess_reference.build(bundle / "vocab.txt", True, tmp_path_factory.mktemp("pre") / "pre")
    ref = tf.saved_model.load(manifest["reference"]["path"])

    def run(texts, pairs=None):
        feeds = preprocess_reference.run(pre, texts, pairs, seq_length=128)
        outs = [ref({k: tf.constant(v[i : i + 16]) for k, v in feeds.items()}) for i in range(0, len(texts), 16)]
        return feeds, {
            "pooled_output": np.concatenate([o["pooled_output"].numpy() for o in outs]),
            "sequence_output": np.concatenate([o["sequence_output"].numpy() for o in outs]),
        }

    return run


@pytest.mark.parametrize("paired", [False, True], ids=["single", "paired"])
@pytest.mark.parametrize("backend", ["tflite", "onnx"])
@pytest.mark.parametrize("recipe", ["fp32", "wi8_afp32"])
def test_encode_matches_reference_savedmodel(recipe, backend, paired, default_bundles, oracle, sentiment_dir):
    texts = _texts(sentiment_dir)
    pairs = list(reversed(texts)) if paired else None
    ref_feeds, ref = oracle(texts, pairs)
    bundle, manifest = default_bundles[recipe]
    thresholds = manifest["models"][backend]["gate"]["thresholds"]
    results = {}
    for batch_size in (1, 7, 64):
        m = load(bundle, backend=backend, batch_size=batch_size, num_threads=2)
        inputs = list(zip(texts, pairs)) if paired else texts
        got = m.encode(inputs, seq_length=128)
        width = got["input_mask"].shape[1]
        assert width == (128 if manifest["seq_length"] else ref_feeds["input_mask"].sum(1).max())
        # The bundled tokenizer gives TF Hub preprocessing's ids exactly.
        ids = m.tokenize(inputs, seq_length=128)["input_word_ids"]
        np.testing.assert_array_equal(ids, ref_feeds["input_word_ids"][:, :width])
        assert not ref_feeds["input_word_ids"][:, width:].any()
        np.testing.assert_array_equal(got["input_mask"], ref_feeds["input_mask"][:, :width])
        res = metrics.compare(got, ref, ref_feeds["input_mask"])
        if recipe == "fp32":
            assert res["pooled_output"]["max_abs"] <= 1e-4 and res["sequence_output"]["max_abs"] <= 1e-4, res
        else:
            assert metrics.gate(res, thresholds) == [], res
            assert res["sequence_output"]["cosine"]["mean"] >= 0.998  # per token (seen 0.9989)
        results[batch_size] = got
    # Batching and padding do not change a sentence's result beyond float noise, which int8
    # rounding amplifies on a few rows (TFLite: pooled cosine 0.99961 on 1 of 64 sentences).
    for b in (7, 64):
        if recipe == "fp32":
            np.testing.assert_allclose(results[b]["pooled_output"], results[1]["pooled_output"], atol=2e-5)
        else:
            c = metrics.cosine(results[b]["pooled_output"], results[1]["pooled_output"])
            assert c.min() >= 0.999 and np.median(c) >= 0.999999, (c.min(), np.median(c))


def test_single_string_and_embed_forms(default_bundles):
    m = load(default_bundles["wi8_afp32"][0], num_threads=2)
    one = m.encode("The movie was great")
    # [CLS] the movie was great [SEP]: a dynamic-length model runs 6 positions, not 128
    assert one["pooled_output"].shape == (1, 384) and one["sequence_output"].shape == (1, 6, 384)
    assert one["input_mask"].sum() == 6
    e_cls = m.embed(["The movie was great", "Awful"])
    np.testing.assert_allclose(e_cls[0], one["pooled_output"][0], atol=1e-6)
    e_mean = m.embed(["The movie was great", "Awful"], pooling="mean", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(e_mean, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        e_mean[0] * np.linalg.norm(metrics.mean_pool(one["sequence_output"], one["input_mask"])),
        metrics.mean_pool(one["sequence_output"], one["input_mask"])[0],
        atol=1e-5,
    )
    pair = m.encode(("who", "me"))
    np.testing.assert_array_equal(m.tokenize(("who", "me"))["input_type_ids"][0, :5], [0, 0, 0, 1, 1])
    np.testing.assert_allclose(m.encode(["who"], pairs=["me"])["pooled_output"], pair["pooled_output"], atol=1e-6)
    assert m.manifest.recipe["name"] == "wi8_afp32" and "xnnpack" in repr(m)


def test_results_come_back_in_input_order(default_bundles, sentiment_dir):
    texts = _texts(sentiment_dir, 40)
    m = load(default_bundles["wi8_afp32"][0], batch_size=8, num_threads=2)
    together = m.embed(texts)
    alone = np.concatenate([m.embed(t) for t in texts])
    c = metrics.cosine(together, alone)  # int8: see the batching note above
    assert c.min() >= 0.999 and np.median(c) >= 0.999999, (c.min(), np.median(c))
    # Wrong order would pair different sentences: their cosines are far lower.
    assert metrics.cosine(together[:-1], alone[1:]).max() < 0.99


@pytest.mark.parametrize("backend,pool", [("tflite", 2), ("onnx", 2)])
def test_threads_give_sequential_results(backend, pool, default_bundles, sentiment_dir):
    """8 threads x 200 calls each equal the sequential results (a pool of 2 runners; TFLite's
    default weight-cache runners share one packed-weights file)."""
    texts = _texts(sentiment_dir, 50)
    m = load(default_bundles["wi8_afp32"][0], backend=backend, pool_size=pool, num_threads=1)
    assert m.delegate.used == {"tflite": "xnnpack-weight-cache", "onnx": "CPUExecutionProvider"}[backend]
    want = np.concatenate([m.embed(t) for t in texts])
    errors = []

    def worker(k):
        rng = np.random.default_rng(k)
        for _ in range(200):
            i = int(rng.integers(len(texts)))
            got = m.embed(texts[i])[0]
            if np.abs(got - want[i]).max() > 1e-6:
                errors.append((k, i, float(np.abs(got - want[i]).max())))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


LEAK_PROBE = """
import json, os, sys
from edgebert.runtime.edge_model import load
m = load(sys.argv[1], num_threads=2, backend=sys.argv[2])
words = "the a movie film great awful plot actor scene story".split()
texts = [" ".join(words[: 1 + i % 10]) for i in range(10)]  # ten lengths: reshapes every call
rss = []
for window in range(5):
    for i in range(1200):
        m.embed(texts[i % 10])
    rss.append(int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6)
print(json.dumps(rss))
"""


@pytest.mark.parametrize("backend", ["tflite", "onnx"])
def test_memory_does_not_grow_over_6000_calls(backend, default_bundles):
    # In a process of its own: pytest's process holds every earlier test's objects, whose
    # freeing and reuse the measurement would count.
    p = subprocess.run(
        [sys.executable, "-c", LEAK_PROBE, str(default_bundles["wi8_afp32"][0]), backend],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    rss = json.loads(p.stdout.strip().splitlines()[-1])
    # The first 2,400 calls warm the allocators up. After that an allocator may still take one
    # more block (ONNX Runtime: 0.66 MB once, in calls 1,500-3,000 on one machine and in calls
    # 4,800-6,000 on another, flat to the page otherwise); a leak grows in every window: 40 bytes
    # a call add 0.05 MB a window, 150 bytes 0.18 MB.
    grown = [b - a for a, b in zip(rss[1:], rss[2:])]
    assert sum(g > 0.05 for g in grown) <= 1 and sum(grown) < 1.0, f"RSS grew {grown} MB over windows of 1,200 calls"


def test_xnnpack_report_counts_delegated_ops(default_bundles):
    """The Interpreter counts XNNPACK's ops at the first run; the default weight-cache runner
    (CompiledModel, which does not expose its graph) reports the export gate's count of the same file."""
    bundle, manifest = default_bundles["fp32"]
    m = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache="off"))
    m.embed("hello")
    r = m.delegate
    assert r.used == "xnnpack" and r.nodes_total > 200 and r.counted is None
    assert r.nodes_total - 60 < r.nodes_delegated < r.nodes_total and r.partitions >= 1
    assert sum(r.not_delegated.values()) == r.nodes_total - r.nodes_delegated
    assert manifest["models"]["tflite"]["xnnpack_delegation"] == {
        "nodes_total": r.nodes_total,
        "nodes_delegated": r.nodes_delegated,
        "partitions": r.partitions,
        "not_delegated": r.not_delegated,
    }
    d = load(bundle, num_threads=2).delegate
    assert d.used == "xnnpack-weight-cache" and d.counted == "export"
    assert (d.nodes_total, d.nodes_delegated, d.partitions) == (r.nodes_total, r.nodes_delegated, r.partitions)
    assert d.summary().endswith(
        f"({r.nodes_delegated}/{r.nodes_total} ops delegated in {r.partitions} partition(s), as counted at export)"
    )


@pytest.mark.parametrize(
    "backend,delegate,message",
    [
        (
            "tflite",
            "gpu",
            "has a dynamic batch or sequence length, which LiteRT's GPU accelerator refuses or "
            "computes wrongly .*--batch 1 --seq-len 128",
        ),
        ("tflite", "nnapi", "no TFLite nnapi delegate could be loaded .*libtensorflowlite_nnapi_delegate.so"),
        ("onnx", "gpu", "no execution provider for delegate='gpu' .*available: .*CPUExecutionProvider"),
        ("onnx", "nnapi", "no execution provider for delegate='nnapi'"),
    ],
)
def test_missing_accelerator_errors_then_falls_back(backend, delegate, message, default_bundles):
    bundle = default_bundles["wi8_afp32"][0]
    with pytest.raises(EdgebertError, match=message):
        load(bundle, backend=backend, delegate=delegate)
    with pytest.warns(RuntimeWarning, match=f"delegate='{delegate}' is not available.*running on the CPU"):
        m = load(bundle, backend=backend, delegate=delegate, fallback=True, num_threads=2)
    assert m.delegate.fell_back and m.delegate.requested == delegate and m.delegate.reason
    ref = load(bundle, backend=backend, num_threads=2)
    np.testing.assert_array_equal(m.embed("a fine day"), ref.embed("a fine day"))


@pytest.fixture(scope="module")
def static_bundle(hf_tiny, tmp_path_factory):
    """A tiny fp32 TFLite bundle with a fixed batch of 1 and length 16 (the GPU / Android form)."""
    from edgebert.exporters.pipelines.export import ExportRequest, export

    out = tmp_path_factory.mktemp("static") / "b"
    export(
        ExportRequest(
            source=str(hf_tiny),
            source_label="tiny",
            output=out,
            formats=("tflite",),
            recipe=recipes.get("fp32"),
            seq_length=16,
            batch_size=1,
        )
    )
    return out


def test_fixed_batch_bundle_runs_lists_and_reports_no_gpu(static_bundle):
    m = load(static_bundle, num_threads=2, batch_size=4)
    assert m.model_batch == 1 and m.manifest.models["tflite"].gpu_compatibility["gpu_ready"]
    texts = ["the a", "a the the", "the", "a a a a a"]
    together = m.encode(texts)
    assert together["sequence_output"].shape == (4, 16, 32)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(m.encode(t)["pooled_output"][0], together["pooled_output"][i], atol=1e-6)
    with pytest.raises(
        EdgebertError, match="LiteRT could not create the GPU accelerator .*no GPU that LiteRT can use was found"
    ):
        load(static_bundle, delegate="gpu")
    with pytest.raises(EdgebertError, match="GPU-only run \\(strict\\)"):
        load(static_bundle, delegate="gpu", gpu=GpuOptions(strict=True))


def test_litert_compiled_model_path_on_cpu(static_bundle):
    """The code path that runs the GPU accelerator (CompiledModel and its buffers), on the CPU."""
    from edgebert.runtime.runners import LiteRtAcceleratedRunner

    m = load(static_bundle, num_threads=2)
    runner = LiteRtAcceleratedRunner(static_bundle / "model.tflite", 32, accelerator="cpu")
    for text in ("the a", "a the the a the"):
        out, want = runner.run(m.tokenize(text)), m.encode(text)
        np.testing.assert_allclose(out["pooled_output"], want["pooled_output"], atol=1e-5)
        np.testing.assert_allclose(out["sequence_output"], want["sequence_output"], atol=1e-5)
    with pytest.raises(EdgebertError, match="takes inputs of shape \\[1, 16\\], got \\[2, 16\\]"):
        runner.run(m.tokenize(["a", "b"]))


@pytest.fixture(scope="module")
def zero_delegate(tmp_path_factory):
    """A real TFLite delegate plugin that takes no nodes, compiled here."""
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc")
    require(cc is not None, "a C compiler to build the test delegate", "apt install gcc")
    src = os.path.join(os.path.dirname(__file__), "fixtures", "zero_delegate.c")
    out = tmp_path_factory.mktemp("delegate") / "libzero_delegate.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), src], check=True)
    return out


def test_delegate_that_takes_no_ops_is_refused(zero_delegate, default_bundles):
    bundle = default_bundles["fp32"][0]
    with pytest.raises(EdgebertError, match=r"libzero_delegate.so delegate took 0 of \d+ ops .*would run on the CPU"):
        load(bundle, delegate="gpu", tflite=TfliteOptions(delegate_library=str(zero_delegate)))
    with pytest.warns(RuntimeWarning):
        m = load(bundle, delegate="gpu", tflite=TfliteOptions(delegate_library=str(zero_delegate)), fallback=True)
    assert m.delegate.fell_back and "took 0 of" in m.delegate.reason


def test_delegate_library_that_is_not_a_delegate(default_bundles):
    with pytest.raises(EdgebertError, match="not a TFLite delegate .*tflite_plugin_create_delegate"):
        load(default_bundles["fp32"][0], tflite=TfliteOptions(delegate_library="libc.so.6"))


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda b: (b / "model.tflite").write_bytes((b / "model.tflite").read_bytes()[:5000]), "truncated"),
        (lambda b: (b / "edgebert.json").write_text("{"), "is not valid JSON"),
        (lambda b: (b / "edgebert.json").unlink(), "not an edgebert bundle"),
        (
            lambda b: (b / "edgebert.json").write_text(
                (b / "edgebert.json").read_text().replace('"format_version": 1', '"format_version": 2')
            ),
            "has manifest format 2; this edgebert reads up to 1",
        ),
        (lambda b: (b / "vocab.txt").write_text("hello\n"), "lacks \\[PAD\\]"),
    ],
)
def test_broken_bundles(mutate, message, default_bundles, tmp_path):
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(default_bundles["wi8_afp32"][0], bundle)
    mutate(bundle)
    with pytest.raises(EdgebertError, match=message):
        load(bundle, backend="tflite")


def test_onnx_weights_file_is_checked(default_bundles, tmp_path):
    """The ONNX weights live in ``model.onnx.data`` beside the graph: a bundle copied without it,
    or with it cut short, is refused before ONNX Runtime reads it."""
    import shutil

    bundle = tmp_path / "b"
    shutil.copytree(default_bundles["wi8_afp32"][0], bundle)
    data = bundle / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:5000])
    with pytest.raises(EdgebertError, match="model.onnx.data has 5000 bytes but the manifest says .* truncated"):
        load(bundle, backend="onnx")
    data.unlink()
    with pytest.raises(EdgebertError, match="model.onnx.data is missing from the bundle.*copy the whole bundle"):
        load(bundle, backend="onnx")


def test_onnx_int8_products_are_exact_on_every_x86(default_bundles, sentiment_dir):
    """On an x86 CPU without VNNI, ONNX Runtime's u8 x s8 kernel adds in saturating int16; the
    runner then loads the int8 weights re-signed for its exact u8 x u8 kernel. Where the CPU's
    u8 x s8 kernel is exact, both forms give the same bits; where it saturates, they differ and
    only the re-signed one holds the recipe's accuracy against the fp32 file."""
    from edgebert.formats import onnx_exact_int8

    bundle = default_bundles["wi8_afp32"][0]
    texts = _texts(sentiment_dir)
    exact = load(bundle, backend="onnx", num_threads=2, onnx=OnnxOptions(exact_int8=True))
    native = load(bundle, backend="onnx", num_threads=2, onnx=OnnxOptions(exact_int8=False))
    assert "int8 products u8 x u8 (24 products re-signed" in exact.delegate.summary()
    assert native.delegate.int8_products is None
    a, b = (m.encode(texts, seq_length=128)["pooled_output"] for m in (exact, native))
    saturates = onnx_exact_int8.u8s8_saturates()
    if saturates:
        assert np.abs(a - b).max() > 1e-3
    else:
        assert np.array_equal(a, b)
    ref = load(default_bundles["fp32"][0], backend="onnx", num_threads=2).encode(texts, seq_length=128)
    cos = metrics.cosine(a, ref["pooled_output"])  # (the fp32 bundle is a fixed-128 one)
    assert cos.mean() >= 0.9995 and cos.min() >= 0.998, (cos.mean(), cos.min())
    native_cos = metrics.cosine(b, ref["pooled_output"])
    print(
        f"pooled cosine, 64 sentences: re-signed {cos.mean():.5f} (min {cos.min():.5f}), as stored {native_cos.mean():.5f} (min {native_cos.min():.5f})"
    )
    # The default decides by the CPU.
    auto = load(bundle, backend="onnx", num_threads=2)
    assert (auto.delegate.int8_products is not None) is saturates


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"backend": "coreml"}, "unknown backend 'coreml'"),
        ({"delegate": "tpu"}, "unknown delegate 'tpu'"),
    ],
)
def test_bad_arguments(kwargs, message, default_bundles):
    with pytest.raises(EdgebertError, match=message):
        load(default_bundles["wi8_afp32"][0], **kwargs)


@pytest.mark.parametrize(
    "texts,message",
    [
        ([], "no texts given"),
        (["fine", "  "], "text 1 is empty"),
        ([3], "text 0 is a int, not a str"),
    ],
)
def test_bad_texts(texts, message, default_bundles):
    m = load(default_bundles["wi8_afp32"][0])
    with pytest.raises(EdgebertError, match=message):
        m.embed(texts)


def test_cli_run(default_bundles, capsys):
    bundle = str(default_bundles["wi8_afp32"][0])
    assert main(["run", bundle, "I loved it", "I adored it", "--json", "--normalize"]) == 0
    out = json.loads(capsys.readouterr().out)
    emb = np.array(out["embeddings"])
    assert emb.shape == (2, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(emb, load(bundle).embed(["I loved it", "I adored it"], normalize=True), atol=1e-6)
    assert out["delegate"]["used"] == "xnnpack-weight-cache"  # the default TFLite CPU path
    assert main(["run", bundle, "--pairs", "q", "a", "q2", "a2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("q || a") and lines[2].startswith("most similar: 0 and 1")
    assert main(["run", bundle, "odd", "--pairs"]) == 1
    assert "--pairs needs an even number of texts" in capsys.readouterr().err


def test_cli_run_reads_stdin_without_tensorflow(default_bundles):
    bundle = str(default_bundles["wi8_afp32"][0])
    code = (
        "import sys, edgebert.cli as c; rc = c.main(['run', sys.argv[1], '--backend', 'onnx']); "
        "assert 'tensorflow' not in sys.modules; sys.exit(rc)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code, bundle], input="first line\n\nsecond line\n", text=True, capture_output=True
    )
    assert p.returncode == 0, p.stderr
    assert [ln.split("  ")[-1] for ln in p.stdout.splitlines()[:2]] == ["first line", "second line"]
    assert "onnx on CPUExecutionProvider" in p.stderr


def test_weight_cache_gives_the_interpreter_numbers(default_bundles, tmp_path):
    """XNNPACK's weight cache through CompiledModel: bit-identical outputs at every length (the
    dynamic axis is resized, output buffers sized by edgebert), the cache built under a temporary
    name and renamed, and reused by a later load."""
    bundle = default_bundles["wi8_afp32"][0]
    texts = [
        "ok",
        "the film was long and the story was thin, but the actors held it together",
        "a quiet, tender and beautifully shot drama about two brothers",
    ] * 11
    plain = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache="off"))
    cache = tmp_path / "packed.xnnpack"
    cached = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache=cache))
    assert cached.delegate.used == "xnnpack-weight-cache"
    assert cache.is_file() and cache.stat().st_size > 1_000_000 and list(tmp_path.iterdir()) == [cache]
    for seq in (None, 8, 64):
        a, b = plain.encode(texts, seq_length=seq), cached.encode(texts, seq_length=seq)
        assert np.array_equal(a["sequence_output"], b["sequence_output"]), seq
        assert np.array_equal(a["pooled_output"], b["pooled_output"]), seq
    built = cache.stat().st_mtime_ns
    again = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache=cache))
    assert np.array_equal(again.embed(texts), plain.embed(texts)) and cache.stat().st_mtime_ns == built


def test_weight_cache_auto_names_the_file_by_model_and_falls_back_to_memory(default_bundles, tmp_path, monkeypatch):
    bundle, manifest = default_bundles["wi8_afp32"]
    cache_root = tmp_path / "cache"
    monkeypatch.setenv("EDGEBERT_CACHE", str(cache_root))
    m = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache="auto"))
    files = list((cache_root / "xnnpack").iterdir())
    assert len(files) == 1 and files[0].name.startswith(manifest["models"]["tflite"]["sha256"][:24])
    want = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache="off")).embed("a fine film")
    assert np.array_equal(m.embed("a fine film"), want)
    monkeypatch.setenv("EDGEBERT_CACHE", "/proc/edgebert-not-writable")
    assert np.array_equal(
        load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache="auto")).embed("a fine film"), want
    )
    # "auto" (the default) applies where XNNPACK runs the file; a cache file asked for elsewhere is refused
    assert load(bundle, backend="onnx").delegate.used == "CPUExecutionProvider"
    with pytest.raises(EdgebertError, match="weight_cache is an option of TFLite on the CPU"):
        load(bundle, backend="onnx", tflite=TfliteOptions(weight_cache=tmp_path / "w.xnnpack"))


def test_default_weight_cache_falls_back_to_the_interpreter(default_bundles, monkeypatch):
    """Where LiteRT's CompiledModel cannot load a file, the default runs it on the Interpreter and
    says why; a weight cache asked for by name raises instead."""
    from edgebert.runtime import runners

    def refuse(*a, **k):
        raise EdgebertError("LiteRT's CompiledModel could not load it on the CPU: test", "load it without weight_cache")

    monkeypatch.setattr(runners, "LiteRtAcceleratedRunner", refuse)
    bundle = default_bundles["wi8_afp32"][0]
    m = load(bundle, num_threads=2)
    m.embed("a fine film")
    assert m.delegate.used == "xnnpack" and m.delegate.nodes_delegated > 0
    assert m.delegate.summary().endswith("; no weight cache: LiteRT's CompiledModel could not load it on the CPU: test")
    with pytest.raises(EdgebertError, match="CompiledModel could not load it"):
        load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache=":memory"))


def test_weight_cache_on_a_fixed_length_bundle(default_bundles, tmp_path):
    bundle = default_bundles["fp32"][0]  # fixed length 128, dynamic batch
    m = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache=tmp_path / "w.xnnpack"))
    want = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache="off")).encode(["one", "two words here"])
    got = m.encode(["one", "two words here"])
    assert np.array_equal(got["sequence_output"], want["sequence_output"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
@pytest.mark.parametrize("weight_cache", ["file", "off"])
def test_runner_gives_back_the_model_files_weight_pages(default_bundles, tmp_path, monkeypatch, weight_cache):
    """XNNPACK runs from packed weights, so both TFLite CPU runners drop the file's own pages
    after the load (CompiledModel) or the first run (Interpreter): with the file warm in the page
    cache, as just after an export, the runner kept 19.5 MB of the 24.2 MB default int8 file
    resident, and keeps under 1 MB after (2026-12-07; how much of it the load maps depends on how
    the page cache holds the file, 3.8 MB for this copy); outputs bit for bit the same."""
    import gc
    import shutil

    from edgebert.runtime import file_pages

    bundle = tmp_path / "bundle"  # a path no other runner of this process maps
    shutil.copytree(default_bundles["wi8_afp32"][0], bundle)
    model = bundle / "model.tflite"
    texts = ["a quiet, tender and beautifully shot drama about two brothers", "ok", "the plot was thin"] * 4
    cache = tmp_path / "packed.xnnpack" if weight_cache == "file" else "off"
    load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache=cache)).embed("build the cache")
    gc.collect()
    held = {}
    for mode in ("keep", "release"):
        if mode == "keep":
            monkeypatch.setattr(file_pages, "release_mapped_file", lambda path: 0)
        else:
            monkeypatch.undo()
        model.read_bytes()  # warm in the page cache
        m = load(bundle, num_threads=2, tflite=TfliteOptions(weight_cache=cache))
        assert m.delegate.used == ("xnnpack-weight-cache" if weight_cache == "file" else "xnnpack")
        out = m.encode(texts)
        m.embed(texts[:2])  # the Interpreter gives the pages back after its first run
        held[mode] = (file_pages.resident_bytes(model), out)
        del m
        gc.collect()
        assert file_pages.mapped_ranges(model) == [], "the runner's mapping outlived it"
    size = model.stat().st_size
    assert held["release"][0] < 0.08 * size and held["keep"][0] > 2 * held["release"][0], held
    for name in ("pooled_output", "sequence_output"):
        assert np.array_equal(held["keep"][1][name], held["release"][1][name])
