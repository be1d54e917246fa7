"""Fine-tuned classifiers end to end: tutorial-form SavedModels (strings in) recognised, exported
with their heads in both formats and scored like the SavedModel; unsupported heads refused;
``edgebert finetune`` trains every parameter and writes a model that exports; MediaPipe runs
the fine-tuned head as an Android asset."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import has_module, require

from edgebert.errors import EdgebertError, SourceError
from edgebert.runtime.edge_model import load
from fixtures import exports, tutorial


@pytest.fixture(scope="module", autouse=True)
def _tensorflow_hub():
    require(
        has_module("tensorflow_hub"),
        "tensorflow_hub (the export extra)",
        "pip install -e '.[export]'; `make test` does it",
    )


@pytest.fixture(scope="module")
def real_sentences(sentiment_dir):
    """500 test sentences and 400 others (for a head), in a fixed shuffled order."""
    from edgebert.eval.text_files import read_texts

    texts, labels = read_texts(sentiment_dir / "movieReviewSnippets_GroundTruth.txt")
    order = np.random.default_rng(7).permutation(len(texts))
    pick = lambda idx: ([texts[i] for i in idx], np.asarray([labels[i] for i in idx]))  # noqa: E731
    return pick(order[:500]), pick(order[500:900])


@pytest.fixture(scope="module")
def tiny_tutorial(tf2_hub_tiny, tmp_path_factory):
    """The tutorial's model on the tiny TF Hub encoder: Dense(1), raw logits, packed to 32."""
    root = tmp_path_factory.mktemp("tutorial_tiny")
    pre = tutorial.preprocessing(tf2_hub_tiny / "assets" / "vocab.txt", True, root / "pre", seq_length=32)
    rng = np.random.default_rng(0)
    return tutorial.classifier(
        pre, tf2_hub_tiny, root / "clf", kernel=rng.normal(0, 1, (32, 1)), bias=np.array([0.1])
    ), pre


@pytest.fixture(scope="module")
def finetuned_real(default_model_dir, real_sentences, sentiment_dir, tmp_path_factory):
    """`edgebert finetune` on the default model (tutorial form: hub.KerasLayer preprocessing and
    encoder, dropout, dense): one epoch on 2,000 sentences that are not among the 500 test ones."""
    from edgebert.eval.text_files import read_texts

    root = tmp_path_factory.mktemp("finetune_real")
    test = set(real_sentences[0][0])
    texts, labels = read_texts(sentiment_dir / "movieReviewSnippets_GroundTruth.txt")
    rows = [(t, y) for t, y in zip(texts, labels) if t not in test]
    order = np.random.default_rng(3).permutation(len(rows))[:2000]
    (root / "train.tsv").write_text(
        "".join(f"{'positive' if rows[i][1] else 'negative'}\t{rows[i][0]}\n" for i in order)
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebert",
            "finetune",
            str(default_model_dir),
            "--train",
            str(root / "train.tsv"),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--learning-rate",
            "1e-4",
            "--no-baseline",
            "-o",
            str(root / "clf"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "clf"


def _export(source, out, recipe="fp32", **kw):
    return exports.export_json(source, out, recipe, label="tutorial", seq_length=kw.pop("seq_length", None), **kw)


def test_tutorial_model_is_recognised(tiny_tutorial):
    from edgebert.exporters.sources import load_source

    src = load_source(tiny_tutorial[0])
    assert src.kind == "tf2_classifier" and src.do_lower_case
    meta = src.head.meta()
    assert {k: meta[k] for k in ("activation", "pooling", "inputs", "seq_length", "units")} == {
        "activation": "none",
        "pooling": "cls",
        "inputs": "strings",
        "seq_length": 32,
        "units": 1,
    }
    assert meta["max_abs_vs_source"] < 1e-5
    assert src.config.activation == "gelu_tanh"  # the Model Garden encoder's GELU, found by the probe


def test_sigmoid_and_softmax_heads_are_recognised(tiny_tutorial, tf2_hub_tiny, tmp_path):
    from edgebert.exporters.sources import load_source

    for units, activation in ((1, "sigmoid"), (3, "softmax")):
        path = tutorial.classifier(
            tiny_tutorial[1], tf2_hub_tiny, tmp_path / activation, units=units, activation=activation
        )
        meta = load_source(path).head.meta()
        assert (meta["units"], meta["activation"], meta["seq_length"]) == (units, activation, 32)


def test_tiny_bundle_scores_equal_saved_model_on_real_text(tiny_tutorial, real_sentences, tmp_path):
    """Strings in, edgebert runtime, both formats == the SavedModel on the same strings; long
    sentences truncate at the preprocessing's 32 tokens as the SavedModel does."""
    texts = real_sentences[0][0]
    m = _export(tiny_tutorial[0], tmp_path / "b")
    assert m["task"] == "classifier" and m["max_seq_length"] == 32 and m["labels"] == ["0", "1"]
    want = tutorial.saved_model_scores(tiny_tutorial[0], texts)
    for backend in ("tflite", "onnx"):
        with load(tmp_path / "b", backend=backend) as model:
            got = model.scores(texts)
            assert np.abs(got - want).max() <= 1e-4, backend
            p = model.classify(texts)  # one logit -> [1 - sigmoid, sigmoid]
            np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-want[:, 0])), atol=1e-4)
            assert model.encode(texts[:3])["pooled_output"].shape == (3, 32)  # the encoder outputs stay


