"""``edgebert finetune``: full fine-tuning of a BERT encoder with a classification head, on the CPU.

The result is the SavedModel TensorFlow's "Classify text with BERT" tutorial builds:
``hub.KerasLayer(preprocess)`` -> ``hub.KerasLayer(encoder, trainable=True)`` -> dropout ->
``Dense(classes, softmax)`` on the pooled output, strings in, so ``edgebert export`` and
``edgebert android --task classifier`` take it like any fine-tuned classifier.

Training does not go through the string model: its preprocessing pads every sentence to the
packing length. The same encoder and head layers are trained on token batches from edgebert's
tokenizer (the same ids as TF Hub preprocessing, tested in ``test_tokenizer``), grouped by length
and cut to their longest sentence, which is several times less work on short sentences.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.errors import EdgebertError
from edgebert.eval import linear_probe
from edgebert.eval.metrics import FLOAT_TOLERANCE
from edgebert.eval.text_files import label_warnings, read_labelled
from edgebert.exporters.pipelines.progress import say as _progress
from edgebert.files import replace_dir

REPORT = "edgebert_finetune.json"
EVAL_SPLIT = "eval_split.tsv"  # label<TAB>text of the held-out sentences, to score exports on
# The lengths fine-tuning packs to (the shortest that fits the training texts).
TRAIN_LENGTHS = (32, 64, 128, 256, 512)


@dataclasses.dataclass
class FinetuneRequest:
    """What to fine-tune on, and how.

    ``eval_file`` None: a random 20% of ``train_file`` (``seed``) is held out.
    ``patience``: epochs without a better held-out accuracy before stopping early.
    """

    source: str
    source_label: str
    train_file: Path
    output: Path
    eval_file: Path | None = None
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup: float = 0.1
    dropout: float = 0.1
    patience: int = 1
    seq_length: int | None = None  # None: the shortest of TRAIN_LENGTHS that fits the training texts (<= 128)
    seed: int = 0
    baseline: bool = True  # also score a logistic probe on the frozen encoder's embeddings


def _split(texts, labels, names, req: FinetuneRequest):
    if req.eval_file is not None:
        ev_texts, ev_labels, ev_names = read_labelled(Path(req.eval_file))
        unknown = sorted(set(ev_names[i] for i in ev_labels) - set(names))
        if unknown:
            raise EdgebertError(
                f"{req.eval_file} has labels not in {req.train_file}: {', '.join(unknown)}",
                "use the same label names in both files",
            )
        return texts, labels, ev_texts, [names.index(ev_names[i]) for i in ev_labels]
    train, held = linear_probe.split(len(texts), req.seed)
    return ([texts[i] for i in train], [labels[i] for i in train], [texts[i] for i in held], [labels[i] for i in held])


def _pack_length(tok, texts: list[str], max_position: int, requested: int | None) -> int:
    if requested:
        if requested > max_position:
            raise EdgebertError(
                f"--seq-len {requested} exceeds the model's {max_position} positions",
                f"use --seq-len {max_position} or less",
            )
        return requested
    longest = int(tok(texts, seq_length=512, dynamic_padding=True)["input_mask"].sum(1).max())
    fits = [n for n in TRAIN_LENGTHS if n >= longest and n <= min(128, max_position)]
    return fits[0] if fits else min(128, max_position)


def _batches(feeds: dict, labels: np.ndarray, size: int, rng: np.random.Generator | None):
    """Length-grouped batches cut to their longest sentence (shuffled when ``rng`` is given)."""
    n = len(labels)
    lengths = feeds["input_mask"].sum(1)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    chunk = size * 50  # sort within chunks: batches of similar length, still shuffled
    groups = []
    for i in range(0, n, chunk):
        part = order[i : i + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        groups += [part[j : j + size] for j in range(0, len(part), size)]
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    for idx in groups:
        w = int(lengths[idx].max())
        yield idx, {k: v[idx, :w] for k, v in feeds.items()}, labels[idx]


def _schedule(tf_keras, peak: float, total: int, warmup: int):
    class WarmupLinearDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up to ``peak``, then linear decay to 0 (BERT's fine-tuning schedule)."""

        def __call__(self, step):
            import tensorflow as tf

            step = tf.cast(step, tf.float32)
            up = peak * step / max(warmup, 1)
            down = peak * tf.maximum(0.0, (total - step) / max(total - warmup, 1))
            return tf.where(step < warmup, up, down)

        def get_config(self):
            return {"peak": peak, "total": total, "warmup": warmup}

    return WarmupLinearDecay()


