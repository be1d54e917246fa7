"""``edgebert android``: an ``assets/`` folder for MediaPipe Tasks and the TFLite Task Library.

The encoder is converted with a fixed ``[1, seq]`` shape (static graph: what Android and the
GPU delegate want) and one task output (``embedding``, or a classifier's ``probability``),
TFLite Metadata with the BERT tokenizer and vocab (and labels) is written into it, and the
result is measured against the reference SavedModel before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgebert.checks import gpu as gpu_compat
from edgebert.checks import registry as static_checks
from edgebert.errors import EdgebertError
from edgebert.eval import linear_probe, metrics
from edgebert.eval.text_files import label_warnings, read_labelled
from edgebert.exporters.convert import workers
from edgebert.exporters.convert.tasks import ConvertTask, ReferenceTask
from edgebert.exporters.pipelines import android_metadata as amd
from edgebert.exporters.pipelines.export import default_labels, import_reference
from edgebert.exporters.pipelines.progress import say as _progress
from edgebert.exporters.sources import classifier
from edgebert.exporters.sources.resolve import resolve_source
from edgebert.files import replace_dir
from edgebert.model.bundle import FORMAT_VERSION, Manifest, is_bundle, read_manifest, write_manifest
from edgebert.quantize import calibration as calib
from edgebert.quantize import recipes
from edgebert.runtime.runners import check_buckets

TASKS = ("embedder", "classifier")
MAX_TASK_LIBRARY_SEQ = 512  # BertNLClassifier / MediaPipe read the length from the fixed input shape
HEAD_FORMAT = (
    "A head file is an .npz with 'kernel' [features, labels] and 'bias' [labels] (float32), and "
    "optionally 'labels' (strings), 'pooling' ('cls' or 'mean') and 'activation' ('softmax' or 'sigmoid')."
)


@dataclasses.dataclass
class AndroidRequest:
    source: str
    source_label: str
    output: Path
    task: str = "embedder"
    labels_file: Path | None = None
    head_file: Path | None = None
    train_file: Path | None = None
    int8: bool | str = False  # True / "dynamic": recipes.DEFAULT_INT8; "integer" / "a16w8": recipes.INT8_KINDS
    seq_length: int = 128
    pooling: str | None = None  # default: the head file's, else mean
    allow_accuracy_loss: bool = False
    held_out: int = 150  # decisions flip one at a time: 64 sentences are too coarse for a 99% bar


def train_head(features: np.ndarray, labels: list[int]) -> dict:
    """A logistic-regression head on frozen features (``edgebert.eval.linear_probe``): L2 and the
    reported accuracy come from a held-out 20%; the shipped head is refit on every sentence."""
    y = np.asarray(labels)
    fitted = linear_probe.select_and_fit(features, y)
    kernel, bias = linear_probe.fit(features, y, fitted["l2"])
    return {
        "kernel": kernel,
        "bias": bias,
        "l2": fitted["l2"],
        "held_out": int(len(fitted["held"])),
        "held_out_accuracy": fitted["held_out_accuracy"],
        "train_accuracy": float((linear_probe.predict(kernel, bias, features) == y).mean()),
    }


def _features(ref: dict, pooling: str) -> np.ndarray:
    return classifier.pooled_features(ref, ref["input_mask"], pooling).astype(np.float32)


def _source_of(spec: str) -> str:
    """A bundle stands for the reference it was exported from (a fine-tuned classifier's
    bundle for its SavedModel, which holds the head)."""
    p = Path(spec)
    if is_bundle(p):
        m = read_manifest(p)
        if m.head and (m.source or {}).get("path"):
            return m.source["path"]
        return m.reference["path"]
    return spec


@dataclasses.dataclass
class _Asset:
    """What the asset's steps hand on: the request, where the asset is built, the reference and
    its outputs on the held-out sentences, and the head once it is chosen."""

    req: AndroidRequest
    recipe: recipes.Recipe
    staging: Path
    work: Path  # staging's scratch folder, removed before the manifest is written
    n_steps: int
    ref: dict
    expected: dict
    head_data: dict | None = None  # the classifier's kernel, bias, activation (and labels, pooling)
    pooling: str = "mean"
    labels: list[str] | None = None
    training: dict | None = None  # how a --train head was fitted, for the manifest
    head: dict | None = None  # the head as the converter takes it

    @property
    def output_name(self) -> str:
        return "probability" if self.req.task == "classifier" else "embedding"

    @property
    def model_path(self) -> Path:
        return self.staging / "model.tflite"


def build(req: AndroidRequest) -> Manifest:
    """Writes ``req.output`` (the assets folder); returns its manifest."""
    _check_request(req)
    head_data = _read_head(req.head_file) if req.head_file else None
    train = read_labelled(Path(req.train_file)) if req.train_file else None  # its errors before any work
    if req.pooling not in (None, "cls", "mean"):
        raise EdgebertError(f"unknown pooling {req.pooling!r}", "use cls or mean")
    recipe = recipes.get(recipes.android_recipe(req.int8))
    texts = calib.read_texts(None)
    cal_texts, held_out = calib.split(texts, req.held_out)
    source_path = resolve_source(_source_of(req.source))
    out = Path(req.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    with workers.session(source_path):  # one process for a small model's steps
        try:
            asset = _import_step(req, recipe, source_path, staging, held_out)
            _choose_head(asset, head_data, train)
            _convert_step(asset, cal_texts)
            accuracy, gate, checks = _measure_step(asset, len(held_out))
            if gate and not req.allow_accuracy_loss:
                raise EdgebertError(
                    f"the asset misses its accuracy bar ({'; '.join(gate)}); nothing written",
                    "use fp32 (drop --int8), or --allow-accuracy-loss",
                )
            shutil.rmtree(asset.work)
            manifest = write_manifest(staging, Manifest.from_json(_manifest(asset, accuracy, gate, checks)))
            (staging / "README.md").write_text(
                _readme(req.task, asset.output_name, asset.labels, req.seq_length, checks["gpu_compatibility"])
            )
            replace_dir(staging, out)
            return manifest
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check_request(req: AndroidRequest) -> None:
    """The task, the length and the options that only a classifier takes."""
    if req.task not in TASKS:
        raise EdgebertError(f"unknown task {req.task!r}", f"use --task {' or --task '.join(TASKS)}")
    if not 3 <= req.seq_length <= MAX_TASK_LIBRARY_SEQ:
        raise EdgebertError(
            f"--seq-len {req.seq_length} is outside what MediaPipe and the Task Library take "
            f"(a fixed length from 3 to {MAX_TASK_LIBRARY_SEQ})",
            "use --seq-len 128",
        )
    if req.task == "embedder" and (req.head_file or req.train_file or req.labels_file):
        raise EdgebertError(
            "--head, --train and --labels are for --task classifier", "drop them, or use --task classifier"
        )


def _import_step(
    req: AndroidRequest, recipe: recipes.Recipe, source_path: Path, staging: Path, held_out: list[str]
) -> _Asset:
    """Step 1: the reference and its outputs on the held-out sentences, checked for Android."""
    work = staging / ".work"
    work.mkdir()
    n_steps = 4 if req.train_file else 3
    _progress(f"[1/{n_steps}] importing {req.source_label}")
    ref, expected = import_reference(source_path, held_out, req.seq_length, work)
    _check_source(ref, req)
    return _Asset(req, recipe, staging, work, n_steps, ref, expected)


def _choose_head(asset: _Asset, head_data: dict | None, train: tuple | None) -> None:
    """The pooling and, for a classifier, its head: ``--head``'s, one trained on ``--train``
    (step 2), or the fine-tuned source's own."""
    req = asset.req
    if req.task == "classifier" and not (head_data or req.train_file):
        head_data = _source_head(asset.ref)
    pooling = req.pooling or (head_data or {}).get("pooling") or "mean"
    if head_data and head_data.get("fine_tuned") and pooling != head_data["pooling"]:
        raise EdgebertError(
            f"the fine-tuned head reads the {head_data['pooling']} output, not --pooling {pooling}",
            f"drop --pooling (or pass --pooling {head_data['pooling']})",
        )
    asset.pooling = pooling
    if req.task != "classifier":
        asset.head = {"task": "embedder", "pooling": pooling}
        return
    trained_names = None
    if req.train_file:
        head_data, trained_names, asset.training = _train_head_step(asset, train)
    asset.head_data = head_data
    asset.labels = _labels(req, head_data, trained_names)
    np.savez(asset.work / "head.npz", kernel=head_data["kernel"], bias=head_data["bias"])
    asset.head = {
        "task": "classifier",
        "pooling": pooling,
        "npz": str(asset.work / "head.npz"),
        "activation": head_data.get("activation", "softmax"),
    }


