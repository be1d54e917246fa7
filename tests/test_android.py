"""``edgebert android``: assets that MediaPipe Tasks itself loads and runs with the same numbers
as ``edgebert.load``; metadata read back; the refusals."""

import json
import shutil

import numpy as np
import pytest
from conftest import has_module, require

from edgebert.errors import EdgebertError
from edgebert.exporters.convert import workers
from edgebert.exporters.pipelines import android_metadata as amd
from edgebert.exporters.pipelines.android import AndroidRequest, build
from edgebert.runtime.edge_model import load
from fixtures import cache


@pytest.fixture(scope="module", autouse=True)
def _mediapipe():
    require(
        has_module("mediapipe"), "MediaPipe (the android extra)", "pip install -e '.[android]'; `make test` does it"
    )


# ASCII sentences whose words split into ## pieces with the uncased vocab.
SUBWORDS = [
    "unbelievably overdramatised nonsense",
    "The cinematographer's tirelessly inventive framing",
    "a heartwarming, bittersweet rollercoaster",
    "Preposterous!",
    "ok",
]


def _mp(path, task):
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.text import text_classifier, text_embedder

    if task == "embedder":
        return text_embedder.TextEmbedder.create_from_options(
            text_embedder.TextEmbedderOptions(base_options=BaseOptions(model_asset_path=str(path)))
        )
    return text_classifier.TextClassifier.create_from_options(
        text_classifier.TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    )


@pytest.fixture(scope="module")
def movie_sentences(sentiment_dir):
    from edgebert.eval.text_files import read_texts

    texts, labels = read_texts(sentiment_dir / "movieReviewSnippets_GroundTruth.txt")
    return texts[:-700], labels[:-700]  # the last 700 hold the calibration corpus


@pytest.fixture(scope="module")
def assets(default_model_dir, movie_sentences, tmp_path_factory, shared_cache):
    root = tmp_path_factory.mktemp("android")
    texts, labels = movie_sentences
    train = root / "train.tsv"
    train.write_text("".join(f"{'positive' if y else 'negative'}\t{t}\n" for t, y in list(zip(texts, labels))[::12]))
    out = {}
    # The default model's reference is built once per run (shared cache), and one worker
    # process serves the three builds.
    with cache.using(shared_cache), workers.warm(max_source_bytes=200e6):
        for name, kw in {
            "embedder_fp32": {},
            "embedder_int8": {"int8": True},
            "classifier_int8": {"task": "classifier", "train_file": train, "int8": True, "allow_accuracy_loss": True},
        }.items():
            out[name] = root / name
            build(AndroidRequest(source=str(default_model_dir), source_label="default", output=out[name], **kw))
    return out


def test_metadata_reads_back(assets):
    for name, path in assets.items():
        buf = (path / "model.tflite").read_bytes()
        md = amd.read_metadata(buf)
        assert md["process_units"] == [{"type": "BertTokenizer", "vocab": ["vocab.txt"]}]
        assert md["packed_files"]["vocab.txt"] == (path / "vocab.txt").read_bytes()
        # metadata names follow the model's own input order
        order = [n for n, _ in amd.model_inputs(buf)]
        assert md["inputs"] == [amd.BERT_INPUTS[next(k for k in amd.BERT_INPUTS if k in n)] for n in order]
        assert sorted(md["inputs"]) == ["ids", "mask", "segment_ids"]
        manifest = json.loads((path / "edgebert.json").read_text())
        assert manifest["models"]["tflite"]["gpu_compatibility"]["gpu_ready"]
        readme = (path / "README.md").read_text()
        assert 'noCompress += "tflite"' in readme and "com.google.mediapipe:tasks-text" in readme
        if name.startswith("classifier"):
            assert md["outputs"] == ["probability"] and md["output_files"] == ["labels.txt"]
            assert md["packed_files"]["labels.txt"] == b"negative\npositive\n"
            assert "BertNLClassifier" in readme
        else:
            assert md["outputs"] == ["embedding"] and "labels.txt" not in md["packed_files"]


@pytest.mark.parametrize("name", ["embedder_fp32", "embedder_int8"])
def test_mediapipe_embedder_matches_edgebert(name, assets, movie_sentences):
    m = load(assets[name])
    assert any(p.startswith("##") for t in SUBWORDS for p in m.tokenizer.tokenize(t))
    texts = SUBWORDS + movie_sentences[0][:40:4]
    ours = m.embed(texts)
    embedder = _mp(assets[name] / "model.tflite", "embedder")
    theirs = np.array([embedder.embed(t).embeddings[0].embedding for t in texts])
    embedder.close()
    assert theirs.shape == ours.shape == (len(texts), 384)
    assert np.abs(theirs - ours).max() <= 1e-5


