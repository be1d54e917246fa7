"""Calibration text: a user's file (one sentence a line, or the ``id<TAB>score<TAB>text``
sentiment format) or the default corpus shipped with edgebert."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edgebert.errors import EdgebertError

DEFAULT_CORPUS = "data/calibration_en.txt"


def read_texts(path: str | Path | None = None) -> list[str]:
    """Sentences from ``path`` (or the default corpus), empty lines dropped."""
    if path is None:
        text = resources.files("edgebert.quantize").joinpath(DEFAULT_CORPUS).read_text(encoding="utf-8")
        where = "the default calibration corpus"
    else:
        p = Path(path)
        if not p.is_file():
            raise EdgebertError(f"calibration file {p} not found", "pass a text file with one sentence a line")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise EdgebertError(f"calibration file {p} is not UTF-8 text", "convert it to UTF-8") from None
        where = str(p)
    out = []
    for line in text.splitlines():
        parts = line.split("\t")
        # The sentiment format: id, score, text.
        sentence = parts[2] if len(parts) >= 3 and is_number(parts[1]) else line
        if sentence.strip():
            out.append(sentence.strip())
    if len(out) < 8:
        raise EdgebertError(f"{where} has {len(out)} sentences", "calibration needs at least 8 (hundreds is better)")
    return out


def split(texts: list[str], held_out: int = 64) -> tuple[list[str], list[str]]:
    """(calibration, held-out for the export-time accuracy gate): disjoint, deterministic."""
    held_out = min(held_out, len(texts) // 4)
    return texts[held_out:], texts[:held_out]


def is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