def _source_head(ref: dict) -> dict:
    """The fine-tuned classifier's head, as MediaPipe wants it; an error if the source has none."""
    if not ref.get("head"):
        raise EdgebertError(
            "a classifier asset needs a head",
            "pass a fine-tuned classifier SavedModel (`edgebert finetune` writes one), "
            f"--train FILE (label<TAB>text) or --head FILE. {HEAD_FORMAT}",
        )
    head_data = fine_tuned_head(ref["head"])
    _progress(
        f"  head: the fine-tuned classifier's ({ref['head']['units']} unit(s), {ref['head']['activation']}"
        f" -> {head_data['activation']} over {len(head_data['labels'])} labels for MediaPipe)"
    )
    return head_data


def _train_head_step(asset: _Asset, train: tuple) -> tuple[dict, list[str], dict]:
    """Step 2: a logistic-regression head on the reference's features of the ``--train``
    sentences; returns the head, its label names and how it was fitted."""
    req, work = asset.req, asset.work
    _progress(f"[2/{asset.n_steps}] training a logistic-regression head on {req.train_file}")
    train_texts, train_y, labels = train
    for warning in label_warnings(train_y, labels, req.train_file):
        _progress(f"  warning: {warning}")
    (work / "train").mkdir()
    workers.run(
        ReferenceTask(
            source=asset.ref["reference"],
            reference_dir=asset.ref["reference"],
            texts=train_texts,
            seq_length=req.seq_length,
            outputs_npz=str(work / "train" / "train.npz"),
        ),
        work / "train",
    )
    train_ref = dict(np.load(work / "train" / "train.npz"))
    trained = train_head(_features(train_ref, asset.pooling), train_y)
    training = {
        "file": str(req.train_file),
        "sentences": len(train_texts),
        "pooling": asset.pooling,
        "train_accuracy": trained["train_accuracy"],
        "held_out_accuracy": trained["held_out_accuracy"],
        "held_out": trained["held_out"],
        "l2": trained["l2"],
    }
    _progress(
        f"  head: {len(labels)} labels, L2 {trained['l2']:g}, accuracy {trained['train_accuracy']:.3f} "
        f"(train), {trained['held_out_accuracy']:.3f} on {trained['held_out']} held-out sentences"
    )
    return {"kernel": trained["kernel"], "bias": trained["bias"], "activation": "softmax"}, labels, training


