"""Every supported source format, read into one ``SourceModel``.

``load_source(spec)`` accepts a catalog handle (downloaded into the cache), or a local
directory of any format below; the first reader whose ``matches`` is true reads it.
"""

from __future__ import annotations

from pathlib import Path

from edgebert.errors import SourceError
from edgebert.exporters.sources import classifier, hf, tf1_checkpoint, tf1_hub, tf2_saved_model
from edgebert.exporters.sources.resolve import resolve_source
from edgebert.model.source_model import SourceModel

# Order matters: a TF1 Hub module also has a saved_model.pb, and a fine-tuned classifier
# is a TF2 SavedModel that takes text (or token ids with one output).
READERS = (tf1_hub, classifier, tf2_saved_model, tf1_checkpoint, hf)


def detect(path: Path):
    for reader in READERS:
        if reader.matches(path):
            return reader
    return None


def load_source(spec: str | Path) -> SourceModel:
    """Reads a catalog handle or a local model directory."""
    path = resolve_source(spec)
    reader = detect(path)
    if reader is None:
        raise SourceError(
            f"{path} is not a model edgebert can read",
            "expected a TF2 SavedModel (saved_model.pb: a TF Hub encoder or a fine-tuned classifier), a TF1 Hub module (tfhub_module.pb), a "
            "google-research checkpoint (bert_config.json + bert_model.ckpt.*) or a Hugging Face "
            "directory (config.json + model.safetensors + vocab.txt)",
        )
    src = reader.load(path)
    src.validate()
    return src


__all__ = ["SourceModel", "detect", "load_source", "READERS"]
