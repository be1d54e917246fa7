"""google-research/bert checkpoints (``bert_config.json``, ``bert_model.ckpt.*``, ``vocab.txt``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebert.errors import SourceError
from edgebert.exporters.sources.base import guess_lower_case, require_files
from edgebert.model.config import BertConfig, expected_shapes
from edgebert.model.source_model import SourceModel

KIND = "tf1_checkpoint"
PREFIX = "bert_model.ckpt"


def matches(path: Path) -> bool:
    return (path / "bert_config.json").exists() and (path / f"{PREFIX}.index").exists()


def load(path: Path) -> SourceModel:
    import tensorflow as tf

    require_files(path, ["bert_config.json", f"{PREFIX}.index", "vocab.txt"], "BERT checkpoint directory")
    if not list(path.glob(f"{PREFIX}.data-*")):
        raise SourceError(
            f"{path} has {PREFIX}.index but no {PREFIX}.data-* file",
            "copy the complete checkpoint (index and data files)",
        )
    try:
        cfg = BertConfig.from_google_json(path / "bert_config.json")
    except (KeyError, ValueError) as e:
        raise SourceError(f"{path / 'bert_config.json'} is not a usable BERT config ({e})", "check the file") from None
    try:
        reader = tf.train.load_checkpoint(str(path / PREFIX))
        weights = {}
        available = reader.get_variable_to_shape_map()
        for name in expected_shapes(cfg):
            full = "bert/" + name
            if full not in available:
                raise SourceError(
                    f"checkpoint {path / PREFIX} has no variable '{full}'", "is this a google-research/bert checkpoint?"
                )
            weights[name] = np.asarray(reader.get_tensor(full), np.float32)
    except (tf.errors.OpError, ValueError, IndexError) as e:  # IndexError: short data file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SourceError(
            f"checkpoint {path / PREFIX} is corrupt or truncated ({first})", "download the checkpoint again"
        ) from None
    return SourceModel(KIND, path, cfg, weights, path / "vocab.txt", _lower_case(path))


def _lower_case(path: Path) -> bool:
    # google-research names its checkpoints (un)cased_L-..; trust the name, then the vocab.
    name = path.resolve().name.lower()
    if "uncased" in name:
        return True
    if "cased" in name:
        return False
    return guess_lower_case(path / "vocab.txt")
