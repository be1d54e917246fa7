"""Fine-tuned BERT classifiers saved as one SavedModel, as in TensorFlow's "Classify text with BERT".

The tutorial's model is ``hub.KerasLayer(preprocess)`` -> ``hub.KerasLayer(encoder,
trainable=True)`` -> dropout -> ``Dense`` on the pooled output, saved with strings in. Its
TF Text ops (``CaseFoldUTF8``, ``WordpieceTokenizeWithOffsets``) have no TFLite or ONNX
kernels, so it cannot be converted as it is. This reader splits it the way edgebert ships
it: the vocab and casing go to the bundled tokenizer, the encoder weights to the usual
reference, and the dense head travels as data.

Nothing is read off names alone: the head's pooling, activation, the encoder's GELU and
the preprocessing's packing length are found by running the SavedModel on probe strings
and reproducing its scores with the numpy BERT (``numpy_bert``) through edgebert's own
tokenizer, so a vocab or casing mix-up fails here, not on a phone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgebert.errors import SourceError
from edgebert.eval import metrics
from edgebert.eval.metrics import FLOAT_TOLERANCE
from edgebert.exporters.sources.base import guess_lower_case
from edgebert.exporters.sources.saved_model_util import load_saved_model, variables_by_name
from edgebert.exporters.sources.tf2_saved_model import EDGEBERT_CONFIG, config_from_shapes, model_garden_weights
from edgebert.model import numpy_bert
from edgebert.model.config import ACTIVATIONS, BertConfig, expected_shapes
from edgebert.model.source_model import SourceModel
from edgebert.runtime.runners import INPUT_NAMES

KIND = "tf2_classifier"
HEAD_ACTIVATIONS = ("none", "sigmoid", "softmax")
POOLINGS = ("cls", "mean")  # cls: the pooled output, as in the tutorial
# Packing lengths TF Hub preprocessing is used with; the probe finds which one a model has.
# The lengths a SavedModel's own preprocessing is tried at to find where it packs.
PROBED_PACK_LENGTHS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
LABELS_FILE = "labels.txt"
# Mixed case, accents and punctuation: a casing or vocab mismatch changes their ids.
PROBE_TEXTS = (
    "The movie was GOOD, and I loved it!",
    "it is not very fun ; the plot is boring .",
    "Straße, café and naïve résumé: a quick brown fox jumps over the lazy dog?",
    "UNBELIEVABLE acting",
    "bad",
    "a great story , a great film",
)


@dataclasses.dataclass
class ClassifierHead:
    """The dense layer on top of the encoder and what the SavedModel does around it.

    Attributes:
      kernel: ``[hidden, units]`` float32.
      bias: ``[units]`` float32.
      activation: ``none`` (raw logits), ``sigmoid`` or ``softmax``.
      pooling: ``cls`` (the pooled output) or ``mean`` (sequence output over real tokens).
      inputs: ``strings`` (preprocessing inside) or ``tokens`` (TF Hub encoder inputs).
      seq_length: the preprocessing's packing length (strings in), else None.
      labels: label names, one per class (a one-unit head has two classes), or None.
      max_abs_vs_source: how closely edgebert's computation reproduced the SavedModel's scores.
    """

    kernel: np.ndarray
    bias: np.ndarray
    activation: str
    pooling: str
    inputs: str
    seq_length: int | None
    labels: list[str] | None
    max_abs_vs_source: float

    @property
    def units(self) -> int:
        return int(self.kernel.shape[1])

    def meta(self) -> dict:
        """Everything but the weights, as JSON-ready data."""
        d = dataclasses.asdict(self)
        del d["kernel"], d["bias"]
        return {**d, "units": self.units}


def scores(features: np.ndarray, kernel: np.ndarray, bias: np.ndarray, activation: str) -> np.ndarray:
    """What the head outputs for ``features``."""
    z = features @ kernel + bias
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if activation == "softmax":
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return z


def pooled_features(out: dict, mask: np.ndarray, pooling: str) -> np.ndarray:
    """What a head reads: the pooled output (``cls``) or the sequence output's mean over real tokens."""
    return out["pooled_output"] if pooling == "cls" else metrics.mean_pool(out["sequence_output"], mask)