def _convert_step(asset: _Asset, cal_texts: list[str]) -> None:
    """The conversion to a fixed [1, seq] .tflite with the task's head, in a worker process, and
    the file written to the asset with its metadata, vocab and labels."""
    req, recipe = asset.req, asset.recipe
    _progress(
        f"[{asset.n_steps - 1}/{asset.n_steps}] converting to tflite [1, {req.seq_length}] with recipe {recipe.name}"
    )
    raw = asset.work / "model.tflite"
    workers.run(
        ConvertTask(
            format="tflite",
            recipe=recipe.ref,
            reference=asset.ref["reference"],
            out=str(raw),
            seq_length=req.seq_length,
            calibration=cal_texts,
            batch_size=1,
            head=asset.head,
        ),
        asset.work,
    )
    _write_model(asset, raw.read_bytes())


def _write_model(asset: _Asset, model_buf: bytes) -> None:
    """``model.tflite`` with TFLite Metadata (tokenizer, vocab and labels packed in), and the
    vocab and labels next to it as plain files."""
    req, labels = asset.req, asset.labels
    meta = amd.build_metadata(
        model_buf,
        name=f"{Path(str(req.source_label)).name} {req.task}",
        description=f"BERT {req.task} exported by edgebert ({asset.recipe.name}, "
        f"{asset.pooling} pooling, seq {req.seq_length}).",
        task=req.task,
        vocab_name="vocab.txt",
        labels_name="labels.txt" if labels else None,
        num_labels=len(labels) if labels else None,
        version=asset.recipe.name,
    )
    files = {"vocab.txt": Path(asset.ref["vocab_file"]).read_bytes()}
    if labels:
        files["labels.txt"] = ("\n".join(labels) + "\n").encode()
    asset.model_path.write_bytes(amd.populate(model_buf, meta, files))
    for name, data in files.items():
        (asset.staging / name).write_bytes(data)


