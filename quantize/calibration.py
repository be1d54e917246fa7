"""Calibration text: a user's file (one sentence a line, or the ``id<TAB>score<TAB>text``
sentiment format) or the default corpus shipped with edgebert."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edgebert.errors import EdgebertError
from edgebert.eval.text_files import read_sentences

DEFAULT_CORPUS = "data/calibration_en.txt"


def read_texts(path: str | Path | None = None) -> list[str]:
    """Sentences from ``path`` (or the default corpus), empty lines dropped."""
    if path is None:
        text = resources.files("edgebert.quantize").joinpath(DEFAULT_CORPUS).read_text(encoding="utf-8")
        where = "the default calibration corpus"
        out = [ln.strip() for ln in text.splitlines() if ln.strip()]
    else:
        out, where = read_sentences(path, "calibration file"), str(path)
    if len(out) < 8:
        raise EdgebertError(f"{where} has {len(out)} sentences", "calibration needs at least 8 (hundreds is better)")
    return out


def split(texts: list[str], held_out: int = 64) -> tuple[list[str], list[str]]:
    """(calibration, held-out for the export-time accuracy gate): disjoint, deterministic."""
    held_out = min(held_out, len(texts) // 4)
    return texts[held_out:], texts[:held_out]
