"""SOURCE strings to local directories: catalog handles are downloaded into the cache."""

from __future__ import annotations

from pathlib import Path

from edgebert.errors import SourceError


def resolve_source(spec: str | Path) -> Path:
    """The local model directory for ``spec`` (a directory, or a catalog handle / tfhub.dev URL)."""
    from edgebert import catalog, download

    path = Path(spec).expanduser()
    if not path.exists() and catalog.is_handle(str(spec)):
        entry = catalog.lookup(str(spec))
        path = download.download_model(entry.handle, entry.url, sha256=entry.sha256)
    if not path.exists():
        raise SourceError(f"model source '{spec}' not found",
                          "pass a model directory or a catalog handle (see `edgebert models`)")
    if not path.is_dir():
        raise SourceError(f"model source '{spec}' is a file, not a model directory",
                          "pass the directory that holds the model files")
    return path