@pytest.mark.slow  # fine-tunes the default model on 2,000 sentences (4 minutes)
def test_fine_tuned_int8_keeps_decisions_on_real_text(finetuned_real, real_sentences, tmp_path):
    texts = real_sentences[0][0]
    want = tutorial.saved_model_scores(finetuned_real, texts)
    m = _export(finetuned_real, tmp_path / "int8", recipe="wi8_afp32")
    assert m["head"]["activation"] == "softmax" and m["labels"] == ["negative", "positive"]
    for backend in ("tflite", "onnx"):
        with load(tmp_path / "int8", backend=backend) as model:
            same = (model.classify(texts).argmax(1) == want.argmax(1)).mean()
            print(f"{backend} int8: {same:.4f} identical decisions on {len(texts)} sentences")
            assert same >= 0.99, (backend, same)


def test_unsupported_heads_are_refused_with_what_was_found(tiny_tutorial, tf2_hub_tiny, tmp_path):
    from edgebert.exporters.sources import load_source

    pre = tiny_tutorial[1]
    two = tutorial.classifier(pre, tf2_hub_tiny, tmp_path / "two", units=3, hidden_dense=8)
    with pytest.raises(
        SourceError,
        match=r"unsupported classifier head; found classifier/kernel \[8, 3\], "
        r"classifier/bias \[3\], hidden/kernel \[32, 8\], hidden/bias \[8\]",
    ):
        load_source(two)
    first = tutorial.classifier(pre, tf2_hub_tiny, tmp_path / "first", first_token=True)
    with pytest.raises(SourceError, match="no encoder \\+ dense computation reproduces its scores"):
        load_source(first)


