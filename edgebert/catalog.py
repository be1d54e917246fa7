"""The TF Hub BERT collection, kept as data in ``data/catalog.json``."""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache
from importlib import resources

from edgebert.errors import EdgebertError


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

    @property
    def do_lower_case(self) -> bool:
        return self.casing == "uncased"

    @property
    def short_name(self) -> str:
        """The handle without its version, e.g. ``tensorflow/bert_en_uncased_L-12_H-768_A-12``."""
        return self.handle.rsplit("/", 1)[0]


@lru_cache(maxsize=1)
def all_models() -> tuple[CatalogEntry, ...]:
    text = resources.files("edgebert").joinpath("data/catalog.json").read_text()
    return tuple(CatalogEntry(**m) for m in json.loads(text)["models"])


def _normalise(handle: str) -> str:
    for prefix in ("https://tfhub.dev/", "http://tfhub.dev/", "https://www.kaggle.com/models/"):
        if handle.startswith(prefix):
            handle = handle[len(prefix):]
    return handle.split("?", 1)[0].strip("/")


def lookup(handle: str) -> CatalogEntry:
    """Finds a model by handle, with or without version or ``https://tfhub.dev/`` prefix."""
    key = _normalise(handle)
    for m in all_models():
        if key in (m.handle, m.short_name):
            return m
    raise EdgebertError(
        f"unknown model handle '{handle}'",
        "run `edgebert models` for the catalog, or pass a local model directory",
    )


def is_handle(text: str) -> bool:
    """True when ``text`` looks like a hub handle (``owner/name[/version]`` or a tfhub.dev URL)."""
    key = _normalise(text)
    return key.split("/", 1)[0] in ("tensorflow", "google")


def filter_models(
    *, layers: int | None = None, hidden: int | None = None, casing: str | None = None,
    language: str | None = None, fmt: str | None = None, contains: str | None = None,
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