def _measure_step(asset: _Asset, n_held: int) -> tuple[dict, list[str], dict]:
    """The last step: the asset against the reference, and the static file checks; returns the
    accuracy, the bar's misses and the checks by manifest key."""
    req = asset.req
    _progress(f"[{asset.n_steps}/{asset.n_steps}] measuring against the reference on {n_held} held-out sentences")
    accuracy = _measure(asset.model_path, asset.expected, asset.pooling, asset.head_data, req.task, asset.output_name)
    gate = _gate(accuracy, asset.recipe, req.task)
    _progress(f"  {accuracy_line(accuracy)}" + ("" if not gate else "  FAILS: " + "; ".join(gate)))
    checks = static_checks.run(asset.model_path, "tflite", asset.recipe.int8, lambda line: _progress(f"  {line}"))
    return accuracy, gate, checks


def build_buckets(req: AndroidRequest, lengths: tuple[int, ...]) -> dict:
    """One asset per length bucket (``req.output/seq_N/``), for apps that pick the model by text
    length: MediaPipe and the Task Library take one signature, so a multi-signature file would
    only run its first. Written whole: the folder appears once every asset passed.

    Returns ``{"buckets": [...], "assets": {N: manifest}}`` (also ``buckets.json`` in the folder).
    """
    lengths = check_buckets(lengths)
    out = Path(req.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        assets = {}
        # One worker process for the small models' builds (each is a whole import + conversion).
        with workers.warm(workers.SHARED_MAX_SOURCE_BYTES):
            for i, n in enumerate(lengths, start=1):
                _progress(f"== asset {i}/{len(lengths)}: [1, {n}]")
                assets[n] = build(dataclasses.replace(req, seq_length=n, output=staging / f"seq_{n}"))
        index = {
            "format_version": FORMAT_VERSION,
            "kind": "android-asset-buckets",
            "task": req.task,
            "buckets": list(lengths),
            "assets": {
                str(n): {
                    "dir": f"seq_{n}",
                    "bytes": m.models["tflite"].bytes,
                    "gate_passed": m.models["tflite"].gate["passed"],
                }
                for n, m in assets.items()
            },
        }
        (staging / "buckets.json").write_text(json.dumps(index, indent=1))
        (staging / "README.md").write_text(_buckets_readme(req.task, lengths))
        replace_dir(staging, out)
        return {"buckets": list(lengths), "assets": assets}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _buckets_readme(task: str, lengths: tuple[int, ...]) -> str:
    dirs = ", ".join(f"`seq_{n}/`" for n in lengths)
    cls = "TextEmbedder" if task == "embedder" else "TextClassifier"
    return f"""# {task} assets, one per sequence length

{dirs}: the same model with a fixed input length each ([1, N]; each folder has its own
`model.tflite` with metadata, `vocab.txt`, README and `edgebert.json` with the accuracy measured
at that length). MediaPipe's {cls} reads one signature, so pick the asset by text length: a
short asset costs less per call (every text is padded to N), and a text longer than N tokens
is cut to fit the fixed input. A WordPiece token count is at least the word count, so an app
can load the asset for a text's expected size, e.g. the first N >= 1.5 x its words.

On LiteRT's CompiledModel (Android, without MediaPipe, tokenizing in the app), one
`edgebert export --format tflite --seq-len {",".join(map(str, lengths))}` file holds every
length as its own static signature (`seq_N`, int32 inputs `input_word_ids`, `input_mask`,
`input_type_ids` of shape [1, N]) with the weights stored once. Pad the ids to the shortest N
that holds them and run that signature by name:

```kotlin
val sig = "seq_32"
val inputs = mapOf("input_word_ids" to ids, "input_mask" to mask, "input_type_ids" to types)  // TensorBuffers [1, 32]
val outputs = mapOf("pooled_output" to pooled, "sequence_output" to sequence)
model.run(inputs, outputs, sig)   // or model.createInputBuffers(sig) / model.run(list, list, sig)
```
"""


def fine_tuned_head(meta: dict) -> dict:
    """A fine-tuned classifier's head as MediaPipe wants it: probabilities, one per label.

    A one-unit head (``sigmoid(z)`` or the raw logit ``z``) becomes the equivalent two-class
    softmax over ``[0, z]`` (= ``[1 - sigmoid(z), sigmoid(z)]``); raw multi-class logits get
    a softmax (same top class).
    """
    with np.load(meta["npz"]) as z:
        kernel, bias = z["kernel"], z["bias"]
    activation = meta["activation"]
    if kernel.shape[1] == 1:
        kernel = np.concatenate([np.zeros_like(kernel), kernel], axis=1)
        bias = np.concatenate([np.zeros_like(bias), bias])
        activation = "softmax"
    elif activation == "none":
        activation = "softmax"
    labels = meta.get("labels") or default_labels(meta["units"])
    return {
        "kernel": kernel,
        "bias": bias,
        "activation": activation,
        "pooling": meta["pooling"],
        "labels": labels,
        "fine_tuned": True,
    }


def _check_source(ref: dict, req: AndroidRequest) -> None:
    if not ref["do_lower_case"]:
        raise EdgebertError(
            "the model is cased, but MediaPipe's BertTokenizer always lower-cases: the app would "
            "feed it wrong token ids without any error",
            "use an uncased model for Android assets",
        )
    if req.seq_length > ref["config"]["max_position"]:
        raise EdgebertError(
            f"--seq-len {req.seq_length} exceeds the model's {ref['config']['max_position']} positions",
            f"use --seq-len {ref['config']['max_position']} or less",
        )
    tokens = set(Path(ref["vocab_file"]).read_text(encoding="utf-8").splitlines())
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in tokens]
    if missing:
        raise EdgebertError(
            f"the vocab lacks {', '.join(missing)}: MediaPipe would pack inputs without them",
            "use the model's original BERT vocab",
        )