def _signature(path: Path):
    """Input names -> dtype enum and output count of ``serving_default``, or None."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception:  # a corrupt file is reported by the reader that loads it
        return None
    for mg in sm.meta_graphs:
        sig = mg.signature_def.get("serving_default")
        if sig is not None:
            return {k: v.dtype for k, v in sig.inputs.items()}, len(sig.outputs), mg
    return None


def matches(path: Path) -> bool:
    """A TF2 SavedModel whose serving signature takes strings, or token ids with one output."""
    if not (path / "saved_model.pb").exists() or (path / "tfhub_module.pb").exists():
        return False
    sig = _signature(path)
    if sig is None:
        return False
    inputs, n_out, _ = sig
    if len(inputs) == 1 and next(iter(inputs.values())) == 7:  # DT_STRING
        return True
    return set(INPUT_NAMES) <= set(inputs) and n_out == 1


def _graph_ops(path: Path) -> set[str]:
    _, _, mg = _signature(path)
    ops = {n.op for n in mg.graph_def.node}
    for f in mg.graph_def.library.function:
        ops.update(n.op for n in f.node_def)
    return ops


def _encoder_weights(variables: dict, path: Path) -> tuple[dict, BertConfig | None, int | None, set[str]]:
    """Canonical encoder weights, the config when recorded, the head count, and the names used."""
    if "word_embeddings/embeddings" in variables:  # a TF Hub (Model Garden) encoder inside
        weights, heads = model_garden_weights(variables, path)
        used = {
            k
            for k in variables
            if k.startswith(
                (
                    "transformer/",
                    "word_embeddings/",
                    "position_embedding/",
                    "type_embeddings/",
                    "embeddings/",
                    "pooler_transform/",
                )
            )
        }
        return weights, None, heads, used
    config_file = _asset(path, EDGEBERT_CONFIG)
    if config_file is not None:  # an edgebert reference inside (what `edgebert finetune` writes)
        cfg = BertConfig.from_json(config_file.read_text())
        names = {k.replace("/", "__"): k for k in expected_shapes(cfg)}
        missing = [n for n in names if n not in variables]
        if missing:
            raise SourceError(
                f"{path}: the encoder lacks {len(missing)} weights (first: {names[missing[0]]})",
                "the SavedModel is incomplete; save the classifier again",
            )
        weights = {names[n]: np.asarray(variables[n].numpy(), np.float32) for n in names}
        return weights, cfg, cfg.num_heads, set(names)
    raise SourceError(
        f"{path} takes text but holds no BERT encoder edgebert knows (no TF Hub encoder "
        "variables such as word_embeddings/embeddings)",
        "build it with hub.KerasLayer on a TF Hub BERT encoder, or with `edgebert finetune`",
    )


def _head(variables: dict, used: set[str], hidden: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    rest = {k: v for k, v in variables.items() if k not in used and v.dtype.is_floating}
    layers: dict[str, dict] = {}
    for name, var in rest.items():
        prefix, _, leaf = name.rpartition("/")
        layers.setdefault(prefix, {})[leaf] = np.asarray(var.numpy(), np.float32)
    found = ", ".join(f"{k}/{leaf} {list(v.shape)}" for k, d in sorted(layers.items()) for leaf, v in d.items())
    dense = [(k, d) for k, d in layers.items() if set(d) == {"kernel", "bias"} and d["kernel"].ndim == 2]
    if len(layers) != 1 or len(dense) != 1 or dense[0][1]["kernel"].shape[0] != hidden:
        raise SourceError(
            f"{path}: unsupported classifier head; found {found or 'no variables besides the encoder'}",
            f"edgebert exports an encoder followed by one dense layer on its {hidden}-wide output "
            "(optionally with sigmoid or softmax), as in the TF 'Classify text with BERT' tutorial",
        )
    d = dense[0][1]
    if d["bias"].shape != (d["kernel"].shape[1],):
        raise SourceError(
            f"{path}: head kernel {list(d['kernel'].shape)} and bias {list(d['bias'].shape)} do not fit",
            "the SavedModel is inconsistent; save it again",
        )
    return d["kernel"], d["bias"]


def _asset(path: Path, name: str) -> Path | None:
    for p in sorted((path / "assets").glob(name + "*")) if (path / "assets").is_dir() else []:
        if p.is_file():
            return p
    return None


def _vocab(path: Path, vocab_size: int) -> Path:
    """The WordPiece vocab among the assets (preprocessing and encoder may each carry one)."""
    found = []
    for p in sorted((path / "assets").iterdir()) if (path / "assets").is_dir() else []:
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        if "[CLS]" in lines and "[SEP]" in lines:
            found.append((p, lines))
    fitting = [(p, lines) for p, lines in found if len(lines) == vocab_size]
    if not fitting:
        raise SourceError(
            f"{path}/assets holds no vocab of {vocab_size} tokens "
            f"(found: {', '.join(f'{p.name} ({len(l)})' for p, l in found) or 'none'})",
            "the classifier must be saved with its preprocessing model's vocab.txt",
        )
    if any(lines != fitting[0][1] for _, lines in fitting[1:]):
        raise SourceError(
            f"{path}/assets holds different vocabs of the same size ({', '.join(p.name for p, _ in fitting)})",
            "the preprocessing and the encoder must come from the same model",
        )
    return fitting[0][0]


def _labels(path: Path, units: int) -> list[str] | None:
    f = _asset(path, LABELS_FILE) or (path / LABELS_FILE if (path / LABELS_FILE).exists() else None)
    if f is None:
        return None
    names = [x for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
    want = 2 if units == 1 else units
    if len(names) != want:
        raise SourceError(
            f"{f} names {len(names)} labels for a head with {units} output(s) ({want} classes)",
            "one label a line, in the head's output order (negative first for one output)",
        )
    return names


class _Runner:
    """Calls the SavedModel's serving signature on strings or token ids."""

    def __init__(self, obj, path: Path):
        self.sig = obj.signatures["serving_default"]
        self.inputs = list(self.sig.structured_input_signature[1])
        self.strings = len(self.inputs) == 1
        self.path = path

    def __call__(self, texts=None, feeds=None) -> np.ndarray:
        import tensorflow as tf

        if self.strings:
            out = self.sig(**{self.inputs[0]: tf.constant(list(texts))})
        else:
            out = self.sig(**{k: tf.constant(feeds[k], tf.int32) for k in INPUT_NAMES})
        (value,) = out.values()
        value = np.asarray(value.numpy(), np.float64)
        return value.reshape(len(value), -1)


