"""What every source reader returns and every later stage takes: one set of canonical BERT
weights plus vocab and casing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgebert.errors import SourceError
from edgebert.model.config import BertConfig, check_weights


@dataclasses.dataclass
class SourceModel:
    """A BERT read from any supported format.

    Attributes:
      kind: ``hf``, ``tf1_checkpoint``, ``tf1_hub_module`` or ``tf2_saved_model``.
      path: the directory it was read from.
      config: the architecture, including the activation the checkpoint was trained with.
      weights: canonical name -> float32 array (see ``bert_config.expected_shapes``).
      vocab_file: the WordPiece vocabulary.
      do_lower_case: whether the model's preprocessing lower-cases (and strips accents).
      saved_model: set when the source already is a TF Hub encoder SavedModel, which is
        then the reference itself.
      head: a fine-tuned classifier's dense head (``sources.classifier.ClassifierHead``).
    """

    kind: str
    path: Path
    config: BertConfig
    weights: dict[str, np.ndarray]
    vocab_file: Path
    do_lower_case: bool
    saved_model: Path | None = None
    head: object | None = None

    def validate(self) -> None:
        try:
            check_weights(self.config, self.weights, str(self.path))
        except ValueError as e:
            raise SourceError(str(e), "the checkpoint does not match its config") from None
        for name, w in self.weights.items():
            if not np.all(np.isfinite(w)):
                raise SourceError(f"{self.path}: weight '{name}' holds NaN or Inf", "the checkpoint is corrupt")
        vocab = read_vocab(self.vocab_file)
        if len(vocab) != self.config.vocab_size:
            raise SourceError(
                f"{self.vocab_file} has {len(vocab)} tokens but the model has {self.config.vocab_size} word embeddings",
                "use the vocab.txt that came with the model",
            )


def read_vocab(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SourceError(f"vocab file {path} not found", "the model directory needs its vocab.txt") from None
    except UnicodeDecodeError:
        raise SourceError(f"vocab file {path} is not UTF-8 text", "use the model's own vocab.txt") from None
