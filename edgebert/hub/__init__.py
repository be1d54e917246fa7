"""Where models come from: the catalog of Google's BERT collection, verified and resumable
downloads over HTTP, archive unpacking, and the embedded default model. Export side only: the
runtime never imports it (no ``ssl``/HTTP code in a device process)."""
