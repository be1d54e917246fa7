"""TFLite Metadata for BERT text models, as MediaPipe Tasks and the TFLite Task Library read it.

Written here rather than with MediaPipe's ``metadata_writers``: mediapipe 1.2.3's wheel lacks
``_pywrap_metadata_version``, so its writer cannot be imported (shared NOTES.md). The
flatbuffer schemas come from the same wheel (generated code, no native part). What is
written is what ``MetadataPopulator`` writes: a ``TFLITE_METADATA`` buffer in the model and
the associated files (vocab, labels) appended as a zip archive.
"""

from __future__ import annotations

import io
import zipfile

from edgebert.errors import EdgebertError

METADATA_FIELD = "TFLITE_METADATA"
TFLITE_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.1.0"  # BertTokenizerOptions appeared in metadata schema 1.1.0
# The model's input names -> the metadata names MediaPipe / Task Library look for.
BERT_INPUTS = {"input_word_ids": "ids", "input_mask": "mask", "input_type_ids": "segment_ids"}
INPUT_DESCRIPTIONS = {
    "ids": "Tokenized ids of the input text.",
    "mask": "Mask with 1 for real tokens and 0 for padding tokens.",
    "segment_ids": "0 for the first sequence, 1 for the second sequence if exists.",
}


def _schemas():
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as md
        from mediapipe.tasks.metadata import schema_py_generated as tfl
    except ImportError:
        raise EdgebertError(
            "writing Android assets needs mediapipe (for the TFLite Metadata schema)", "pip install 'edgebert[android]'"
        ) from None
    return md, tfl


def model_inputs(model_buf: bytes) -> list[tuple[str, int]]:
    """(name, TensorType) of the main subgraph's inputs, in order."""
    _, tfl = _schemas()
    model = tfl.Model.GetRootAsModel(model_buf, 0)
    sg = model.Subgraphs(0)
    return [
        (sg.Tensors(sg.Inputs(i)).Name().decode(), sg.Tensors(sg.Inputs(i)).Type()) for i in range(sg.InputsLength())
    ]


def bert_input_names(model_buf: bytes) -> list[str]:
    """Metadata names for the model's inputs in their order; refuses what MediaPipe cannot feed."""
    _, tfl = _schemas()
    names = []
    for name, ttype in model_inputs(model_buf):
        key = next((k for k in BERT_INPUTS if k in name), None)
        if key is None:
            raise EdgebertError(
                f"model input {name!r} is not one of {', '.join(BERT_INPUTS)}",
                "export the model with edgebert (three int32 BERT inputs)",
            )
        if ttype != tfl.TensorType.INT32:
            raise EdgebertError(
                f"model input {name!r} is not int32 (MediaPipe and the Task Library feed int32 "
                "ids, mask and segment ids)",
                "export the model with int32 inputs",
            )
        names.append(BERT_INPUTS[key])
    if sorted(names) != sorted(BERT_INPUTS.values()):
        raise EdgebertError(
            f"the model has inputs {names}; a BERT asset needs exactly ids, mask and segment_ids",
            "export the model with edgebert",
        )
    return names