def _identify(cfg: BertConfig, weights: dict, kernel, bias, tok, run: _Runner, where: str):
    """(activation, pooling, head activation, max-abs) reproducing the SavedModel's scores."""
    feeds = tok(list(PROBE_TEXTS), seq_length=min(64, cfg.max_position), dynamic_padding=True)
    got = run(PROBE_TEXTS, feeds)
    scale = max(1.0, float(np.abs(got).max()))
    tried = []
    best = None
    for act in ACTIVATIONS:
        c = dataclasses.replace(cfg, activation=act)
        out = numpy_bert.forward(c, weights, feeds["input_word_ids"], feeds["input_mask"], feeds["input_type_ids"])
        for pooling in POOLINGS:
            feats = pooled_features(out, feeds["input_mask"], pooling)
            for head_act in HEAD_ACTIVATIONS:
                err = float(np.abs(scores(feats, kernel, bias, head_act) - got).max())
                tried.append((err, f"{act}/{pooling}/{head_act}"))
                if best is None or err < best[0]:
                    best = (err, act, pooling, head_act)
    if best[0] > FLOAT_TOLERANCE * scale:
        closest = ", ".join(f"{name} max-abs {e:.2g}" for e, name in sorted(tried)[:3])
        raise SourceError(
            f"{where}: no encoder + dense computation reproduces its scores (closest: {closest})",
            "edgebert supports TF Hub BERT preprocessing + encoder + one dense layer on the pooled "
            "or mean-pooled output; a custom preprocessing or head is not recognised",
        )
    return best


def _pack_length(cfg: BertConfig, weights: dict, kernel, bias, head_act, pooling, tok, run: _Runner) -> int:
    """The length the preprocessing packs to, found with one long text."""
    words = " ".join(["the quick brown fox jumps over the lazy dog , a great film ."] * 50)
    got = run([words])
    errors = []
    for n in PROBED_PACK_LENGTHS:
        if n > cfg.max_position:
            break
        f = tok([words], seq_length=n)
        out = numpy_bert.forward(cfg, weights, f["input_word_ids"], f["input_mask"], f["input_type_ids"])
        err = float(np.abs(scores(pooled_features(out, f["input_mask"], pooling), kernel, bias, head_act) - got).max())
        errors.append(f"{n}: {err:.2g}")
        if err <= FLOAT_TOLERANCE * max(1.0, float(np.abs(got).max())):
            return n
    raise SourceError(
        f"{run.path}: cannot tell the preprocessing's sequence length (scores of a long text vs "
        f"truncation at {'; '.join(errors)})",
        "pack with TF Hub's bert_pack_inputs to 16..512 tokens",
    )


def load(path: Path) -> SourceModel:
    import tensorflow_text  # noqa: F401  (registers the preprocessing's TF Text ops before loading)

    from edgebert.tokenizer.wordpiece import BertTokenizer

    obj = load_saved_model(path)
    variables = variables_by_name(obj)
    weights, cfg, heads, used = _encoder_weights(variables, path)
    if cfg is None:
        cfg = config_from_shapes(weights, heads)
    kernel, bias = _head(variables, used, cfg.hidden_size, path)
    run = _Runner(obj, path)
    vocab = _vocab(path, cfg.vocab_size)
    if run.strings:
        # The preprocessing lower-cases exactly when its graph has TF Text's case folding.
        lower = "CaseFoldUTF8" in _graph_ops(path)
    else:
        lower = guess_lower_case(vocab)
    tok = BertTokenizer(vocab, lower)
    err, act, pooling, head_act = _identify(cfg, weights, kernel, bias, tok, run, str(path))
    cfg = dataclasses.replace(cfg, activation=act)
    seq = _pack_length(cfg, weights, kernel, bias, head_act, pooling, tok, run) if run.strings else None
    head = ClassifierHead(
        kernel,
        bias,
        head_act,
        pooling,
        "strings" if run.strings else "tokens",
        seq,
        _labels(path, kernel.shape[1]),
        err,
    )
    return SourceModel(KIND, path, cfg, weights, vocab, lower, head=head)
