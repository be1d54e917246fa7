"""The device side: load a bundle and run it with its bundled tokenizer.

    import edgebert
    m = edgebert.load("out/demo")                 # TFLite on XNNPACK, all cores
    m.embed(["a sentence", "another"], pooling="mean", normalize=True)   # [2, H]
    m.encode([("question", "passage")])           # pairs: dict of numpy arrays

Needs numpy plus ai-edge-litert and/or onnxruntime; never TensorFlow (unless tf.lite is the
only TFLite interpreter installed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from edgebert.cache import cache_dir
from edgebert.errors import EdgebertError
from edgebert.eval import metrics
from edgebert.eval.metrics import mean_pool
from edgebert.model.bundle import Manifest, ModelEntry, read_manifest
from edgebert.runtime import delegates, options, runners
from edgebert.runtime.delegates import DelegateReport
from edgebert.runtime.options import GpuOptions, OnnxOptions, RunnerSettings, TfliteOptions
from edgebert.runtime.runner_protocol import Runner
from edgebert.tokenizer.wordpiece import BertTokenizer

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from edgebert.runtime.options import LoadKeywords

# Dynamic-length batches are padded to a multiple of this: fewer distinct shapes (each new
# shape re-plans the interpreter) for at most 7 wasted positions.
LENGTH_BUCKET = 8

Text = str | tuple[str, str] | list[str]


def load(
    bundle: str | os.PathLike,
    backend: str = "auto",
    delegate: str = "auto",
    num_threads: int | None = None,
    **keywords: Unpack[LoadKeywords],
) -> EdgeModel:
    """Loads an edgebert bundle (a directory written by ``edgebert export``).

    Args:
      bundle: the bundle directory.
      backend: ``auto`` (TFLite when the bundle has it and an interpreter is installed, else
        ONNX), ``tflite`` or ``onnx``.
      delegate: ``auto``/``cpu`` (XNNPACK on TFLite, the CPU provider on ONNX), ``xnnpack``,
        ``gpu`` (LiteRT's GPU accelerator, or an ONNX Runtime GPU provider) or ``nnapi``.
      num_threads: CPU threads per runner (default: all cores).

    Keyword Args:
      fallback: when the delegate is not available, warn and run on the CPU instead of raising.
      pool_size: runners kept for concurrent callers (each holds its own interpreter).
      batch_size: sentences per runner call.
      fast_tokenizer: WordPiece in Hugging Face ``tokenizers`` (same ids).
      tflite: ``TfliteOptions``:
        ``weight_cache``: TFLite on the CPU: run through LiteRT's CompiledModel with XNNPACK's
        packed weights in a cache file (built on the first load, mmapped after), so the file's own
        weights are not read again: peak memory about 1.4x the int8 file instead of 2.1x
        (BERT-base, benchmarks/), same outputs bit for bit (tests/). ``"auto"`` (the default: in
        the edgebert cache, keyed by model hash, LiteRT version and CPU; in memory where that is
        not writable; ignored by ONNX, the GPU, NNAPI and delegate libraries; the Interpreter where
        LiteRT's CompiledModel cannot load the file), a file path, ``":memory"``, or ``"off"`` /
        None (the LiteRT Interpreter, whose delegate report counts the ops at run time).
        ``delegate_library``: a TFLite delegate ``.so`` (path or name) for ``load_delegate``.
      gpu: ``GpuOptions`` (with ``delegate="gpu"`` only): ``enforce_f32`` computes in fp32
        (LiteRT's default may use fp16; measured on MiniLM fp32: token cosine 0.99998 vs CPU by
        default, 1.0 with fp32); ``strict`` refuses a model that the GPU cannot take whole.
      onnx: ``OnnxOptions``: ``exact_int8``: ONNX on the CPU: None (default) re-signs the int8
        weights for ONNX Runtime's u8 x u8 kernel on x86 CPUs without VNNI, whose u8 x s8 kernel
        adds in saturating int16 (``edgebert.formats.onnx_exact_int8``; the delegate report says
        so); True always; False never.
      weight_cache, delegate_library, gpu_enforce_f32, strict, exact_int8: deprecated, the fields
        of the option objects above: still read for one release, with a DeprecationWarning.

    Returns:
      An ``EdgeModel``.
    """
    return EdgeModel(bundle, backend, delegate, num_threads, **keywords)


def pick_backend(manifest: Manifest, backend: str, bundle: Path) -> str:
    if backend not in runners.BACKENDS:
        raise EdgebertError(f"unknown backend {backend!r}", f"use one of {', '.join(runners.BACKENDS)}")
    have = [f for f in ("tflite", "onnx") if f in manifest.models]
    if backend == "auto":
        if "tflite" in have and _has_tflite():
            return "tflite"
        if "onnx" in have:
            return "onnx"
        if have:
            return have[0]
        raise EdgebertError(f"{bundle}'s manifest lists no model", "export the bundle again")
    if backend not in have:
        raise EdgebertError(
            f"bundle {bundle} has no {backend} model (it has {', '.join(have) or 'none'})",
            f"use backend={have[0]!r}" if have else "export the bundle again",
        )
    return backend


def _has_tflite() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))


class EdgeModel:
    """An exported BERT encoder with its tokenizer. See ``load``.

    Attributes:
      bundle: the bundle directory.
      manifest: its ``edgebert.json`` (``Manifest``).
      backend: ``tflite`` or ``onnx``: the file that runs.
      delegate: what runs it (``DelegateReport``).
      runner_settings: what every runner of the pool opened with.
    """

    def __init__(
        self,
        bundle: str | os.PathLike,
        backend: str = "auto",
        delegate: str = "auto",
        num_threads: int | None = None,
        *,
        fallback: bool = False,
        pool_size: int = 1,
        batch_size: int = 32,
        fast_tokenizer: bool = False,
        tflite: TfliteOptions | None = None,
        gpu: GpuOptions | None = None,
        onnx: OnnxOptions | None = None,
        **deprecated: Any,
    ) -> None:
        given: dict[str, Any] = {"tflite": tflite, "gpu": gpu, "onnx": onnx}
        options.check(backend, delegate, given)  # the deprecated keywords keep their old, laxer checks
        picked = options.from_deprecated_keywords(deprecated, given, "load") if deprecated else given
        tflite, gpu, onnx = picked["tflite"], picked["gpu"], picked["onnx"]
        tflite, gpu, onnx = tflite or TfliteOptions(), gpu or GpuOptions(), onnx or OnnxOptions()
        self.bundle = Path(bundle)
        self.manifest: Manifest = read_manifest(self.bundle)
        delegates.check_intent(delegate)
        if pool_size < 1 or batch_size < 1:
            raise EdgebertError("pool_size and batch_size must be >= 1", "pass positive numbers")
        self.backend = pick_backend(self.manifest, backend, self.bundle)
        entry = self.manifest.models[self.backend]
        self.model_path = self.bundle / entry.file
        _check_model_file(self.model_path, entry)
        self._describe(entry, fast_tokenizer, batch_size)
        self.runner_settings = RunnerSettings(
            num_threads=num_threads,
            hidden_size=self.hidden_size,
            output_widths=self._output_widths(),
            delegate_library=tflite.delegate_library,
            strict=gpu.strict,
            gpu_enforce_f32=gpu.enforce_f32,
            weight_cache=self._weight_cache_path(tflite.weight_cache, entry, delegate, tflite.delegate_library),
            exact_int8=onnx.exact_int8,
        )
        first = self._open_with_cache(delegate, fallback, str(tflite.weight_cache) == "auto")
        if first.report.used == "xnnpack-weight-cache" and entry.xnnpack_delegation:
            first.report.take_counts(entry.xnnpack_delegation, "export")
        self.delegate: DelegateReport = first.report
        self._pool: queue.SimpleQueue[Runner] = queue.SimpleQueue()
        self._pool.put(first)
        for _ in range(pool_size - 1):
            self._pool.put(
                runners.open_runner(self.model_path, delegate=self._used_intent, **self.runner_settings.as_kwargs())
            )

    def _describe(self, entry: ModelEntry, fast_tokenizer: bool, batch_size: int) -> None:
        """The model's shapes, outputs, task and tokenizer, from the manifest."""
        manifest = self.manifest
        self.hidden_size = int(manifest.architecture["hidden_size"])
        self.seq_length: int | None = manifest.seq_length  # None: dynamic sequence axis
        self.model_batch: int | None = entry.batch  # None unless a fixed-batch graph
        # A fine-tuned classifier's bundle truncates where its own preprocessing packed.
        self.max_seq_length: int = manifest.max_length
        self.outputs: list[str] = [o["name"] for o in entry.outputs] or ["pooled_output", "sequence_output"]
        self.task: str = manifest.task or "encoder"  # android assets: "embedder" or "classifier"
        self.labels: list[str] | None = manifest.labels
        tok = manifest.tokenizer
        self.tokenizer = BertTokenizer(self.bundle / tok["vocab"], tok["do_lower_case"], use_fast=fast_tokenizer)
        self.batch_size = batch_size

    def _output_widths(self) -> dict[str, int]:
        """Widths of the outputs other than the encoder's (the runners size read-backs by them)."""
        widths = {"scores": int(self.manifest.head["units"])} if self.manifest.head else {}
        if self.labels:
            widths["probability"] = len(self.labels)
        return widths

    @property
    def info(self) -> Manifest:
        """Deprecated: ``manifest``."""
        warnings.warn("EdgeModel.info is deprecated; use EdgeModel.manifest", DeprecationWarning, stacklevel=2)
        return self.manifest

    def _weight_cache_path(
        self, setting: str | os.PathLike | None, entry: ModelEntry, delegate: str, delegate_library: str | None
    ) -> str | None:
        if setting is None or setting is False or str(setting) == "off":
            return None
        on_xnnpack = self.backend == "tflite" and delegate in ("auto", "cpu", "xnnpack") and not delegate_library
        auto = str(setting) == "auto"
        if not on_xnnpack:
            if auto:  # the default: it applies where XNNPACK runs the file, quietly nowhere else
                return None
            raise EdgebertError(
                "weight_cache is an option of TFLite on the CPU (XNNPACK)",
                "drop it, or use backend='tflite' with delegate='cpu'",
            )
        if not auto:
            return str(setting)
        import platform

        try:
            from ai_edge_litert import __version__ as litert
        except ImportError:
            litert = "unknown"
        folder = cache_dir() / "xnnpack"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return ":memory"
        if not os.access(folder, os.W_OK):
            return ":memory"
        # Packed weights depend on the model, XNNPACK's version and the CPU's kernels.
        return str(folder / f"{(entry.sha256 or 'unhashed')[:24]}-litert{litert}-{platform.machine()}.xnnpack")

    def _open_with_cache(self, delegate: str, fallback: bool, auto_cache: bool) -> Runner:
        """The first runner; ``runner_settings`` become what the pool's other runners open with.
        With the default weight cache, a file LiteRT's CompiledModel cannot load runs on the
        Interpreter instead."""
        try:
            return self._open(delegate, fallback)
        except EdgebertError as e:
            if not (auto_cache and self.runner_settings.weight_cache):
                raise
            self.runner_settings = dataclasses.replace(self.runner_settings, weight_cache=None)
            runner = self._open(delegate, fallback)
            runner.report.reason = f"no weight cache: {e.problem}"
            return runner

    def _open(self, delegate: str, fallback: bool) -> Runner:
        self._used_intent = delegate
        nnapi = self._nnapi_check() if delegate == "nnapi" and self.backend == "tflite" else None
        try:
            runner = runners.open_runner(self.model_path, delegate=delegate, **self.runner_settings.as_kwargs())
        except EdgebertError as e:
            if nnapi:  # say what would fall back once the delegate is there
                e = EdgebertError(f"{e.problem}; static check: {nnapi[1]}", e.fix)
            if not fallback or delegate in ("auto", "cpu", "xnnpack"):
                raise e from None
            warnings.warn(
                f"edgebert: delegate={delegate!r} is not available ({e.problem}); running on the CPU",
                RuntimeWarning,
                stacklevel=4,
            )
            self._used_intent = "cpu"
            self.runner_settings = dataclasses.replace(self.runner_settings, delegate_library=None)
            runner = runners.open_runner(self.model_path, delegate="cpu", **self.runner_settings.as_kwargs())
            runner.report.requested, runner.report.fell_back, runner.report.reason = delegate, True, e.problem
            return runner
        if nnapi and not nnapi[0]:
            warnings.warn(f"edgebert: static check: {nnapi[1]}", RuntimeWarning, stacklevel=4)
        return runner

    def _nnapi_check(self) -> tuple[bool, str] | None:
        """(ready, one line) of the static NNAPI check: the manifest's stored report, else the
        file's (``edgebert.checks.nnapi`` at the newest feature level); None if neither reads."""
        from edgebert.checks import nnapi as nnapi_compat

        try:
            report = self.manifest.models["tflite"].nnapi_compatibility or nnapi_compat.check_tflite(self.model_path)
            return bool(report["nnapi_ready"]), nnapi_compat.summary(report)
        except (EdgebertError, KeyError, TypeError):  # an unreadable file or a malformed stored report
            return None

    # ------------------------------------------------------------------ public API
    def encode(
        self, texts: Text | Sequence[Text], pairs: Sequence[str] | None = None, *, seq_length: int | None = None
    ) -> dict[str, np.ndarray]:
        """Runs the encoder.

        Args:
          texts: a string, a list of strings, or a list of ``(text, text_pair)`` tuples.
          pairs: second segments, one per text (instead of tuples).
          seq_length: truncate to this many tokens (default: the model's length).

        Returns:
          ``pooled_output`` [n, H], ``sequence_output`` [n, S, H] and ``input_mask`` [n, S], in
          input order; S is the longest item (dynamic models) or the model's fixed length.
        """
        if "pooled_output" not in self.outputs:
            raise EdgebertError(
                f"this {self.task} model outputs {', '.join(self.outputs)}, not the encoder outputs",
                "use embed() (embedder) or classify() (classifier)",
            )
        feeds = self.tokenize(texts, pairs, seq_length)
        n, width = feeds["input_word_ids"].shape
        pooled = np.zeros((n, self.hidden_size), np.float32)
        seq = np.zeros((n, width, self.hidden_size), np.float32)
        for idx, out in self._run(feeds):
            pooled[idx] = out["pooled_output"]
            seq[idx, : out["sequence_output"].shape[1]] = out["sequence_output"]
        return {"pooled_output": pooled, "sequence_output": seq, "input_mask": feeds["input_mask"]}

    def embed(
        self,
        texts: Text | Sequence[Text],
        pairs: Sequence[str] | None = None,
        *,
        pooling: str | None = None,
        normalize: bool = False,
        seq_length: int | None = None,
    ) -> np.ndarray:
        """Sentence embeddings ``[n, H]``: ``cls`` (the pooled output, the default) or ``mean`` over
        real tokens; an embedder asset returns its ``embedding`` output (pooled as it was built)."""
        head_pooling = self.manifest.pooling if "embedding" in self.outputs else None
        if "embedding" not in self.outputs and "pooled_output" not in self.outputs:
            raise EdgebertError(f"this {self.task} model has no embedding output", "use classify()")
        pooling = pooling or head_pooling or "cls"
        if pooling not in ("cls", "mean"):
            raise EdgebertError(f"unknown pooling {pooling!r}", "use pooling='cls' or 'mean'")
        if head_pooling and pooling != head_pooling:
            raise EdgebertError(f"this embedder was built with {head_pooling} pooling", f"use pooling='{head_pooling}'")
        feeds = self.tokenize(texts, pairs, seq_length)
        emb = np.zeros((len(feeds["input_word_ids"]), self.hidden_size), np.float32)
        for idx, out in self._run(feeds):
            if head_pooling:
                emb[idx] = out["embedding"]
            elif pooling == "cls":
                emb[idx] = out["pooled_output"]
            else:
                emb[idx] = mean_pool(out["sequence_output"], feeds["input_mask"][idx])
        if normalize:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def classify(self, texts: Text | Sequence[Text], pairs: Sequence[str] | None = None) -> np.ndarray:
        """Label probabilities ``[n, labels]`` (names in ``self.labels``) of a fine-tuned classifier
        bundle or an Android classifier asset."""
        if "scores" in self.outputs:
            return metrics.probabilities(self.scores(texts, pairs), self._head()["activation"]).astype(np.float32)
        if "probability" not in self.outputs:
            raise EdgebertError(
                f"this {self.task} model has no classifier output",
                "export a fine-tuned classifier SavedModel (`edgebert finetune` makes one), "
                "or build an asset with `edgebert android --task classifier`",
            )
        return self._head_output("probability", texts, pairs, len(self.labels or []))

    def scores(self, texts: Text | Sequence[Text], pairs: Sequence[str] | None = None) -> np.ndarray:
        """A fine-tuned classifier's raw output ``[n, units]``, as its SavedModel returns it
        (logits, or sigmoid / softmax where the model applies them)."""
        if "scores" not in self.outputs:
            raise EdgebertError(
                f"this {self.task} model has no classifier scores",
                "export a fine-tuned classifier SavedModel (`edgebert finetune` makes one)",
            )
        return self._head_output("scores", texts, pairs, int(self._head()["units"]))

    def _head(self) -> dict[str, Any]:
        """The manifest's classifier head (units, activation) of a model with a scores output."""
        if not self.manifest.head:
            raise EdgebertError(
                f"{self.bundle}'s model has a scores output but its manifest no classifier head",
                "export the bundle again",
            )
        return self.manifest.head

    def _head_output(
        self, name: str, texts: Text | Sequence[Text], pairs: Sequence[str] | None, width: int
    ) -> np.ndarray:
        feeds = self.tokenize(texts, pairs)
        values = np.zeros((len(feeds["input_word_ids"]), width), np.float32)
        for idx, out in self._run(feeds):
            values[idx] = out[name]
        return values

    def tokenize(
        self, texts: Text | Sequence[Text], pairs: Sequence[str] | None = None, seq_length: int | None = None
    ) -> dict[str, np.ndarray]:
        """The model's inputs for ``texts`` (padded to the longest item on dynamic models)."""
        a, b = _split_inputs(texts, pairs)
        limit = seq_length or self.max_seq_length
        if limit > self.max_seq_length:
            raise EdgebertError(
                f"seq_length {limit} exceeds the model's {self.max_seq_length}",
                f"use seq_length <= {self.max_seq_length}",
            )
        if self.seq_length is not None:  # fixed-length model: every row is seq_length wide
            feeds = self.tokenizer(a, b, seq_length=limit)
            if limit < self.seq_length:
                feeds = {k: np.pad(v, ((0, 0), (0, self.seq_length - limit))) for k, v in feeds.items()}
            return feeds
        return self.tokenizer(a, b, seq_length=limit, dynamic_padding=True)

    def close(self) -> None:
        """Frees the runners (those in use are freed by their callers' references)."""
        while not self._pool.empty():
            self._pool.get_nowait().close()

    def __enter__(self) -> EdgeModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"EdgeModel({str(self.bundle)!r}, backend={self.backend!r}, delegate={self.delegate.summary()!r}, "
            f"seq_length={self.seq_length or 'dynamic'})"
        )

    # ------------------------------------------------------------------ batching
    def batches(self, feeds: dict[str, np.ndarray]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """The batches this model runs ``feeds`` in: ``(row indices, model inputs)``, sorted by
        length, each cut to its longest item (dynamic length) and filled with empty rows to a
        fixed-batch graph's batch. Outputs of rows past ``len(indices)`` are padding. A runner
        of another file with the same inputs (verify's tapped copy) runs these batches too."""
        lengths = feeds["input_mask"].sum(1)
        width = feeds["input_word_ids"].shape[1]
        # Longest first: the first call sizes the buffers, later (shorter) ones fit in them.
        order = np.argsort(-lengths, kind="stable")
        step = self.model_batch or self.batch_size
        for i in range(0, len(order), step):
            idx = order[i : i + step]
            w = width
            if self.seq_length is None:
                w = min(width, -(-int(lengths[idx].max()) // LENGTH_BUCKET) * LENGTH_BUCKET)
            batch = {k: v[idx, :w] for k, v in feeds.items()}
            short = (self.model_batch or 0) - len(idx)
            if short > 0:  # a fixed-batch graph: fill with empty rows
                batch = {k: np.pad(v, ((0, short), (0, 0))) for k, v in batch.items()}
            yield idx, batch

    def _run(self, feeds: dict[str, np.ndarray]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """Yields ``(indices, outputs)`` per batch, run by a runner of the pool."""
        for idx, batch in self.batches(feeds):
            with self._runner() as pooled:
                out = pooled.run(batch)
            yield idx, {k: v[: len(idx)] for k, v in out.items()}

    @contextlib.contextmanager
    def _runner(self) -> Iterator[Runner]:
        runner = self._pool.get()  # blocks while every runner is busy: interpreters are not thread-safe
        try:
            yield runner
        finally:
            self._pool.put(runner)


def _split_inputs(texts: Text | Sequence[Text], pairs: Sequence[str] | None) -> tuple[list[str], list[str] | None]:
    items: list[Text]
    if isinstance(texts, str):
        items = [texts]
    elif isinstance(texts, tuple) and len(texts) == 2 and all(isinstance(t, str) for t in texts) and pairs is None:
        items = [cast(tuple[str, str], texts)]  # one (text, pair) tuple: both checked to be str
    else:
        items = list(texts)
    texts = items
    if not texts:
        raise EdgebertError("no texts given", "pass a string or a non-empty list of strings")
    if all(isinstance(t, (tuple, list)) for t in texts):
        if pairs is not None:
            raise EdgebertError("got (text, pair) tuples and pairs=", "pass one or the other")
        if any(len(t) != 2 for t in texts):
            raise EdgebertError("a pair must be a (text, text_pair) tuple of two strings", "fix the pairs")
        a: list = [t[0] for t in texts]
        b: list | None = [t[1] for t in texts]
    else:
        a = texts
        b = None if pairs is None else ([pairs] if isinstance(pairs, str) else list(pairs))
    for name, seq in (("text", a), ("pair", b or [])):
        for i, t in enumerate(seq):
            if not isinstance(t, str):
                raise EdgebertError(f"{name} {i} is a {type(t).__name__}, not a str", "pass strings")
            if not t.strip():
                raise EdgebertError(f"{name} {i} is empty", "drop empty lines before encoding")
    if b is not None and len(b) != len(a):
        raise EdgebertError(f"got {len(a)} texts but {len(b)} pairs", "pass one pair per text")
    return a, b


def _check_model_file(path: Path, entry: ModelEntry) -> None:
    files = [(path, entry.bytes)]
    if entry.data_file:  # ONNX weights beside the graph
        files.append((path.with_name(entry.data_file), entry.data_bytes))
    for f, want in files:
        if not f.is_file():
            raise EdgebertError(
                f"{f} is missing from the bundle", "copy the whole bundle directory, or export it again"
            )
        size = f.stat().st_size
        if want is not None and size != want:
            raise EdgebertError(
                f"{f} has {size} bytes but the manifest says {want}: the file is truncated or was replaced",
                "copy the bundle again, or export it again",
            )


# The name before 0.2 (it collides with transformers.BertModel); kept as an alias.
BertModel = EdgeModel