def test_mediapipe_classifier_matches_edgebert(assets, movie_sentences):
    m = load(assets["classifier_int8"])
    assert m.labels == ["negative", "positive"]
    texts = SUBWORDS + movie_sentences[0][1::40][:60]
    ours = m.classify(texts)
    clf = _mp(assets["classifier_int8"] / "model.tflite", "classifier")
    theirs = np.zeros_like(ours)
    names = []
    for i, t in enumerate(texts):
        cats = clf.classify(t).classifications[0].categories
        for c in cats:
            theirs[i, c.index] = c.score
        names.append(max(cats, key=lambda c: c.score).category_name)
    clf.close()
    assert np.array_equal(theirs.argmax(1), ours.argmax(1))
    assert np.abs(theirs - ours).max() <= 1e-5
    assert names == [m.labels[i] for i in ours.argmax(1)]
    training = json.loads((assets["classifier_int8"] / "edgebert.json").read_text())["head_training"]
    assert training["held_out_accuracy"] > 0.7


def test_edgebert_run_on_an_embedder_asset_pools_as_it_was_built(assets, capsys):
    """``edgebert run ASSETS`` without --pooling uses the asset's own (mean) pooling; asking for
    another one is the runtime's one-line error."""
    from edgebert.cli import main

    assert main(["run", str(assets["embedder_fp32"]), "a good movie", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    with load(assets["embedder_fp32"]) as m:
        want = m.embed(["a good movie"])
    assert out["pooling"] == "mean" and np.abs(np.array(out["embeddings"]) - want).max() <= 1e-6
    assert main(["run", str(assets["embedder_fp32"]), "a good movie", "--pooling", "cls"]) == 1
    assert "built with mean pooling" in capsys.readouterr().err


def test_mediapipe_tokenizer_differs_from_tf_hub_on_case_folding(assets):
    """MediaPipe's BertTokenizer does not case-fold like TF Text (``ß`` -> ``ss``): such text
    gets other ids on the phone than in TF Hub preprocessing (what edgebert reproduces)."""
    m = load(assets["embedder_fp32"])
    assert m.tokenizer.tokenize("Straße") == m.tokenizer.tokenize("strasse")  # TF Text folds ß to ss
    embedder = _mp(assets["embedder_fp32"] / "model.tflite", "embedder")
    theirs = np.array(embedder.embed("Straße").embeddings[0].embedding)
    embedder.close()
    assert np.abs(theirs - m.embed("Straße")[0]).max() > 1e-2


def _head(tmp_path, width=2, **extra):
    path = tmp_path / "head.npz"
    np.savez(path, kernel=np.zeros((32, width), np.float32), bias=np.zeros(width, np.float32), **extra)
    return path


def test_refusals(hf_tiny, tmp_path):
    def req(source=hf_tiny, **kw):
        return AndroidRequest(
            source=str(source), source_label="tiny", output=tmp_path / "out", **{"seq_length": 16, **kw}
        )

    cased = tmp_path / "cased"
    shutil.copytree(hf_tiny, cased)
    (cased / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    with pytest.raises(EdgebertError, match="cased, but MediaPipe's BertTokenizer always lower-cases"):
        build(req(cased))
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    with pytest.raises(EdgebertError, match="3 labels for a head with 2 outputs"):
        build(req(task="classifier", head_file=_head(tmp_path), labels_file=tmp_path / "labels.txt"))
    no_cls = tmp_path / "no_cls"
    shutil.copytree(hf_tiny, no_cls)
    vocab = (no_cls / "vocab.txt").read_text().replace("[CLS]", "[CLX]")
    (no_cls / "vocab.txt").write_text(vocab)
    with pytest.raises(EdgebertError, match="lacks \\[CLS\\]"):
        build(req(no_cls))
    with pytest.raises(EdgebertError, match="--seq-len 600 is outside what MediaPipe and the Task Library take"):
        build(req(seq_length=600))
    with pytest.raises(EdgebertError, match="exceeds the model's 40 positions"):
        build(req(seq_length=64))
    with pytest.raises(EdgebertError, match="a classifier asset needs a head"):
        build(req(task="classifier"))
    with pytest.raises(EdgebertError, match="lacks 'kernel' or 'bias'"):
        np.savez(tmp_path / "bad.npz", weights=np.zeros(3))
        build(req(task="classifier", head_file=tmp_path / "bad.npz"))
    assert not (tmp_path / "out").exists()


def test_int64_inputs_are_refused(tmp_path):
    import tensorflow as tf

    spec = [tf.TensorSpec([1, 8], tf.int64, name=n) for n in amd.BERT_INPUTS]

    @tf.function(input_signature=spec)
    def f(input_word_ids, input_mask, input_type_ids):
        return {"embedding": tf.cast(input_word_ids + input_mask + input_type_ids, tf.float32)}

    flat = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()
    with pytest.raises(EdgebertError, match="is not int32"):
        amd.bert_input_names(flat)


def test_tiny_classifier_from_a_head_file(hf_tiny, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "head.npz",
        kernel=rng.normal(size=(32, 3)).astype(np.float32),
        bias=np.zeros(3, np.float32),
        labels=np.array(["x", "y", "z"]),
        pooling="cls",
    )
    m = build(
        AndroidRequest(
            source=str(hf_tiny),
            source_label="tiny",
            output=tmp_path / "a",
            task="classifier",
            head_file=tmp_path / "head.npz",
            seq_length=16,
        )
    ).to_json()
    assert m["labels"] == ["x", "y", "z"] and m["pooling"] == "cls"
    acc = m["models"]["tflite"]["accuracy"]
    assert acc["probability"]["max_abs"] <= 1e-5 and acc["probability"]["decision_agreement"] == 1.0
    probs = load(tmp_path / "a").classify(["the a", "a the"])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_one_asset_per_length_bucket(hf_tiny, tmp_path, capsys):
    from edgebert.cli import main

    out = tmp_path / "assets"
    assert main(["android", str(hf_tiny), "--seq-len", "8,16", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "seq_8: [1, 8]" in printed and "seq_16: [1, 16]" in printed
    index = json.loads((out / "buckets.json").read_text())
    assert index["buckets"] == [8, 16] and sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "buckets.json",
        "seq_16",
        "seq_8",
    ]
    for n in (8, 16):
        asset = out / f"seq_{n}"
        buf = (asset / "model.tflite").read_bytes()
        assert amd.read_metadata(buf)["process_units"] == [{"type": "BertTokenizer", "vocab": ["vocab.txt"]}]
        manifest = json.loads((asset / "edgebert.json").read_text())
        assert manifest["seq_length"] == n and manifest["models"]["tflite"]["inputs"][0]["shape"] == [1, n]
        assert manifest["models"]["tflite"]["gate"]["passed"] and index["assets"][str(n)]["gate_passed"]
        got = load(asset).embed(["the a movie", "a the"])
        assert got.shape == (2, 32) and np.isfinite(got).all()
    assert "model.run(inputs, outputs, sig)" in (out / "README.md").read_text()
    assert main(["android", str(hf_tiny), "--seq-len", "16,8", "-o", str(tmp_path / "bad")]) == 1
    assert "length buckets must be distinct lengths >= 3 in ascending order" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_integer_asset_loads_in_mediapipe_and_computes_in_integers(default_model_dir, movie_sentences, tmp_path):
    """``edgebert android --int8 integer``: the integer-only recipe, its measured accuracy and
    integer check in the asset's manifest, MediaPipe's embeddings equal to edgebert's."""
    from edgebert.cli import main

    out = tmp_path / "assets"
    assert main(["android", str(default_model_dir), "--int8", "integer", "-o", str(out)]) == 0
    manifest = json.loads((out / "edgebert.json").read_text())
    entry = manifest["models"]["tflite"]
    assert manifest["recipe"]["name"] == "wi8_ai8i16" and entry["gate"]["passed"]
    assert entry["integer_ops"]["integer_only"] and entry["integer_ops"]["float_ops"] == []
    assert entry["accuracy"]["embedding"]["cosine"]["mean"] >= 0.99
    m = load(out)
    texts = SUBWORDS + movie_sentences[0][:40:4]
    ours = m.embed(texts)
    embedder = _mp(out / "model.tflite", "embedder")
    theirs = np.array([embedder.embed(t).embeddings[0].embedding for t in texts])
    embedder.close()
    # Not bit-exact as fp32 and dynamic int8 are (1e-5): MediaPipe 1.2.3's own TFLite kernels
    # round int16 / int8 ops differently from ai-edge-litert 2.3's (measured 2026-12-01: cosine
    # min 0.99775, max-abs 0.068 on embeddings of norm 4.5).
    from edgebert.eval import metrics

    assert metrics.cosine(theirs, ours).min() >= 0.995
