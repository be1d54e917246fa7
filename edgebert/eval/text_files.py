"""Reading the text files users pass: sentences, labelled sentences, label names.

One reader for every command (``export --calibration``, ``verify --texts``, ``android
--train``, ``finetune --train``), so a file gets the same answer everywhere: a missing,
empty or non-UTF-8 file is a one-line error naming it and the fix. Formats:

- one sentence a line;
- ``id<TAB>score<TAB>text`` (the sentiment corpus in ``tests/data/sentiment``): the label
  is the score's sign, scores within ``NEUTRAL_BAND`` of 0 are dropped, a header is skipped;
- ``label<TAB>text`` (labelled sentences for a classifier).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgebert.errors import EdgebertError

NEUTRAL_BAND = 0.5  # tests/data/sentiment/README: binary labels drop |score| < 0.5
SENTIMENT_LABELS = ["negative", "positive"]


def is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_lines(path: str | Path, what: str, fix: str) -> list[str]:
    """The non-empty lines of ``path`` (a ``what`` file), or a one-line error with ``fix``."""
    p = Path(path)
    if not p.is_file():
        raise EdgebertError(f"{what} {p} not found", fix)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise EdgebertError(
            f"{what} {p} is not UTF-8 text (byte {e.start}: {e.object[e.start : e.start + 1]!r})",
            "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8",
        ) from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise EdgebertError(f"{what} {p} is empty", fix)
    return lines


def _scored(lines: list[str]) -> tuple[list[str], list[int]] | None:
    """Texts and labels of the ``id<TAB>score<TAB>text`` format, or None for other lines."""
    rows = [ln.split("\t", 2) for ln in lines]
    if len(rows[0]) == 3 and not is_number(rows[0][1]):
        rows = rows[1:]  # a header (id, sentiment, text)
    if not rows or not all(len(r) == 3 and is_number(r[1]) for r in rows):
        return None
    scored = [(float(r[1]), r[2]) for r in rows if abs(float(r[1])) >= NEUTRAL_BAND and r[2].strip()]
    return [t for _, t in scored], [int(s > 0) for s, _ in scored]


def read_sentences(path: str | Path, what: str = "texts file") -> list[str]:
    """Sentences, one a line or the text column of the sentiment format (stripped)."""
    lines = read_lines(path, what, "pass a text file with one sentence a line")
    if len(lines) > 1 and _scored(lines[1:]) is not None and _scored(lines[:1]) is None:
        lines = lines[1:]  # the sentiment format's header
    out = []
    for line in lines:
        parts = line.split("\t")
        sentence = parts[2] if len(parts) >= 3 and is_number(parts[1]) else line
        if sentence.strip():
            out.append(sentence.strip())
    return out


def read_texts(path: Path, labels_path: Path | None = None) -> tuple[list[str], list[int] | None]:
    """Sentences and, where the file has scores (or ``labels_path`` names them), labels."""
    lines = read_lines(path, "texts file", "pass one sentence a line, or id<TAB>score<TAB>text")
    scored = _scored(lines)
    texts, labels = scored if scored is not None else (lines, None)
    if labels_path is not None:
        raw = [ln.strip() for ln in read_lines(labels_path, "labels file", "one label a line")]
        if len(raw) != len(texts):
            raise EdgebertError(f"{labels_path} has {len(raw)} labels for {len(texts)} texts", "one label a line")
        names = sorted(set(raw))
        labels = [names.index(x) for x in raw]
    return texts, labels


def read_labelled(path: Path) -> tuple[list[str], list[int], list[str]]:
    """``label<TAB>text`` lines, or the sentiment format (sign of the score): (texts, label ids, names)."""
    lines = read_lines(path, "training file", "pass label<TAB>text lines")
    if all(ln.count("\t") == 1 for ln in lines):
        pairs = [ln.split("\t") for ln in lines]
        names = sorted({p[0].strip() for p in pairs})
        return [p[1] for p in pairs], [names.index(p[0].strip()) for p in pairs], names
    scored = _scored(lines)
    if scored is None:
        raise EdgebertError(f"{path} has no labels", "use label<TAB>text lines, or id<TAB>score<TAB>text")
    return scored[0], scored[1], list(SENTIMENT_LABELS)


def label_warnings(labels: list[int], names: list[str], path: Path | str) -> list[str]:
    """What a person training on these labels should know: a class under 10% of the file, or
    the file sorted by label (then any head-of-file subset or split sees one class)."""
    counts = Counter(labels)
    out = []
    if len(counts) < len(names):
        missing = [n for i, n in enumerate(names) if i not in counts]
        out.append(f"{path} has no sentences labelled {', '.join(missing)}")
    total = len(labels)
    if len(counts) > 1 and min(counts.values()) < 0.1 * total:
        out.append(
            f"{path} is imbalanced: "
            + " to ".join(f"{names[i]} {n:,}" for i, n in sorted(counts.items()))
            + " (a model can score well by always answering the majority): balance or subsample it"
        )
    changes = sum(1 for a, b in zip(labels, labels[1:]) if a != b)
    if len(counts) > 1 and changes == len(counts) - 1 and total >= 20:
        out.append(f"{path} is sorted by label (each class in one block): shuffle it before taking a subset")
    return out
