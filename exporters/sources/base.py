"""Helpers the source readers share: files a format needs, and casing from the vocab."""

from __future__ import annotations

from pathlib import Path

from edgebert.errors import SourceError
from edgebert.model.source_model import read_vocab


def guess_lower_case(vocab_file: Path) -> bool:
    """A vocab with upper-case word pieces belongs to a cased model (as in Google's checks)."""
    for tok in read_vocab(vocab_file):
        t = tok[2:] if tok.startswith("##") else tok
        if t.startswith("[") and t.endswith("]"):
            continue
        if t != t.lower():
            return False
    return True


def require_files(path: Path, names: list[str], kind: str) -> None:
    missing = [n for n in names if not (path / n).exists()]
    if missing:
        raise SourceError(
            f"{path} looks like a {kind} but lacks {', '.join(missing)}", "copy the complete model directory"
        )