def _read_head(path: Path) -> dict:
    if not Path(path).is_file():
        raise EdgebertError(f"head file {path} not found", HEAD_FORMAT)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise EdgebertError(f"head file {path} is not a readable .npz ({e})", HEAD_FORMAT) from None
    if "kernel" not in data or "bias" not in data:
        raise EdgebertError(
            f"head file {path} lacks 'kernel' or 'bias' (it has {', '.join(data) or 'nothing'})", HEAD_FORMAT
        )
    k, b = np.asarray(data["kernel"], np.float32), np.asarray(data["bias"], np.float32)
    if k.ndim != 2 or b.shape != (k.shape[1],):
        raise EdgebertError(f"head kernel {k.shape} and bias {b.shape} do not fit", HEAD_FORMAT)
    out = {"kernel": k, "bias": b}
    for key in ("pooling", "activation"):
        if key in data:
            out[key] = str(data[key])
    if "labels" in data:
        out["labels"] = [str(x) for x in data["labels"]]
    return out


def _labels(req: AndroidRequest, head: dict, trained_names: list[str] | None) -> list[str]:
    if req.labels_file:
        p = Path(req.labels_file)
        if not p.is_file():
            raise EdgebertError(f"labels file {p} not found", "one label a line, in the head's output order")
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        names = trained_names or head.get("labels")
    width = head["kernel"].shape[1]
    if not names:
        raise EdgebertError("the classifier has no label names", "pass --labels FILE (one label a line)")
    if len(names) != width:
        raise EdgebertError(
            f"{len(names)} labels for a head with {width} outputs: MediaPipe would name the scores wrongly",
            "pass one label per head output, in order",
        )
    if len(set(names)) != len(names):
        raise EdgebertError("the labels contain duplicates", "give each output its own label")
    return names


def _measure(path: Path, expected: dict, pooling: str, head: dict | None, task: str, output: str) -> dict:
    from edgebert.runtime.runners import INPUT_NAMES, TFLiteRunner

    runner = TFLiteRunner(path, num_threads=2)
    got = np.concatenate(
        [
            runner.run({k: expected[k][i : i + 1] for k in INPUT_NAMES})[output]
            for i in range(len(expected["input_word_ids"]))
        ]
    )
    feats = _features(expected, pooling)
    if task == "embedder":  # the one comparison and gate of export and verify (edgebert.eval.metrics)
        return {"embedding": metrics.error_stats(got, feats), "n": len(got)}
    activation = head.get("activation", "softmax")
    want = classifier.scores(feats, head["kernel"], head["bias"], activation)
    return {"probability": metrics.compare_scores(got, want, activation), "n": len(got)}


def _gate(acc: dict, recipe, task: str) -> list[str]:
    if task == "embedder":
        return metrics.gate(acc, recipe.thresholds, ("embedding",))
    return metrics.gate_scores(acc["probability"], recipe.thresholds)


def accuracy_line(acc: dict) -> str:
    if "embedding" in acc:
        e = acc["embedding"]
        return (
            f"embedding vs reference: cosine mean {e['cosine']['mean']:.5f} (min {e['cosine']['min']:.5f}), "
            f"max-abs {e['max_abs']:.2e}"
        )
    p = acc["probability"]
    return f"probabilities vs reference: max-abs {p['max_abs']:.2e}, top class agreement {p['decision_agreement']:.4f}"


