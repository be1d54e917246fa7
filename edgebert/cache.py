"""Where edgebert keeps what it builds or fetches once (downloads, packed weights, references).

Kept apart from ``edgebert.hub.download`` so that the runtime, which only needs the path, does not
import the HTTP and archive code (and ``ssl`` with it): about 7 MB of a device process's RSS.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root: ``$EDGEBERT_CACHE`` or ``~/.cache/edgebert``.

    Returns:
        The directory (not created here).
    """
    root = os.environ.get("EDGEBERT_CACHE") or os.path.join(Path.home(), ".cache", "edgebert")
    return Path(root)
