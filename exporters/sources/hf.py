"""Hugging Face BERT-architecture directories (``config.json``, ``model.safetensors``, ``vocab.txt``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgebert.errors import SourceError
from edgebert.exporters.sources.base import guess_lower_case, require_files
from edgebert.model.config import EMBEDDING_NAMES, POOLER_NAMES, BertConfig, layer_names
from edgebert.model.source_model import SourceModel

KIND = "hf"


def matches(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "model.safetensors").exists()


def _hf_names(cfg: BertConfig) -> dict[str, tuple[str, bool]]:
    """canonical name -> (HF name without ``bert.`` prefix, transpose?)."""
    e = EMBEDDING_NAMES
    m = {
        e["word"]: ("embeddings.word_embeddings.weight", False),
        e["position"]: ("embeddings.position_embeddings.weight", False),
        e["type"]: ("embeddings.token_type_embeddings.weight", False),
        e["ln_g"]: ("embeddings.LayerNorm.weight", False),
        e["ln_b"]: ("embeddings.LayerNorm.bias", False),
        POOLER_NAMES["w"]: ("pooler.dense.weight", True),
        POOLER_NAMES["b"]: ("pooler.dense.bias", False),
    }
    for i in range(cfg.num_layers):
        n, p = layer_names(i), f"encoder.layer.{i}."
        for key, hf in [
            ("q", "attention.self.query"),
            ("k", "attention.self.key"),
            ("v", "attention.self.value"),
            ("o", "attention.output.dense"),
            ("i", "intermediate.dense"),
            ("out", "output.dense"),
        ]:
            m[n[key + "_w"]] = (p + hf + ".weight", True)  # torch Linear stores [out, in]
            m[n[key + "_b"]] = (p + hf + ".bias", False)
        for key, hf in [("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")]:
            m[n[key + "_g"]] = (p + hf + ".weight", False)
            m[n[key + "_b"]] = (p + hf + ".bias", False)
    return m


def load(path: Path) -> SourceModel:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    require_files(path, ["config.json", "model.safetensors", "vocab.txt"], "Hugging Face BERT directory")
    try:
        raw = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise SourceError(
            f"{path / 'config.json'} is not valid JSON ({e})", "restore the model's config.json"
        ) from None
    if raw.get("model_type", "bert") != "bert":
        raise SourceError(
            f"{path} is a '{raw.get('model_type')}' model, not BERT", "edgebert exports BERT-architecture models"
        )
    try:
        cfg = BertConfig.from_hf_json(path / "config.json")
    except (KeyError, ValueError) as e:
        raise SourceError(f"{path / 'config.json'} is not a usable BERT config ({e})", "check the file") from None
    try:
        tensors = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as e:
        raise SourceError(
            f"{path / 'model.safetensors'} is corrupt or truncated ({e})", "download the model again"
        ) from None
    # BertModel checkpoints have no prefix, BertFor* checkpoints prefix "bert.".
    prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""
    weights = {}
    for canon, (name, transpose) in _hf_names(cfg).items():
        t = tensors.get(prefix + name)
        if t is None and name.endswith("LayerNorm.weight"):
            t = tensors.get(prefix + name.replace(".weight", ".gamma"))
        if t is None and name.endswith("LayerNorm.bias"):
            t = tensors.get(prefix + name.replace(".bias", ".beta"))
        if t is None:
            raise SourceError(
                f"{path / 'model.safetensors'} has no tensor '{prefix + name}'",
                "edgebert needs the full BertModel weights, pooler included",
            )
        t = np.asarray(t, np.float32)
        weights[canon] = np.ascontiguousarray(t.T) if transpose else t
    lower = None
    tok_cfg = path / "tokenizer_config.json"
    if tok_cfg.exists():
        lower = json.loads(tok_cfg.read_text()).get("do_lower_case")
    if lower is None:
        lower = guess_lower_case(path / "vocab.txt")
    return SourceModel(KIND, path, cfg, weights, path / "vocab.txt", bool(lower))
