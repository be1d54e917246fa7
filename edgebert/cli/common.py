"""What the commands share: the export side's imports, the SOURCE argument, length flags."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from edgebert.errors import EdgebertError


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF raises real errors; its logs are noise here
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def missing_extra(e: ImportError, purpose: str, extras: str) -> EdgebertError:
    return EdgebertError(
        f"{purpose} needs the {extras} extra ({e.name} is missing)", f"pip install 'edgebert[{extras}]'"
    )


@contextlib.contextmanager
def export_side(purpose: str, extras: str = "export") -> Iterator[None]:
    """Imports of the export side (TensorFlow's logs quieted first); a missing extra becomes an
    error that names the one to install."""
    quiet_tensorflow()
    try:
        yield
    except ImportError as e:
        raise missing_extra(e, purpose, extras) from None


def source_and_label(args: argparse.Namespace) -> tuple[str, str]:
    """The SOURCE argument, or the embedded default model, and how to name it."""
    from edgebert.hub import default_model

    if args.source:
        return args.source, args.source
    return str(default_model.model_dir()), f"{default_model.NAME} (embedded default)"


def seq_lengths(text: str) -> tuple[int, ...]:
    """``--seq-len 16,32,64``: each length checked as one ``--seq-len`` is."""
    return tuple(positive_int(x.strip(), "--seq-len") for x in text.split(",") if x.strip())


def positive_int(text: str, flag: str, least: int = 3) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < least:
        raise EdgebertError(
            f"{flag} must be an integer >= {least} or 'dynamic', got '{text}'", f"e.g. {flag} {128 if least > 1 else 1}"
        )
    return value
