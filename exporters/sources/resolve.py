"""SOURCE strings to local directories: catalog handles are downloaded into the cache."""

from __future__ import annotations

from pathlib import Path

from edgebert.errors import SourceError


def resolve_source(spec: str | Path) -> Path:
    """The local model directory for ``spec``.

    ``spec`` is a directory, a catalog handle (TF Hub or Kaggle Models, with or without its
    URL prefix) or a model archive downloaded by hand (``.tar.gz``/``.tgz``/``.tar``), which
    is unpacked into the cache keyed by its sha256.
    """
    from edgebert.hub import archive, catalog, download

    path = Path(spec).expanduser()
    if not path.exists() and catalog.is_handle(str(spec)):
        entry = catalog.lookup(str(spec))
        path = download.download_model(entry.handle, entry.url, sha256=entry.sha256, manual=entry.kaggle_url)
    if archive.is_archive(path):
        path = download.unpack_archive(path)
    if not path.exists():
        raise SourceError(
            f"model source '{spec}' not found",
            "pass a model directory, a model archive (.tar.gz) or a catalog handle (see `edgebert models`)",
        )
    if not path.is_dir():
        raise SourceError(
            f"model source '{spec}' is a file, not a model directory or archive",
            "pass the directory that holds the model files, or its .tar.gz",
        )
    return path
