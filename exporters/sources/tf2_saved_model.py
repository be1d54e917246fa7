"""TF2 SavedModels with the TF Hub BERT encoder interface (Model Garden ``export_model``),
and edgebert's own reference SavedModels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert.errors import SourceError
from edgebert.exporters.sources import config_recovery
from edgebert.exporters.sources.base import guess_lower_case
from edgebert.exporters.sources.saved_model_util import load_saved_model, variables_by_name
from edgebert.model.config import EMBEDDING_NAMES, POOLER_NAMES, BertConfig, layer_names
from edgebert.model.source_model import SourceModel
from edgebert.runtime.runners import INPUT_NAMES

KIND = "tf2_saved_model"
EDGEBERT_CONFIG = "edgebert_config.json"  # asset that marks an edgebert reference


def matches(path: Path) -> bool:
    return (path / "saved_model.pb").exists() and not (path / "tfhub_module.pb").exists()


def run_encoder(obj, ids, mask, type_ids) -> dict:
    """Calls the object (signature output names are mangled Keras names)."""
    import tensorflow as tf

    out = obj(
        {
            "input_word_ids": tf.constant(ids, tf.int32),
            "input_mask": tf.constant(mask, tf.int32),
            "input_type_ids": tf.constant(type_ids, tf.int32),
        }
    )
    res = {k: v.numpy() for k, v in out.items() if k != "encoder_outputs"}
    res["encoder_outputs"] = [t.numpy() for t in out.get("encoder_outputs", [])]
    return res


def config_from_shapes(weights: dict, heads: int) -> BertConfig:
    """The architecture the canonical weights spell out (activation: a default to be probed)."""
    V, H = weights[EMBEDDING_NAMES["word"]].shape
    return BertConfig(
        vocab_size=V,
        hidden_size=H,
        num_layers=sum(k.endswith("query/kernel") for k in weights),
        num_heads=heads,
        intermediate_size=weights["encoder/layer_0/intermediate/dense/kernel"].shape[1],
        max_position=weights[EMBEDDING_NAMES["position"]].shape[0],
        type_vocab_size=weights[EMBEDDING_NAMES["type"]].shape[0],
    )


def model_garden_weights(variables: dict, path: Path) -> tuple[dict, int]:
    """Canonical weights and head count from Model Garden variable names (TF Hub encoders)."""

    def get(name):
        if name not in variables:
            raise SourceError(
                f"SavedModel {path} has no variable '{name}'", "edgebert reads TF Hub BERT encoders (tensorflow/bert_*)"
            )
        return np.asarray(variables[name].numpy(), np.float32)

    if "embedding_projection/kernel" in variables:
        raise SourceError(f"{path} factorises its embeddings (ALBERT-style)", "only BERT encoders are supported")
    e = EMBEDDING_NAMES
    w = {
        e["word"]: get("word_embeddings/embeddings"),
        e["position"]: get("position_embedding/embeddings"),
        e["type"]: get("type_embeddings/embeddings"),
        e["ln_g"]: get("embeddings/layer_norm/gamma"),
        e["ln_b"]: get("embeddings/layer_norm/beta"),
        POOLER_NAMES["w"]: get("pooler_transform/kernel"),
        POOLER_NAMES["b"]: get("pooler_transform/bias"),
    }
    H = w[e["word"]].shape[1]
    L = len({k.split("/")[1] for k in variables if k.startswith("transformer/layer_")})
    heads = None
    for i in range(L):
        n, p = layer_names(i), f"transformer/layer_{i}/"
        for key, mg in [("q", "query"), ("k", "key"), ("v", "value")]:
            kern = get(p + f"self_attention/{mg}/kernel")  # [H, heads, head_size]
            heads = kern.shape[1]
            w[n[key + "_w"]] = kern.reshape(H, -1)
            w[n[key + "_b"]] = get(p + f"self_attention/{mg}/bias").reshape(-1)
        w[n["o_w"]] = get(p + "self_attention/attention_output/kernel").reshape(-1, H)
        w[n["o_b"]] = get(p + "self_attention/attention_output/bias")
        for key, mg in [("ln1", "self_attention_layer_norm"), ("ln2", "output_layer_norm")]:
            w[n[key + "_g"]], w[n[key + "_b"]] = get(p + mg + "/gamma"), get(p + mg + "/beta")
        for key, mg in [("i", "intermediate"), ("out", "output")]:
            w[n[key + "_w"]], w[n[key + "_b"]] = get(p + mg + "/kernel"), get(p + mg + "/bias")
    return w, heads or 1


def load(path: Path) -> SourceModel:
    own = path / "assets" / EDGEBERT_CONFIG
    if own.exists():  # an edgebert reference: weights are stored under canonical names
        return _load_reference(path, BertConfig.from_json(own.read_text()))
    obj = load_saved_model(path)
    if not callable(obj):
        raise SourceError(
            f"SavedModel {path} is not callable",
            "it needs the TF Hub encoder interface: input_word_ids, input_mask, input_type_ids",
        )
    sig = obj.signatures.get("serving_default")
    if sig is not None:
        names = set(sig.structured_input_signature[1])
        want = set(INPUT_NAMES)
        if not want <= names:
            raise SourceError(
                f"SavedModel {path} takes {sorted(names)}, not the TF Hub encoder inputs {sorted(want)}",
                "pass a BERT encoder, not a preprocessing or classifier model",
            )
    weights, heads = model_garden_weights(variables_by_name(obj), path)
    cfg = config_recovery.identify(
        config_from_shapes(weights, heads), weights, lambda *a: run_encoder(obj, *a), where=str(path)
    )
    vocab = asset_path(obj, "vocab_file") or path / "assets" / "vocab.txt"
    if hasattr(obj, "do_lower_case"):
        lower = bool(obj.do_lower_case.numpy())
    else:
        lower = guess_lower_case(vocab)
    return SourceModel(KIND, path, cfg, weights, vocab, lower, saved_model=path)


_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def _load_reference(path: Path, cfg: BertConfig) -> SourceModel:
    """Reads an edgebert reference's variables straight from its checkpoint.

    Restoring the whole SavedModel (functions and all) keeps a second copy of every weight
    in TensorFlow; the checkpoint reader hands each tensor over once (BERT-base: 0.5 GB less).
    The module stores its weights in a dict attribute ``weights`` keyed by canonical name.
    """
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
    except Exception as e:  # NotFoundError, DataLossError...: the variables are missing or damaged
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise SourceError(
            f"cannot read the variables of the reference SavedModel {path}: {first}",
            "delete it and export again (it is rebuilt from the source)",
        ) from None
    weights = {}
    for key in reader.get_variable_to_shape_map():
        if key.startswith("weights/") and key.endswith(_VALUE):
            name = _unescape(key[len("weights/") : -len(_VALUE)])
            weights[name] = np.asarray(reader.get_tensor(key), np.float32)
    lower = bool(reader.get_tensor("do_lower_case" + _VALUE))
    return SourceModel(KIND, path, cfg, weights, path / "assets" / "vocab.txt", lower, saved_model=path)


def _unescape(edge: str) -> str:
    """An object-graph edge name as the checkpoint spells it ("/" is ".S", "." is "..")."""
    out, i = [], 0
    while i < len(edge):
        if edge[i] == "." and i + 1 < len(edge):
            out.append({"S": "/", ".": "."}.get(edge[i + 1], edge[i : i + 2]))
            i += 2
        else:
            out.append(edge[i])
            i += 1
    return "".join(out)


def asset_path(obj, attr: str) -> Path | None:
    asset = getattr(obj, attr, None)
    if asset is None:
        return None
    p = Path(asset.asset_path.numpy().decode())
    return p if p.exists() else None