def _embeddings(encoder_fn, feeds: dict, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Pooled and mean-pooled outputs of the frozen encoder (the probe baseline's features)."""
    from edgebert.eval.metrics import mean_pool

    n = len(feeds["input_mask"])
    parts_p, parts_m, index = [], [], []
    for idx, batch, _ in _batches(feeds, np.zeros(n, np.int32), size, None):
        out = encoder_fn(batch)
        parts_p.append(out["pooled_output"].numpy())
        parts_m.append(mean_pool(out["sequence_output"].numpy(), batch["input_mask"]))
        index.append(idx)
    order = np.argsort(np.concatenate(index))
    return np.concatenate(parts_p)[order], np.concatenate(parts_m)[order]


def _probe_baseline(train_x, train_y, eval_x, eval_y) -> dict:
    """The frozen-embedding logistic-regression probe: L2 picked on the training part only."""
    y = np.asarray(train_y)
    best = linear_probe.select_l2(train_x, y)
    k, b = linear_probe.fit(train_x, y, best)
    return {"l2": best, "accuracy": float((linear_probe.predict(k, b, eval_x) == np.asarray(eval_y)).mean())}


@dataclasses.dataclass
class _Data:
    """The labelled sentences, split: label indices into ``names``."""

    names: list[str]
    train_texts: list[str]
    train_y: list[int]
    eval_texts: list[str]
    eval_y: list[int]


@dataclasses.dataclass
class _Prepared:
    """Step 1's results: the trainable encoder and TF Hub preprocessing SavedModels (in ``work``),
    the packing length, and both splits as token batches with their labels."""

    work: Path
    encoder_dir: Path
    preprocess_dir: Path
    seq: int
    train_feeds: dict
    train_labels: np.ndarray
    eval_feeds: dict
    eval_labels: np.ndarray


@dataclasses.dataclass
class _Layers:
    """The layers of the tutorial's model, shared by the token model that trains them."""

    encoder: Any
    dropout: Any
    dense: Any
    token_model: Any
    predict: Any  # the token model in inference, one trace for every batch shape


@dataclasses.dataclass
class _Training:
    """What training reports: per-epoch history and the best held-out accuracy (whose weights
    the model holds)."""

    n_params: int
    t0: float  # when training started: the report's train_seconds count from here
    history: list = dataclasses.field(default_factory=list)
    best: float = -1.0


def finetune(req: FinetuneRequest) -> dict:
    """Fine-tunes, writes the SavedModel to ``req.output`` atomically, returns the report."""
    export_tfhub_lib = _import_training_stack()
    import tensorflow as tf

    data = _read_data(req)
    out = Path(req.output)
    if out.exists() and not (out / REPORT).exists() and any(out.iterdir()):
        raise EdgebertError(f"{out} exists and is not an edgebert finetune output", "choose another -o directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(req.seed)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        prep = _prepare(req, data, staging / ".work", export_tfhub_lib)
        layers = _build_layers(req, prep, len(data.names))
        baseline = _frozen_probe(layers, prep, data) if req.baseline else None
        training = _train(req, layers, prep)
        _progress(f"[4/4] writing the strings-in SavedModel to {out}")
        saved = _save_strings_model(layers, prep, data, staging / "saved_model")
        report = _report(req, data, prep, training, baseline)
        (saved / REPORT).write_text(json.dumps(report, indent=1))
        (saved / EVAL_SPLIT).write_text(
            "".join(f"{data.names[y]}\t{' '.join(t.split())}\n" for t, y in zip(data.eval_texts, data.eval_y)),
            encoding="utf-8",
        )
        replace_dir(saved, out)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _import_training_stack():
    """Imports TensorFlow, TF Hub and tf_keras, in that order, and returns tf-models-official's
    ``export_tfhub_lib``: TF Hub's preprocessing is written by the code that wrote bert_*_preprocess."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow  # noqa: F401
    import tensorflow_hub  # noqa: F401
    import tf_keras  # noqa: F401

    try:
        from official.nlp.tools import export_tfhub_lib
    except ImportError as e:
        raise EdgebertError(
            f"edgebert finetune writes the TF Hub preprocessing with tf-models-official ({e.name} is missing)",
            "pip install --no-deps tf-models-official==2.20.0 gin-config pyyaml scipy "
            "(--no-deps: it pins tensorflow~=2.20; `make` does this)",
        ) from None
    return export_tfhub_lib


def _read_data(req: FinetuneRequest) -> _Data:
    """The request's numbers and labelled sentences checked, split into training and held-out."""
    if req.epochs < 1 or req.batch_size < 1 or req.learning_rate <= 0:
        raise EdgebertError("--epochs, --batch-size and --learning-rate must be positive", "pass positive numbers")
    texts, labels, names = read_labelled(Path(req.train_file))
    for warning in label_warnings(labels, names, req.train_file):
        _progress(f"warning: {warning}")
    if len(set(labels)) < 2:
        raise EdgebertError(
            f"{req.train_file} has only one label ({names[labels[0]] if labels else 'none'})",
            "a classifier needs examples of at least two labels",
        )
    train_texts, train_y, eval_texts, eval_y = _split(texts, labels, names, req)
    if len(eval_texts) < 10:
        raise EdgebertError(f"only {len(eval_texts)} held-out sentences", "pass more data or --eval FILE")
    return _Data(names, train_texts, train_y, eval_texts, eval_y)


def _prepare(req: FinetuneRequest, data: _Data, work: Path, export_tfhub_lib) -> _Prepared:
    """Step 1: the trainable encoder SavedModel, the preprocessing packing to the length the
    training texts need, and both splits tokenized at that length."""
    from edgebert.exporters.convert.reference import save_reference
    from edgebert.exporters.sources import load_source
    from edgebert.tokenizer.wordpiece import BertTokenizer

    _progress(
        f"[1/4] preparing {req.source_label}: {len(data.train_texts)} training, {len(data.eval_texts)} "
        f"held-out sentences, labels {', '.join(data.names)}"
    )
    src = load_source(req.source)
    encoder_dir = save_reference(src, work / "encoder", trainable=True)
    tok = BertTokenizer(src.vocab_file, src.do_lower_case)
    seq = _pack_length(tok, data.train_texts, src.config.max_position, req.seq_length)
    preprocess_dir = work / "preprocess"
    export_tfhub_lib.export_preprocessing(
        str(preprocess_dir),
        vocab_file=str(src.vocab_file),
        do_lower_case=src.do_lower_case,
        default_seq_length=seq,
        tokenize_with_offsets=False,
    )
    return _Prepared(
        work,
        encoder_dir,
        preprocess_dir,
        seq,
        tok(data.train_texts, seq_length=seq),
        np.asarray(data.train_y, np.int32),
        tok(data.eval_texts, seq_length=seq),
        np.asarray(data.eval_y, np.int32),
    )


def _token_spec(feeds: dict) -> dict:
    """The input signature of token batches of any size and width."""
    import tensorflow as tf

    return {k: tf.TensorSpec([None, None], tf.int32) for k in feeds}


def _build_layers(req: FinetuneRequest, prep: _Prepared, n_labels: int) -> _Layers:
    """The tutorial's encoder, dropout and softmax head, wired into a token-batch model."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras

    encoder = hub.KerasLayer(str(prep.encoder_dir), trainable=True, name="BERT_encoder")
    dropout = tf_keras.layers.Dropout(req.dropout, name="dropout")
    dense = tf_keras.layers.Dense(n_labels, activation="softmax", name="classifier")
    token_inputs = {k: tf_keras.layers.Input(shape=(None,), dtype=tf.int32, name=k) for k in prep.train_feeds}
    token_model = tf_keras.Model(token_inputs, dense(dropout(encoder(token_inputs)["pooled_output"])))
    predict = tf.function(
        lambda f: token_model(f, training=False), input_signature=[_token_spec(prep.train_feeds)], autograph=False
    )
    return _Layers(encoder, dropout, dense, token_model, predict)


def _frozen_probe(layers: _Layers, prep: _Prepared, data: _Data) -> dict:
    """Step 2: the baseline, a logistic probe on the untrained encoder's embeddings."""
    import tensorflow as tf

    _progress("[2/4] frozen-embedding baseline: logistic regression on the untrained encoder's outputs")
    encoder = layers.encoder
    enc_fn = tf.function(
        lambda f: encoder(f), input_signature=[_token_spec(prep.train_feeds)], autograph=False
    )  # one trace for every width
    tp, tm = _embeddings(enc_fn, prep.train_feeds)
    ep, em = _embeddings(enc_fn, prep.eval_feeds)
    baseline = {
        "cls": _probe_baseline(tp, data.train_y, ep, data.eval_y),
        "mean": _probe_baseline(tm, data.train_y, em, data.eval_y),
    }
    _progress(
        f"  probe accuracy on the held-out sentences: pooled {baseline['cls']['accuracy']:.4f}, "
        f"mean-pooled {baseline['mean']['accuracy']:.4f}"
    )
    return baseline


def _train(req: FinetuneRequest, layers: _Layers, prep: _Prepared) -> _Training:
    """Step 3: every parameter trained, epoch by epoch, stopping after ``req.patience`` epochs
    without a better held-out accuracy; the best epoch's weights are the ones kept."""
    variables = layers.token_model.trainable_variables
    steps_per_epoch = math.ceil(len(prep.train_labels) / req.batch_size)
    train_step = _train_step_fn(req, layers.token_model, prep.train_feeds, steps_per_epoch * req.epochs)
    n_params = sum(int(np.prod(v.shape)) for v in variables)
    _progress(
        f"[3/4] fine-tuning all {n_params:,} "
        f"parameters: {req.epochs} epoch(s) x {steps_per_epoch} steps, batch {req.batch_size}, "
        f"lr {req.learning_rate:g}, packing length {prep.seq}"
    )
    rng = np.random.default_rng(req.seed)
    run, best_weights, stale = _Training(n_params, time.perf_counter()), None, 0
    for epoch in range(1, req.epochs + 1):
        te = time.perf_counter()
        losses = _run_epoch(req, epoch, steps_per_epoch, train_step, prep, rng, te)
        acc = _held_out_accuracy(layers.predict, prep)
        run.history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "held_out_accuracy": acc,
                "seconds": round(time.perf_counter() - te, 1),
            }
        )
        _progress(f"  epoch {epoch}: held-out accuracy {acc:.4f} (best so far {max(run.best, acc):.4f})")
        if acc > run.best:
            run.best, stale = acc, 0
            best_weights = [v.numpy() for v in variables]
        else:
            stale += 1
            if stale >= req.patience:
                _progress(f"  stopping early: no better held-out accuracy for {stale} epoch(s)")
                break
    for v, w in zip(variables, best_weights):
        v.assign(w)  # the best epoch's weights are the ones saved
    return run


def _train_step_fn(req: FinetuneRequest, token_model, train_feeds: dict, total: int):
    """One AdamW step on a batch (BERT's warm-up and linear decay over ``total`` steps), traced
    once for every batch shape; returns the batch's loss."""
    import tensorflow as tf
    import tf_keras

    opt = tf_keras.optimizers.AdamW(
        learning_rate=_schedule(tf_keras, req.learning_rate, total, int(req.warmup * total)), weight_decay=0.01
    )

    @tf.function(input_signature=[_token_spec(train_feeds), tf.TensorSpec([None], tf.int32)])
    def train_step(feeds, y):
        with tf.GradientTape() as tape:
            probs = token_model(feeds, training=True)
            loss = tf.reduce_mean(tf_keras.losses.sparse_categorical_crossentropy(y, probs))
        grads = tape.gradient(loss, token_model.trainable_variables)
        opt.apply_gradients(zip(grads, token_model.trainable_variables))
        return loss

    return train_step


def _run_epoch(
    req: FinetuneRequest,
    epoch: int,
    steps_per_epoch: int,
    train_step,
    prep: _Prepared,
    rng: np.random.Generator,
    started: float,
) -> list[float]:
    """One pass over the shuffled training batches (the epoch ``started`` then), with a progress
    line every 20 steps; returns the batches' losses."""
    losses, seen, n = [], 0, len(prep.train_labels)
    for step, (_, batch, y) in enumerate(_batches(prep.train_feeds, prep.train_labels, req.batch_size, rng), start=1):
        losses.append(float(train_step(batch, y)))
        seen += len(y)
        if step % 20 == 0 or step == steps_per_epoch:
            rate = seen / (time.perf_counter() - started)
            eta = (n - seen) / rate
            _progress(
                f"  epoch {epoch}/{req.epochs} step {step}/{steps_per_epoch} loss "
                f"{np.mean(losses[-20:]):.4f} ({rate:.1f} sentences/s, epoch ETA {eta:.0f} s)"
            )
    return losses


def _held_out_accuracy(predict, prep: _Prepared) -> float:
    ey = prep.eval_labels
    pred = np.zeros(len(ey), np.int32)
    for idx, batch, _ in _batches(prep.eval_feeds, ey, 64, None):
        pred[idx] = predict(batch).numpy().argmax(1)
    return float((pred == ey).mean())


def _save_strings_model(layers: _Layers, prep: _Prepared, data: _Data, saved: Path) -> Path:
    """Step 4: the trained layers behind TF Hub's preprocessing, strings in, with the labels as
    an asset, saved to ``saved``; checked to score as the token model did."""
    import tensorflow as tf
    import tensorflow_hub as hub
    import tf_keras

    from edgebert.exporters.sources.classifier import LABELS_FILE

    text = tf_keras.layers.Input(shape=(), dtype=tf.string, name="text")
    preprocessing = hub.KerasLayer(str(prep.preprocess_dir), name="preprocessing")
    model = tf_keras.Model(text, layers.dense(layers.dropout(layers.encoder(preprocessing(text))["pooled_output"])))
    (prep.work / LABELS_FILE).write_text("\n".join(data.names) + "\n", encoding="utf-8")
    model.labels_file = tf.saved_model.Asset(str(prep.work / LABELS_FILE))  # travels into assets/
    model.save(str(saved), include_optimizer=False)
    check = model(tf.constant(data.eval_texts[:8])).numpy()
    want = layers.predict({k: v[:8] for k, v in prep.eval_feeds.items()}).numpy()
    if np.abs(check - want).max() > FLOAT_TOLERANCE:
        raise EdgebertError(
            f"the strings-in model differs from the trained token model by {np.abs(check - want).max():.2g}",
            "please report this",
        )
    return saved


def _report(req: FinetuneRequest, data: _Data, prep: _Prepared, training: _Training, baseline: dict | None) -> dict:
    """``edgebert_finetune.json``: the data, the training history and the hyperparameters."""
    history = training.history
    return {
        "source": req.source_label,
        "train_file": str(req.train_file),
        "eval_file": str(req.eval_file) if req.eval_file else None,
        "labels": data.names,
        "train_sentences": len(prep.train_labels),
        "held_out_sentences": len(prep.eval_labels),
        "seq_length": prep.seq,
        "trainable_parameters": training.n_params,
        "epochs_run": len(history),
        "best_epoch": 1 + int(np.argmax([h["held_out_accuracy"] for h in history])),
        "held_out_accuracy": training.best,
        "frozen_probe": baseline,
        "history": history,
        "hyperparameters": {
            k: getattr(req, k)
            for k in ("epochs", "batch_size", "learning_rate", "warmup", "dropout", "patience", "seed")
        },
        "train_seconds": round(time.perf_counter() - training.t0, 1),
    }
