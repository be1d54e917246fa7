"""Writes the reference: an fp32 SavedModel with the TF Hub BERT encoder interface.

Every export is measured against it. A source that already is a TF Hub encoder SavedModel
is its own reference; every other source is written out through ``BertEncoderModule`` and
then checked against the source's own computation before it is accepted.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import tempfile
from pathlib import Path

from edgebert.errors import EdgebertError
from edgebert.eval.metrics import FLOAT_TOLERANCE
from edgebert.exporters.sources import config_recovery, tf1_hub
from edgebert.exporters.sources.tf2_saved_model import EDGEBERT_CONFIG, run_encoder
from edgebert.files import atomic_write_bytes, replace_dir, tree_sha256
from edgebert.model import numpy_bert
from edgebert.model.config import BertConfig
from edgebert.model.source_model import SourceModel

# Raised whenever ``BertEncoderModule`` or ``save_reference`` write a different SavedModel: a
# cached reference written by another format version is rebuilt, not reused.
REFERENCE_FORMAT = 1


@dataclasses.dataclass
class Reference:
    path: Path
    config: BertConfig
    do_lower_case: bool
    vocab_file: Path
    sha256: str
    source_kind: str
    max_abs_vs_source: float | None  # None when the source is the reference itself
    model: object | None = None  # the reference as loaded to verify it, when it was written


def _source_outputs(src: SourceModel, inputs) -> dict:
    """The source's own computation: its graph where it has one, else numpy on its weights."""
    if src.kind == tf1_hub.KIND:
        return tf1_hub.run_tokens(tf1_hub.load_module(src.path), *inputs)
    return numpy_bert.forward(src.config, src.weights, *inputs)


def save_reference(src: SourceModel, out_dir: Path, trainable: bool = False) -> Path:
    """Writes ``src`` as an edgebert reference SavedModel at ``out_dir``, atomically.

    It has the TF Hub encoder interface, so ``hub.KerasLayer(out_dir, trainable=trainable)``
    loads it (``edgebert finetune`` writes a trainable one).
    """
    import tensorflow as tf

    from edgebert.exporters.convert.encoder_graph import INPUT_NAMES, BertEncoderModule, flat_outputs

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-partial-"))
    try:
        extras = staging / "extras"
        extras.mkdir()
        shutil.copyfile(src.vocab_file, extras / "vocab.txt")
        (extras / EDGEBERT_CONFIG).write_text(src.config.to_json())
        module = BertEncoderModule(src.config, src.weights, trainable=trainable)
        module.vocab_file = tf.saved_model.Asset(str(extras / "vocab.txt"))
        module.edgebert_config = tf.saved_model.Asset(str(extras / EDGEBERT_CONFIG))
        module.do_lower_case = tf.Variable(src.do_lower_case, trainable=False, name="do_lower_case")
        spec = {n: tf.TensorSpec([None, None], tf.int32, name=n) for n in INPUT_NAMES}
        serving = tf.function(
            lambda **kw: flat_outputs(module.encode(kw["input_word_ids"], kw["input_mask"], kw["input_type_ids"])),
            input_signature=None,
        )
        concrete = serving.get_concrete_function(**spec)
        root = module
        if trainable:
            # TF Hub's reusable-SavedModel API: hub.KerasLayer trains the variables listed in
            # a saved ``trainable_variables`` attribute, which a tf.Module only has as a property.
            root = tf.__internal__.tracking.AutoTrackable()
            root.encoder, root.weights = module, module.weights
            root.vocab_file, root.edgebert_config = module.vocab_file, module.edgebert_config
            root.do_lower_case = module.do_lower_case
            root.variables = list(module.weights.values()) + [module.do_lower_case]
            root.trainable_variables = [v for v in module.weights.values() if v.trainable]
            root.__call__ = module.__call__
        saved = staging / "saved_model"
        tf.saved_model.save(root, str(saved), signatures={"serving_default": concrete})
        replace_dir(saved, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def build_reference(src: SourceModel, out_dir: Path, release: bool = False) -> Reference:
    """Returns the reference for ``src``, writing and verifying it where needed.

    With ``release``, ``src.weights`` is emptied once the reference is written (the worker then
    holds the weights once, in the loaded reference, instead of twice); ``Reference.model`` is
    the loaded reference, for the caller to run.
    """
    from edgebert.exporters.sources.saved_model_util import load_saved_model

    if src.saved_model is not None:
        return Reference(
            src.saved_model, src.config, src.do_lower_case, src.vocab_file, tree_sha256(src.saved_model), src.kind, None
        )
    cached = cached_reference(src, out_dir)
    if cached is not None:
        if release:
            src.weights.clear()
        return cached
    inputs = config_recovery.probe_inputs(src.config)
    expected = _source_outputs(src, inputs)  # before writing: the source's own computation
    path = save_reference(src, out_dir)
    if release:
        src.weights.clear()
    gc.collect()
    model = load_saved_model(path)
    got = run_encoder(model, *inputs)
    max_abs = config_recovery.output_max_abs(got, expected, inputs[1])
    if max_abs > FLOAT_TOLERANCE:
        shutil.rmtree(path, ignore_errors=True)
        raise EdgebertError(
            f"the reference written from {src.path} differs from the source by "
            f"max-abs {max_abs:.3g} (> {FLOAT_TOLERANCE})",
            "please report this model",
        )
    sha = tree_sha256(path)
    atomic_write_bytes(
        _record(path), json.dumps({"format": REFERENCE_FORMAT, "sha256": sha, "max_abs_vs_source": max_abs}).encode()
    )
    return Reference(path, src.config, src.do_lower_case, path / "assets" / "vocab.txt", sha, src.kind, max_abs, model)


def _record(reference_dir: Path) -> Path:
    """The note beside a written reference that it was checked against its source (kept
    outside the SavedModel, whose digest it holds)."""
    return reference_dir.with_name(f"{reference_dir.name}.checked.json")


def cached_reference(src: SourceModel, out_dir: Path) -> Reference | None:
    """The reference written and checked earlier for this source, or None.

    ``out_dir`` is named by the source's content (``export.reference_dir_for``), so only the
    SavedModel itself can have changed since: its digest must still be the one recorded when
    it passed the check against the source. Rewriting it costs a trace, a save, a reload and
    the check (the default model's import step: 10 s written, 6 s reused, 2-core AVX512 Xeon).
    """
    out_dir, record = Path(out_dir), _record(Path(out_dir))
    if not (out_dir / "saved_model.pb").is_file() or not record.is_file():
        return None
    try:
        note = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if note.get("format") != REFERENCE_FORMAT:
        return None
    sha = tree_sha256(out_dir)
    if sha != note.get("sha256"):
        return None  # changed or damaged since it was checked: write it again
    return Reference(
        out_dir,
        src.config,
        src.do_lower_case,
        out_dir / "assets" / "vocab.txt",
        sha,
        src.kind,
        note["max_abs_vs_source"],
    )
