"""TF1 Hub modules (``tfhub_module.pb``; signatures ``tokens`` and ``tokenization_info``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert.errors import SourceError
from edgebert.exporters.sources import config_recovery
from edgebert.exporters.sources.saved_model_util import load_saved_model, variables_by_name
from edgebert.model.config import EMBEDDING_NAMES, BertConfig
from edgebert.model.source_model import SourceModel

KIND = "tf1_hub_module"


def matches(path: Path) -> bool:
    return (path / "tfhub_module.pb").exists()


def load_module(path: Path):
    obj = load_saved_model(path, tags=[])
    for sig in ("tokens", "tokenization_info"):
        if sig not in obj.signatures:
            raise SourceError(
                f"TF1 Hub module {path} has no '{sig}' signature (it has {sorted(obj.signatures)})",
                "is it a BERT module?",
            )
    return obj


def run_tokens(obj, ids, mask, type_ids) -> dict:
    """The module's own outputs for token ids."""
    import tensorflow as tf

    out = obj.signatures["tokens"](
        input_ids=tf.constant(ids, tf.int32),
        input_mask=tf.constant(mask, tf.int32),
        segment_ids=tf.constant(type_ids, tf.int32),
    )
    return {k: v.numpy() for k, v in out.items()}


def load(path: Path) -> SourceModel:
    obj = load_module(path)
    variables = variables_by_name(obj)
    weights = {
        name[len("bert/") :]: np.asarray(v.numpy(), np.float32)
        for name, v in variables.items()
        if name.startswith("bert/")
    }
    cfg = config_recovery.identify(
        infer_config(weights, path),
        weights,
        lambda *a: run_tokens(obj, *a),
        heads=config_recovery.head_candidates(weights[EMBEDDING_NAMES["word"]].shape[1]),
        where=str(path),
    )
    info = obj.signatures["tokenization_info"]()
    vocab = Path(info["vocab_file"].numpy().decode())
    if not vocab.is_absolute() or not vocab.exists():
        vocab = path / "assets" / "vocab.txt"
    return SourceModel(KIND, path, cfg, weights, vocab, bool(info["do_lower_case"].numpy()))


def infer_config(weights: dict, path: Path, activation: str = "gelu_tanh") -> BertConfig:
    """Reads L/H/I/vocab off canonical weight shapes; heads from the name convention."""
    try:
        V, H = weights[EMBEDDING_NAMES["word"]].shape
        P = weights[EMBEDDING_NAMES["position"]].shape[0]
        T = weights[EMBEDDING_NAMES["type"]].shape[0]
        L = len({k.split("/")[1] for k in weights if k.startswith("encoder/layer_")})
        I = weights["encoder/layer_0/intermediate/dense/kernel"].shape[1]
    except KeyError as e:
        raise SourceError(f"{path} has no BERT weight {e}", "is it a BERT module?") from None
    # A TF1 graph does not record the head count; Google's BERTs all use 64-wide heads.
    return BertConfig(
        vocab_size=V,
        hidden_size=H,
        num_layers=L,
        num_heads=max(1, H // 64),
        intermediate_size=I,
        max_position=P,
        type_vocab_size=T,
        activation=activation,
    )
