"""The TF Hub BERT collection, kept as data in ``data/catalog.json``."""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from importlib import resources

from edgebert.errors import EdgebertError

KAGGLE_ROOT = "https://www.kaggle.com/models/"
_PREFIXES = (
    "https://tfhub.dev/",
    "http://tfhub.dev/",
    "https://www.kaggle.com/models/",
    "https://kaggle.com/models/",
    "http://www.kaggle.com/models/",
)


@dataclasses.dataclass(frozen=True)
class CatalogEntry:
    """One published BERT encoder."""

    handle: str
    layers: int
    hidden: int
    heads: int
    intermediate: int
    casing: str  # "uncased" or "cased"
    language: str  # "en", "zh", "multi"
    vocab_size: int
    max_position: int
    type_vocab_size: int
    activation: str
    whole_word_masking: bool
    preprocess: str
    format: str  # "tf2_saved_model" or "tf1_hub_module"
    url: str
    sha256: str | None
    kaggle: str | None = None  # Kaggle Models handle: owner/model/framework/variation/version
    note: str | None = None  # why the entry is as it is, where that is not obvious

    @property
    def do_lower_case(self) -> bool:
        return self.casing == "uncased"

    @property
    def short_name(self) -> str:
        """The handle without its version, e.g. ``tensorflow/bert_en_uncased_L-12_H-768_A-12``."""
        return self.handle.rsplit("/", 1)[0]

    @property
    def kaggle_url(self) -> str | None:
        """The Kaggle Models page, where the archive can also be downloaded by hand."""
        return f"{KAGGLE_ROOT}{self.kaggle}" if self.kaggle else None


@lru_cache(maxsize=1)
def all_models() -> tuple[CatalogEntry, ...]:
    text = resources.files("edgebert").joinpath("data/catalog.json").read_text()
    return tuple(CatalogEntry(**m) for m in json.loads(text)["models"])


def _normalise(handle: str) -> str:
    for prefix in _PREFIXES:
        if handle.startswith(prefix):
            handle = handle[len(prefix) :]
    parts = handle.split("?", 1)[0].strip("/").split("/")
    # Kaggle's long form: owner/model/frameworks/F/variations/V/versions/N -> owner/model/F/V/N
    if len(parts) >= 6 and parts[2:3] == ["frameworks"] and parts[4:5] == ["variations"]:
        parts = parts[:2] + [parts[3], parts[5]] + (parts[7:8] if parts[6:7] == ["versions"] else [])
    return "/".join(parts)


def _names(m: CatalogEntry) -> tuple[str, ...]:
    """Every spelling that names ``m``; Kaggle's are compared lower-case (it is case-blind)."""
    kaggle = (m.kaggle.lower(), m.kaggle.lower().rsplit("/", 1)[0]) if m.kaggle else ()
    return (m.handle, m.short_name) + kaggle


def lookup(handle: str) -> CatalogEntry:
    """Finds a model by TF Hub handle or Kaggle Models handle, with or without version or URL prefix."""
    key = _normalise(handle)
    for m in all_models():
        if key in _names(m) or key.lower() in _names(m)[2:]:
            return m
    stem = key.rsplit("/", 1)[0]
    for m in all_models():
        if stem in _names(m) or stem.lower() in _names(m)[2:]:
            raise EdgebertError(
                f"'{handle}' is not the catalog's version of that model ({m.handle})",
                f"use `{m.handle}`: only catalog versions are known to edgebert",
            )
    raise EdgebertError(
        f"unknown model handle '{handle}'",
        "run `edgebert models` for the catalog, or pass a local model directory",
    )


def is_handle(text: str) -> bool:
    """True when ``text`` looks like a hub handle (``owner/name[/version]``, a tfhub.dev or Kaggle URL)."""
    key = _normalise(text)
    return key.split("/", 1)[0] in ("tensorflow", "google")


def filter_models(
    *,
    layers: int | None = None,
    hidden: int | None = None,
    casing: str | None = None,
    language: str | None = None,
    fmt: str | None = None,
    contains: str | None = None,
) -> list[CatalogEntry]:
    out = []
    for m in all_models():
        if layers is not None and m.layers != layers:
            continue
        if hidden is not None and m.hidden != hidden:
            continue
        if casing is not None and m.casing != casing:
            continue
        if language is not None and m.language != language:
            continue
        if fmt is not None and m.format != fmt:
            continue
        if contains is not None and contains not in m.handle:
            continue
        out.append(m)
    return out