def _manifest(asset: _Asset, accuracy: dict, gate: list[str], checks: dict) -> dict:
    """The asset's ``edgebert.json``; ``checks``: the static file checks by manifest key
    (``static_checks.run``)."""
    from edgebert.files import file_sha256

    req, ref, labels, model_path = asset.req, asset.ref, asset.labels, asset.model_path
    return {
        "kind": "android-assets",
        "task": req.task,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": {"spec": req.source_label, "kind": ref["kind"]},
        "reference": {"path": ref["reference"], "sha256": ref["sha256"]},
        "architecture": ref["config"],
        "tokenizer": {"vocab": "vocab.txt", "do_lower_case": True, "casing": "uncased"},
        "seq_length": req.seq_length,
        "graph_form": "gpu",
        "pooling": asset.pooling,
        "labels": labels,
        "recipe": asset.recipe.to_json(),
        "head_training": asset.training,
        "models": {
            "tflite": {
                "file": "model.tflite",
                "bytes": model_path.stat().st_size,
                "sha256": file_sha256(model_path),
                "inputs": [
                    {"name": n, "dtype": "int32", "shape": [1, req.seq_length], "metadata_name": m}
                    for n, m in amd.BERT_INPUTS.items()
                ],
                "outputs": [
                    {
                        "name": asset.output_name,
                        "dtype": "float32",
                        "shape": [1, len(labels) if labels else ref["config"]["hidden_size"]],
                    }
                ],
                "accuracy": accuracy,
                "gate": {"passed": not gate, "misses": gate},
                **checks,
            }
        },
    }


def _readme(task: str, output: str, labels, seq: int, gpu: dict) -> str:
    gpu_line = (
        "The static check found every op supported by the GPU delegate."
        if gpu["gpu_ready"]
        else f"GPU delegate: {gpu_compat.summary(gpu)}."
    )
    kotlin = {
        "embedder": """```kotlin
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.text.textembedder.TextEmbedder

val options = TextEmbedder.TextEmbedderOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("model.tflite").build())
    .build()
val embedder = TextEmbedder.createFromOptions(context, options)
val vector = embedder.embed("The movie was great").embeddingResult().embeddings()[0].floatEmbedding()
val similarity = TextEmbedder.cosineSimilarity(
    embedder.embed("a").embeddingResult().embeddings()[0], embedder.embed("b").embeddingResult().embeddings()[0])
```""",
        "classifier": """```kotlin
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.text.textclassifier.TextClassifier

val options = TextClassifier.TextClassifierOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("model.tflite").build())
    .build()
val classifier = TextClassifier.createFromOptions(context, options)
val top = classifier.classify("The movie was great").classificationResult()
    .classifications()[0].categories().maxBy { it.score() }   // top.categoryName(), top.score()
```

TFLite Task Library (older apps), same file:

```kotlin
import org.tensorflow.lite.task.text.nlclassifier.BertNLClassifier

val classifier = BertNLClassifier.createFromFile(context, "model.tflite")
val categories = classifier.classify("The movie was great")   // label and score per output
```
Note: Task Library 0.4.4's runtime cannot run TF 2.21 dynamic-range int8 ops
(`FULLY_CONNECTED version 12`); use the fp32 asset with it, or MediaPipe for int8.""",
    }[task]
    deps = {
        "embedder": "com.google.mediapipe:tasks-text:0.10.21",
        "classifier": 'com.google.mediapipe:tasks-text:0.10.21")\n    // Task Library alternative:\n'
        '    // implementation("org.tensorflow:tensorflow-lite-task-text:0.4.4',
    }[task]
    return f"""# Android assets ({task})

Copy this folder's files into `app/src/main/assets/`. `model.tflite` carries TFLite Metadata:
a BertTokenizer process unit with `vocab.txt` packed in, inputs `ids`, `mask`,
`segment_ids` (int32 [1, {seq}]), output `{output}`{" with `labels.txt` packed in" if labels else ""}.
`vocab.txt`{" and `labels.txt`" if labels else ""} are here as plain files too. {gpu_line}

`app/build.gradle.kts`:

```kotlin
android {{
    androidResources {{ noCompress += "tflite" }}   // the model is memory-mapped
}}
dependencies {{
    implementation("{deps}")
}}
```

{kotlin}

Made by `edgebert android`; `edgebert.json` records the source, recipe, accuracy against the
fp32 reference and the GPU check.
"""