def build_metadata(
    model_buf: bytes,
    *,
    name: str,
    description: str,
    task: str,
    vocab_name: str,
    labels_name: str | None,
    num_labels: int | None,
    version: str,
) -> bytes:
    """The ``ModelMetadata`` flatbuffer for an embedder or classifier."""
    import flatbuffers

    md, _ = _schemas()
    inputs = []
    for meta_name in bert_input_names(model_buf):
        t = md.TensorMetadataT()
        t.name, t.description = meta_name, INPUT_DESCRIPTIONS[meta_name]
        t.content = md.ContentT()
        t.content.contentPropertiesType = md.ContentProperties.FeatureProperties
        t.content.contentProperties = md.FeaturePropertiesT()
        inputs.append(t)
    vocab = md.AssociatedFileT()
    vocab.name, vocab.description = vocab_name, "Vocabulary file of the BERT WordPiece tokenizer."
    vocab.type = md.AssociatedFileType.VOCABULARY
    tokenizer = md.ProcessUnitT()
    tokenizer.optionsType = md.ProcessUnitOptions.BertTokenizerOptions
    tokenizer.options = md.BertTokenizerOptionsT()
    tokenizer.options.vocabFile = [vocab]

    out = md.TensorMetadataT()
    out.content = md.ContentT()
    out.content.contentPropertiesType = md.ContentProperties.FeatureProperties
    out.content.contentProperties = md.FeaturePropertiesT()
    if task == "classifier":
        out.name, out.description = "probability", f"Probabilities of the {num_labels} labels."
        labels = md.AssociatedFileT()
        labels.name, labels.description = labels_name, "Labels of the output axis, one a line."
        labels.type = md.AssociatedFileType.TENSOR_AXIS_LABELS
        out.associatedFiles = [labels]
        stats = md.StatsT()
        stats.max, stats.min = [1.0], [0.0]
        out.stats = stats
    else:
        out.name, out.description = "embedding", "Sentence embedding."

    sub = md.SubGraphMetadataT()
    sub.inputTensorMetadata, sub.outputTensorMetadata = inputs, [out]
    sub.inputProcessUnits = [tokenizer]
    model_md = md.ModelMetadataT()
    model_md.name, model_md.description, model_md.version = name, description, version
    model_md.subgraphMetadata = [sub]
    model_md.author = "edgebert"
    model_md.minParserVersion = MIN_PARSER_VERSION
    b = flatbuffers.Builder(0)
    b.Finish(model_md.Pack(b), METADATA_IDENTIFIER)
    return bytes(b.Output())


def populate(model_buf: bytes, metadata_buf: bytes, files: dict[str, bytes]) -> bytes:
    """The model with ``metadata_buf`` as its ``TFLITE_METADATA`` and ``files`` zipped behind it."""
    import flatbuffers

    _, tfl = _schemas()
    model = tfl.ModelT.InitFromObj(tfl.Model.GetRootAsModel(model_buf, 0))
    buffer = tfl.BufferT()
    buffer.data = metadata_buf
    model.buffers = list(model.buffers or []) + [buffer]
    meta = tfl.MetadataT()
    meta.name, meta.buffer = METADATA_FIELD, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() != METADATA_FIELD] + [meta]
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), TFLITE_IDENTIFIER)
    out = io.BytesIO()
    out.write(b.Output())
    with zipfile.ZipFile(out, "a") as zf:
        for fname, data in files.items():
            zf.writestr(fname, data)
    return out.getvalue()


def read_metadata(model_buf: bytes) -> dict:
    """Decodes the metadata and packed files of a ``.tflite`` (what the tests and users check)."""
    md, tfl = _schemas()
    model = tfl.Model.GetRootAsModel(model_buf, 0)
    raw = None
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        if m.Name().decode() == METADATA_FIELD:
            raw = model.Buffers(m.Buffer()).DataAsNumpy().tobytes()
    if raw is None:
        raise EdgebertError("the model has no TFLite Metadata", "write it with `edgebert android`")
    meta = md.ModelMetadataT.InitFromObj(md.ModelMetadata.GetRootAsModelMetadata(raw, 0))
    sub = meta.subgraphMetadata[0]
    units = []
    for u in sub.inputProcessUnits or []:
        if u.optionsType == md.ProcessUnitOptions.BertTokenizerOptions:
            units.append({"type": "BertTokenizer", "vocab": [f.name.decode() for f in u.options.vocabFile]})
    with zipfile.ZipFile(io.BytesIO(model_buf)) as zf:
        packed = {n: zf.read(n) for n in zf.namelist()}
    return {
        "name": meta.name.decode(),
        "version": meta.version.decode() if meta.version else None,
        "min_parser_version": meta.minParserVersion.decode(),
        "inputs": [t.name.decode() for t in sub.inputTensorMetadata],
        "outputs": [t.name.decode() for t in sub.outputTensorMetadata],
        "output_files": [f.name.decode() for t in sub.outputTensorMetadata for f in (t.associatedFiles or [])],
        "process_units": units,
        "packed_files": packed,
    }