def _synthetic(n, seed):
    """Separable sentences over the tiny vocab: sentiment words decide the label."""
    rng = np.random.default_rng(seed)
    pos, neg = ["good", "great", "fun", "love"], ["bad", "boring", "hate", "lazy"]
    filler = ["the", "movie", "is", "this", "film", "it", "was", "a", "plot", "story", "very", "not"]
    lines = []
    for _ in range(n):
        y = int(rng.integers(2))
        words = list(rng.choice(filler, rng.integers(3, 8))) + list(rng.choice(pos if y else neg, 2))
        rng.shuffle(words)
        lines.append(f"{'yes' if y else 'no'}\t{' '.join(words)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def finetuned_tiny(hf_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    (root / "train.tsv").write_text(_synthetic(400, 1))
    out = root / "clf"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgebert",
            "finetune",
            str(hf_tiny),
            "--train",
            str(root / "train.tsv"),
            "--epochs",
            "4",
            "--patience",
            "2",
            "--learning-rate",
            "1e-3",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_finetune_trains_every_parameter_and_learns(finetuned_tiny, hf_tiny):
    from edgebert.exporters.sources import load_source
    from edgebert.model.config import expected_shapes

    out, proc = finetuned_tiny
    report = json.loads((out / "edgebert_finetune.json").read_text())
    cfg = load_source(hf_tiny).config
    encoder = sum(int(np.prod(s)) for s in expected_shapes(cfg).values())
    assert report["trainable_parameters"] == encoder + cfg.hidden_size * 2 + 2
    assert report["train_sentences"] == 320 and report["held_out_sentences"] == 80
    assert report["held_out_accuracy"] >= 0.9, report["history"]
    assert report["held_out_accuracy"] > report["frozen_probe"]["cls"]["accuracy"] - 0.05
    assert report["labels"] == ["no", "yes"] and (out / "assets" / "labels.txt").read_text() == "no\nyes\n"
    assert "epoch 1/4 step" in proc.stderr and "held-out accuracy" in proc.stdout
    assert len((out / "eval_split.tsv").read_text().splitlines()) == 80
    # The encoder's weights moved (all parameters are fine-tuned, not just the head).
    tuned = load_source(out)
    before = load_source(hf_tiny)
    assert (
        np.abs(
            tuned.weights["encoder/layer_0/attention/self/query/kernel"]
            - before.weights["encoder/layer_0/attention/self/query/kernel"]
        ).max()
        > 1e-3
    )


def test_finetuned_model_exports_with_its_labels(finetuned_tiny, tmp_path):
    out, _ = finetuned_tiny
    texts = [ln.split("\t")[1] for ln in (out / "eval_split.tsv").read_text().splitlines()]
    m = _export(out, tmp_path / "b")
    assert m["labels"] == ["no", "yes"] and m["head"]["activation"] == "softmax" and m["head"]["units"] == 2
    want = tutorial.saved_model_scores(out, texts)
    with load(tmp_path / "b", backend="onnx") as model:
        assert np.abs(model.classify(texts) - want).max() <= 1e-4
        assert model.labels == ["no", "yes"]


def test_finetune_refuses_bad_training_files(hf_tiny, tmp_path):
    from edgebert.exporters.pipelines.finetune import FinetuneRequest, finetune

    one = tmp_path / "one.tsv"
    one.write_text("yes\ta good film\nyes\tgreat fun\n")
    with pytest.raises(EdgebertError, match="has only one label"):
        finetune(FinetuneRequest(str(hf_tiny), "tiny", one, tmp_path / "o1"))
    with pytest.raises(EdgebertError, match="not found"):
        finetune(FinetuneRequest(str(hf_tiny), "tiny", tmp_path / "missing.tsv", tmp_path / "o2"))
    train, ev = tmp_path / "train.tsv", tmp_path / "eval.tsv"
    train.write_text(_synthetic(40, 2))
    ev.write_text("maybe\tthe plot\n" * 12)
    with pytest.raises(EdgebertError, match="labels not in"):
        finetune(FinetuneRequest(str(hf_tiny), "tiny", train, tmp_path / "o3", eval_file=ev))


def _check_mediapipe_classifier(model_dir, texts, out, int8: bool, tolerance: float, seq_length: int = 128) -> dict:
    """The fine-tuned model as an Android classifier asset: MediaPipe's top class is edgebert's,
    and the asset's probabilities are the SavedModel's within ``tolerance``."""
    require(
        has_module("mediapipe"), "MediaPipe (the android extra)", "pip install -e '.[android]'; `make test` does it"
    )
    from test_android import _mp

    from edgebert.exporters.pipelines.android import AndroidRequest, build

    manifest = build(
        AndroidRequest(
            source=str(model_dir),
            source_label="finetuned",
            output=out,
            task="classifier",
            int8=int8,
            seq_length=seq_length,
        )
    ).to_json()
    with load(out) as m:
        ours = m.classify(texts)
    clf = _mp(out / "model.tflite", "classifier")
    for text, p in zip(texts, ours):
        cats = {c.category_name: c.score for c in clf.classify(text).classifications[0].categories}
        assert max(cats, key=cats.get) == manifest["labels"][int(p.argmax())], text
    want = tutorial.saved_model_scores(model_dir, texts)
    assert np.abs(ours - want).max() < tolerance
    return manifest


def test_tiny_fine_tuned_head_becomes_a_mediapipe_classifier(finetuned_tiny, tmp_path):
    out, _ = finetuned_tiny
    texts = [ln.split("\t")[1] for ln in (out / "eval_split.tsv").read_text().splitlines()][:30]
    manifest = _check_mediapipe_classifier(
        out, texts, tmp_path / "a", int8=False, tolerance=1e-4, seq_length=32
    )  # the tiny model has 40 positions
    assert manifest["labels"] == ["no", "yes"]


@pytest.mark.slow  # fine-tunes the default model on 2,000 sentences; the tiny one runs in MediaPipe by default
def test_fine_tuned_head_becomes_a_mediapipe_classifier(finetuned_real, real_sentences, tmp_path):
    texts = real_sentences[0][0][:60]
    # int8: the asset's probabilities are close to the SavedModel's, not equal.
    manifest = _check_mediapipe_classifier(finetuned_real, texts, tmp_path / "a", int8=True, tolerance=0.1)
    assert manifest["labels"] == ["negative", "positive"]
