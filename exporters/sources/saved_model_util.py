"""Loading SavedModels with errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

from edgebert.errors import SourceError


def load_saved_model(path: Path, tags=None):
    import tensorflow as tf

    try:
        return tf.saved_model.load(str(path), tags=tags)
    except Exception as e:  # TF raises many types here; all mean "cannot load it"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise SourceError(
            f"cannot load the SavedModel in {path}: {first}",
            "the model files are corrupt or incomplete; download them again",
        ) from None


def variables_by_name(obj) -> dict:
    # A restored object without variables has no ``variables`` attribute at all.
    return {v.name.split(":")[0]: v for v in getattr(obj, "variables", [])}
