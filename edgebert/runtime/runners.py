"""Runners for exported files: LiteRT (ai-edge-litert, then tflite-runtime, then tf.lite),
LiteRT's CompiledModel GPU accelerator, and ONNX Runtime. No TensorFlow unless it is the only
TFLite interpreter installed.

Each satisfies ``runner_protocol.Runner``. A runner is not thread-safe (neither is a TFLite
interpreter); ``edgebert.runtime.edge_model`` keeps a pool of them.
"""

from __future__ import annotations

import ctypes
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.errors import EdgebertError
from edgebert.runtime import delegates, file_pages
from edgebert.runtime.delegates import DelegateReport
from edgebert.runtime.runner_protocol import Arrays, Runner

INPUT_NAMES = ("input_word_ids", "input_mask", "input_type_ids")
BACKENDS = ("auto", "tflite", "onnx")
# A length-bucketed .tflite (``edgebert export --seq-len 16,32,64,128``) has one static
# signature per length, named like this, sharing one copy of the weights.
BUCKET_SIGNATURE = "seq_{}"
_BUCKET_RE = re.compile(r"seq_(\d+)")


def bucket_lengths(signature_keys: Iterable[str]) -> tuple[int, ...] | None:
    """The lengths of a bucketed model's signatures, ascending; None for a one-signature model."""
    keys = list(signature_keys)
    found = [_BUCKET_RE.fullmatch(k) for k in keys]
    if not keys or not all(found):
        return None
    return tuple(sorted(int(m.group(1)) for m in found if m is not None))


def check_buckets(lengths: Iterable[int]) -> tuple[int, ...]:
    """``lengths`` as buckets: distinct, ascending, each at least 3 tokens ([CLS] x [SEP])."""
    b = tuple(lengths)
    if not b or list(b) != sorted(set(b)) or b[0] < 3:
        raise EdgebertError(
            f"length buckets must be distinct lengths >= 3 in ascending order, got {','.join(map(str, b))}",
            "pass e.g. --seq-len 16,32,64,128",
        )
    return b


def pick_bucket(buckets: tuple[int, ...], width: int) -> int:
    """The shortest bucket that holds ``width`` tokens."""
    for length in buckets:
        if length >= width:
            return length
    raise EdgebertError(
        f"inputs of {width} tokens are longer than the model's longest length bucket ({buckets[-1]})",
        f"truncate to {buckets[-1]} tokens (edgebert.load does), or export with a longer bucket",
    )


def pad_to_bucket(feeds: dict[str, np.ndarray], length: int) -> dict[str, np.ndarray]:
    """Pads token inputs with zeros (padding, masked out) to ``length`` positions."""
    width = feeds["input_word_ids"].shape[1]
    return {k: np.pad(np.asarray(v), ((0, 0), (0, length - width))) if width < length else v for k, v in feeds.items()}


def cut_to_width(outputs: dict[str, np.ndarray], width: int) -> dict[str, np.ndarray]:
    """Drops the padded positions again from per-token outputs ``[batch, seq, ...]``."""
    return {k: v[:, :width] if v.ndim == 3 else v for k, v in outputs.items()}


def _tflite_module() -> tuple[Any, str]:
    """The installed TFLite interpreter module, best first."""
    try:
        import ai_edge_litert.interpreter as mod

        return mod, "ai-edge-litert"
    except ImportError:
        pass
    try:
        import tflite_runtime.interpreter as mod

        return mod, "tflite-runtime"
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf
        return _TfLiteShim(tf), "tensorflow"
    except ImportError:
        raise EdgebertError("no TFLite interpreter is installed", "pip install ai-edge-litert") from None


class _TfLiteShim:
    """``tf.lite`` spelled like the interpreter modules."""

    def __init__(self, tf: Any) -> None:
        self.Interpreter = tf.lite.Interpreter
        self.load_delegate = tf.lite.experimental.load_delegate


def _load_error(runtime: str, path: str | os.PathLike, e: Exception) -> EdgebertError:
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "version" in msg and runtime != "ai-edge-litert":
        fix = (
            f"{runtime} is older than the model's op versions; pip install ai-edge-litert "
            "(tflite-runtime stopped at 2.14 and rejects TF 2.21 int8 ops)"
        )
    else:
        fix = (
            "the file is corrupt or incomplete (export it again), or the runtime is older than the "
            "model's ops (pip install -U ai-edge-litert)"
        )
    return EdgebertError(f"{runtime} cannot load {path}: {msg}", fix)


class TFLiteRunner:
    """Runs a ``.tflite`` with a ``serving_default`` signature on the LiteRT interpreter.

    Args:
      path: the model file.
      num_threads: CPU threads (default: all cores).
      delegate: ``auto``/``cpu``/``xnnpack`` (XNNPACK, LiteRT's CPU default), or ``gpu``/``nnapi``
        through a delegate library (``delegate_library``, else the usual library names).
      delegate_library: path or name of a TFLite delegate shared library for ``load_delegate``.
      delegate_options: options passed to ``load_delegate``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        num_threads: int | None = None,
        delegate: str = "auto",
        delegate_library: str | None = None,
        delegate_options: dict | None = None,
    ) -> None:
        mod, self.runtime = _tflite_module()
        self.path = Path(path)
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": num_threads or os.cpu_count()}
        used = "xnnpack"
        if delegate in ("gpu", "nnapi") or delegate_library:
            lib, used = self._load_delegate(mod, delegate, delegate_library, delegate_options)
            kwargs["experimental_delegates"] = [lib]
            # Without this LiteRT also applies XNNPACK, whose partitions would be counted as
            # this delegate's. Ops the delegate leaves run on the builtin CPU kernels.
            resolver = getattr(mod, "OpResolverType", None)
            if resolver is not None:
                kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = mod.Interpreter(**kwargs)
        except (ValueError, RuntimeError) as e:
            if "experimental_delegates" in kwargs:
                raise EdgebertError(
                    f"the {used} delegate failed to prepare {path}: {str(e).splitlines()[0]}",
                    "use delegate='cpu', or fallback=True",
                ) from None
            raise _load_error(self.runtime, path, e) from None
        self.report = DelegateReport(requested=delegate, used=used)
        if used != "xnnpack":
            self._count_delegation()  # before the signature runner: it holds tensor references
        self.buckets = bucket_lengths(self.interpreter.get_signature_list())
        if self.buckets:  # one static signature per length bucket
            self.runners = {n: self.interpreter.get_signature_runner(BUCKET_SIGNATURE.format(n)) for n in self.buckets}
            self.runner = self.runners[self.buckets[-1]]
        else:
            self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        missing = [n for n in INPUT_NAMES if n not in details]
        if missing:
            raise EdgebertError(
                f"{path} has no input {', '.join(missing)} in its serving signature (it has {', '.join(details)})",
                "pass an edgebert bundle's model",
            )
        self.batch_size = _fixed(details["input_word_ids"]["shape_signature"][0])
        self.seq_length = None if self.buckets else _fixed(details["input_word_ids"]["shape_signature"][1])
        self._counted = used != "xnnpack"

    @staticmethod
    def _load_delegate(mod: Any, intent: str, library: str | None, options: dict | None) -> tuple[Any, str]:
        names = [library] if library else list(delegates.DEFAULT_DELEGATE_LIBRARIES.get(intent, ()))
        errors = []
        for name in names:
            try:
                # Checked first: a failed load_delegate leaves an object whose __del__ raises.
                lib = ctypes.CDLL(name)
                if not hasattr(lib, "tflite_plugin_create_delegate"):
                    raise OSError("not a TFLite delegate (no tflite_plugin_create_delegate symbol)")
                return mod.load_delegate(name, options or {}), f"delegate:{Path(name).name}"
            except (ValueError, OSError, RuntimeError) as e:
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                errors.append(msg if name in msg else f"{name}: {msg}")
        raise EdgebertError(
            f"no TFLite {intent if intent in ('gpu', 'nnapi') else 'custom'} delegate could be loaded ({'; '.join(errors)})",
            "pass delegate_library= the delegate's .so path, use delegate='cpu', or pass fallback=True",
        )

    def _count_delegation(self) -> None:
        """Counts delegated ops after the first allocation (delegates apply there)."""
        self.interpreter.allocate_tensors()
        self._fill_counts()
        if self.report.nodes_delegated == 0:
            # Free the interpreter before the delegate it points to (the reverse order crashes).
            del self.interpreter
            raise EdgebertError(
                f"the {self.report.used} delegate took 0 of {self.report.nodes_total} ops of {self.path}: "
                "everything would run on the CPU kernels",
                "the delegate does not support this model's ops; use delegate='cpu'",
            )

    def run(self, feeds: Arrays) -> Arrays:
        """Runs one batch; a bucketed model pads it to the shortest bucket that holds it and
        returns per-token outputs at the batch's own width."""
        runner, width = self.runner, None
        if self.buckets:
            width = feeds["input_word_ids"].shape[1]
            length = pick_bucket(self.buckets, width)
            runner, feeds = self.runners[length], pad_to_bucket(feeds, length)
        out = runner(**{k: np.ascontiguousarray(feeds[k], np.int32) for k in INPUT_NAMES})
        if width is not None:
            out = cut_to_width(out, width)
        if not self._counted:  # XNNPACK applies itself at the first run: count what it took then
            self._counted = True
            self._fill_counts()
            # ... and packs the weights it took into memory: the file's copy of them is not read again.
            file_pages.release_mapped_file(self.path)
        return out

    def _fill_counts(self) -> None:
        r = self.report
        r.nodes_total, r.nodes_delegated, r.partitions, r.not_delegated = delegates.tflite_delegation(self.interpreter)

    def close(self) -> None:
        """Frees the interpreter: its signature runners first (they hold tensor references),
        then the interpreter, then the delegate it points to."""
        for name in ("runners", "runner", "interpreter"):
            self.__dict__.pop(name, None)


class LiteRtAcceleratedRunner:
    """Runs a ``.tflite`` through LiteRT's CompiledModel API: its GPU accelerator, or XNNPACK
    on the CPU with a weight cache.

    Args:
      path: the model file.
      hidden_size: width of the outputs (to size the read-back).
      strict: GPU only: refuse a model the GPU cannot take whole (else GPU with CPU fall-back).
      accelerator: ``gpu`` (default) or ``cpu``.
      enforce_f32: compute in fp32 on the GPU (LiteRT may otherwise use fp16).
      weight_cache: CPU only: XNNPACK's packed-weights file (``":memory"``: kept in memory).
        Built on the first load, mmapped on later ones, so the original int8 weights are never
        read again: peak memory about the file size instead of twice it.
      num_threads: CPU threads (default: all cores).
      output_widths: last dimension of outputs other than the encoder's (``scores``: units).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        hidden_size: int,
        strict: bool = False,
        accelerator: str = "gpu",
        enforce_f32: bool = False,
        weight_cache: str | None = None,
        num_threads: int | None = None,
        output_widths: dict[str, int] | None = None,
    ) -> None:
        self.accelerator = accelerator
        self.model = self._compile(path, strict, enforce_f32, weight_cache, num_threads)
        self.runtime = "ai-edge-litert CompiledModel"
        self.path, self.hidden = Path(path), hidden_size
        self.widths = {
            "pooled_output": hidden_size,
            "sequence_output": hidden_size,
            "embedding": hidden_size,
            **(output_widths or {}),
        }
        self._read_signatures(path)
        used = "litert-gpu" if accelerator == "gpu" else ("xnnpack-weight-cache" if weight_cache else "litert-cpu")
        self.report = DelegateReport(
            requested=accelerator,
            used=used,
            fully_accelerated=bool(self.model.is_fully_accelerated()) if accelerator == "gpu" else None,
        )
        if strict and not self.report.fully_accelerated:
            raise EdgebertError(
                f"the GPU cannot take all of {path} (strict mode)",
                "export it with the default graph form, or drop strict to let the CPU run the ops the GPU lacks",
            )

    def _compile(
        self,
        path: str | os.PathLike,
        strict: bool,
        enforce_f32: bool,
        weight_cache: str | None,
        num_threads: int | None,
    ) -> Any:
        """LiteRT's CompiledModel of ``path`` on ``self.accelerator``, or the EdgebertError that
        says why this machine cannot make one."""
        accelerator = self.accelerator
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HA
            from ai_edge_litert.options import CpuOptions, GpuOptions, Options
        except ImportError:
            what = "LiteRT's GPU accelerator" if accelerator == "gpu" else "XNNPACK's weight cache"
            raise EdgebertError(
                f"{what} needs ai-edge-litert >= 2.3",
                "pip install -U ai-edge-litert, or pass delegate_library= a GPU delegate",
            ) from None
        gap = compiled_model_cpu_gap()
        if gap:
            raise EdgebertError(
                gap,
                "load it without weight_cache (the Interpreter path)" if accelerator == "cpu" else "use delegate='cpu'",
            )
        if accelerator == "gpu":
            _refuse_dynamic_for_gpu(path)
        flags = HA.CPU if accelerator == "cpu" else (HA.GPU if strict else HA.GPU | HA.CPU)
        log: list[str] = []
        try:
            with delegates.captured_native_stderr(log):
                gpu_options = GpuOptions(enforce_f32=True) if enforce_f32 and accelerator == "gpu" else None
                cpu_options, building = None, None
                if accelerator == "cpu":
                    if weight_cache and weight_cache != ":memory" and not Path(weight_cache).exists():
                        # Built under a temporary name, renamed once complete: an interrupted first
                        # load leaves no half cache that a later load would map.
                        building = Path(f"{weight_cache}.partial-{os.getpid()}")
                    cpu_options = CpuOptions(
                        num_threads=num_threads or os.cpu_count() or 1,
                        xnnpack_weight_cache_path=str(building or weight_cache or ""),
                    )
                model = CompiledModel.from_file(
                    str(path), options=Options(flags, gpu_options=gpu_options, cpu_options=cpu_options)
                )
                if (
                    building is not None and weight_cache and building.exists()
                ):  # XNNPACK wrote it while creating the model
                    os.replace(building, weight_cache)
                if accelerator == "cpu":
                    # XNNPACK runs from its packed weights now: the file's own copy is not read again.
                    file_pages.release_mapped_file(path)
        except RuntimeError as e:
            raise self._compile_error(path, strict, "".join(log), e) from None
        return model

    def _compile_error(self, path: str | os.PathLike, strict: bool, log: str, e: RuntimeError) -> EdgebertError:
        """What LiteRT's failure to compile ``path`` means, from its exception and native log."""
        reason = delegates.first_reason(log + str(e), str(e).splitlines()[0])
        if self.accelerator == "cpu":
            return EdgebertError(
                f"LiteRT's CompiledModel could not load {path} on the CPU: {reason}",
                "load it without weight_cache (the Interpreter path)",
            )
        hint = (
            "no GPU that LiteRT can use was found (it needs Vulkan/OpenCL/Metal drivers)"
            if "No adapters found" in log + reason
            else reason
        )
        what = "a GPU-only run (strict) of" if strict else "the GPU accelerator for"
        return EdgebertError(
            f"LiteRT could not create {what} {path}: {hint}",
            "use delegate='cpu', or fallback=True to run on the CPU"
            + ("; without strict the ops the GPU lacks run on the CPU" if strict else ""),
        )

    def _read_signatures(self, path: str | os.PathLike) -> None:
        """The model's signatures (one per length bucket, else ``serving_default``), each with
        buffers for its compiled shape."""
        signatures = self.model.get_signature_list()
        self.buckets = bucket_lengths(signatures)
        # CompiledModel reports the current shape, not the signature's; the manifest knows.
        self.batch_size: int | None = None
        self.seq_length: int | None = None
        self.resizable = self.accelerator == "cpu" and not self.buckets and _has_dynamic_inputs(path)
        self._signatures: dict[str, _Signature] = {}
        for key in [BUCKET_SIGNATURE.format(n) for n in self.buckets] if self.buckets else ["serving_default"]:
            shape = self.model.get_input_tensor_details(key)["input_word_ids"]["shape"]
            sig = _Signature(
                self.model.get_signature_index(key),
                signatures[key]["inputs"],
                signatures[key]["outputs"],
                tuple(int(d) for d in shape),
            )
            self._signatures[key] = sig
            self._buffers(sig, sig.shape)  # GPU: compiled for these shapes once, here

    def _shape_of(self, name: str, b: int, s: int) -> tuple:
        if name not in self.widths:
            raise EdgebertError(
                f"{self.path} has an output {name!r} of unknown width",
                "load it with edgebert.load, which passes the widths from the manifest",
            )
        return (b, s, self.widths[name]) if name == "sequence_output" else (b, self.widths[name])

    def _buffers(self, sig: _Signature, shape: tuple) -> None:
        """Input buffers for ``shape`` and output buffers: on the GPU the accelerator's own; on
        the CPU over numpy arrays of the right size (after a resize ``create_output_buffers``
        still has the old sizes (LiteRT 2.3), and running into them overflows the heap)."""
        from ai_edge_litert.tensor_buffer import TensorBuffer

        sig.shape = shape
        sig.ins = self.model.create_input_buffers(sig.index)
        if self.accelerator == "gpu":
            sig.outs, sig.arrays = self.model.create_output_buffers(sig.index), []
            return
        b, s = shape
        sig.arrays = [np.empty(self._shape_of(n, b, s), np.float32) for n in sig.outputs]
        sig.outs = [TensorBuffer.create_from_host_memory(a) for a in sig.arrays]  # holds no reference: keep arrays

    def run(self, feeds: Arrays) -> Arrays:
        width = None
        if self.buckets:  # the shortest static signature that holds the batch
            width = feeds["input_word_ids"].shape[1]
            length = pick_bucket(self.buckets, width)
            sig, feeds = self._signatures[BUCKET_SIGNATURE.format(length)], pad_to_bucket(feeds, length)
        else:
            sig = self._signatures["serving_default"]
        shape = tuple(feeds["input_word_ids"].shape)
        if shape != sig.shape:
            if not self.resizable:  # a fixed-shape graph (XNNPACK cannot reshape it), or the GPU
                raise EdgebertError(
                    f"this model takes inputs of shape {list(sig.shape)}, got {list(shape)}",
                    "pad the batch to the model's fixed shape (edgebert.load does)",
                )
            for i in range(len(sig.inputs)):
                self.model.resize_input_tensor(i, list(shape), sig.index)
            self._buffers(sig, shape)
        for buf, name in zip(sig.ins, sig.inputs):
            buf.write(np.ascontiguousarray(feeds[name], np.int32))
        self.model.run_by_index(sig.index, sig.ins, sig.outs)
        b, s = shape
        if self.accelerator == "gpu":
            sizes = {n: self._shape_of(n, b, s) for n in sig.outputs if n in self.widths}
            out = {
                name: buf.read(int(np.prod(sizes[name])), np.float32).reshape(sizes[name])
                for buf, name in zip(sig.outs, sig.outputs)
                if name in sizes
            }
        else:
            out = {
                name: buf.read(a.size, np.float32).reshape(a.shape)
                for buf, a, name in zip(sig.outs, sig.arrays, sig.outputs)
            }
        return cut_to_width(out, width) if width is not None else out

    def close(self) -> None:
        """Frees the compiled model and its buffers (the buffers first: they belong to it)."""
        self.__dict__.pop("_signatures", None)
        self.__dict__.pop("model", None)


class _Signature:
    """One signature of a CompiledModel: its index, tensor order, current shape and buffers."""

    def __init__(self, index: int, inputs: list[str], outputs: list[str], shape: tuple) -> None:
        self.index, self.inputs, self.outputs, self.shape = index, inputs, outputs, shape
        self.ins: list = []
        self.outs: list = []
        self.arrays: list[np.ndarray] = []  # CPU: the numpy arrays the output buffers wrap


def _has_dynamic_inputs(path: str | os.PathLike) -> bool:
    """Whether the model's inputs have a dynamic dimension (read through mmap: only the
    flatbuffer's tables are touched, not the weights)."""
    import mmap

    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        sg = schema.Model.GetRootAs(mm, 0).Subgraphs(0)
        for j in range(sg.InputsLength()):
            t = sg.Tensors(sg.Inputs(j))
            if any(t.ShapeSignature(k) < 0 for k in range(t.ShapeSignatureLength())):
                return True
    return False


AT_HWCAP, HWCAP_ATOMICS = 16, 1 << 8  # Linux arm64 <asm/hwcap.h>: ARMv8.1 LSE atomics


def compiled_model_cpu_gap() -> str | None:
    """Why LiteRT's CompiledModel library cannot run on this CPU, or None.

    ai-edge-litert 2.3's arm64 ``libLiteRt.so`` is built with ARMv8.1's LSE atomics and stops the
    process (SIGILL, "compiled with lse enabled") on an ARMv8.0 core such as the Raspberry Pi 4's
    Cortex-A72; seen under qemu's cortex-a72 model, while cortex-a76 (Pi 5) runs it. The
    Interpreter's library has no such demand. Asked before loading, since SIGILL cannot be caught.
    """
    import platform

    if platform.machine() not in ("aarch64", "arm64") or not hasattr(ctypes, "CDLL"):
        return None
    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (AttributeError, OSError):  # not glibc/Linux (macOS arm64 always has LSE)
        return None
    getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
    if getauxval(AT_HWCAP) & HWCAP_ATOMICS:
        return None
    return (
        "LiteRT's CompiledModel library needs ARMv8.1 atomics (LSE), which this CPU lacks "
        "(an ARMv8.0 core such as the Raspberry Pi 4's Cortex-A72)"
    )


def _refuse_dynamic_for_gpu(path: str | os.PathLike) -> None:
    from edgebert.checks import gpu as gpu_compat

    report = gpu_compat.check_tflite(path)
    if report["dynamic_inputs"]:
        raise EdgebertError(
            f"{path} has a dynamic batch or sequence length, which LiteRT's GPU accelerator "
            "refuses or computes wrongly (measured on a real GPU)",
            "export a GPU bundle with --batch 1 --seq-len 128 (or fallback=True for the CPU)",
        )


class OnnxRunner:
    """Runs a ``.onnx`` with ONNX Runtime on the execution provider for ``delegate``."""

    def __init__(
        self,
        path: str | os.PathLike,
        num_threads: int | None = None,
        delegate: str = "auto",
        exact_int8: bool | None = None,
    ) -> None:
        """``exact_int8``: on the CPU provider, load the int8 weights re-signed for ONNX
        Runtime's u8 x u8 kernel (``edgebert.formats.onnx_exact_int8``): None (default) where this CPU's
        u8 x s8 kernel saturates (x86 without VNNI), True always, False never."""
        import onnxruntime as ort

        from edgebert.formats import onnx_exact_int8

        so = ort.SessionOptions()
        so.intra_op_num_threads = num_threads or os.cpu_count() or 1
        so.log_severity_level = 3
        self.runtime = f"onnxruntime {ort.__version__}"
        self.path = Path(path)
        providers = delegates.ort_providers(delegate, ort.get_available_providers())
        if providers[0] != "CPUExecutionProvider":
            exact_int8 = False  # the rewrite is for MLAS, the CPU provider's kernels
        try:
            with onnx_exact_int8.loadable(path, exact_int8) as (load_path, resigned):
                self.session = ort.InferenceSession(str(load_path), so, providers=providers)
        except EdgebertError as e:
            raise EdgebertError(f"onnxruntime cannot load {path}: {e.problem}", e.fix) from None
        except Exception as e:  # ORT raises its own exception types
            raise EdgebertError(
                f"onnxruntime cannot load {path}: {str(e).splitlines()[0][:300]}",
                "the file is corrupt or incomplete; export it again",
            ) from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        missing = [n for n in INPUT_NAMES if n not in inputs]
        if missing:
            raise EdgebertError(
                f"{path} has no input {', '.join(missing)} (it has {', '.join(inputs)})",
                "pass an edgebert bundle's model",
            )
        dims = [d if isinstance(d, int) and d > 0 else None for d in inputs["input_word_ids"]]
        self.batch_size, self.seq_length = dims
        active = self.session.get_providers()
        # ORT silently drops a provider whose libraries are missing: say what really runs.
        if providers[0] not in active:
            raise EdgebertError(
                f"onnxruntime could not start {providers[0]} (active: {', '.join(active)})",
                "install its libraries (CUDA/cuDNN for CUDA), or pass fallback=True",
            )
        self.report = DelegateReport(requested=delegate, used=active[0])
        if resigned:
            self.report.int8_products = (
                f"u8 x u8 ({resigned} products re-signed: x86 without VNNI adds u8 x s8 in saturating int16)"
            )

    def run(self, feeds: Arrays) -> Arrays:
        names = [o.name for o in self.session.get_outputs()]
        out = self.session.run(names, {k: np.ascontiguousarray(feeds[k], np.int32) for k in INPUT_NAMES})
        return dict(zip(names, out))

    def close(self) -> None:
        """Frees the ONNX Runtime session."""
        self.__dict__.pop("session", None)


def _fixed(dim: Any) -> int | None:
    return int(dim) if dim is not None and int(dim) > 0 else None


def open_runner(
    path: str | os.PathLike,
    num_threads: int | None = None,
    delegate: str = "auto",
    delegate_library: str | None = None,
    hidden_size: int | None = None,
    strict: bool = False,
    gpu_enforce_f32: bool = False,
    weight_cache: str | None = None,
    output_widths: dict[str, int] | None = None,
    exact_int8: bool | None = None,
) -> Runner:
    """A runner for ``path`` on the accelerator ``delegate`` asks for (raises when it is not there).

    ``weight_cache`` (a file, or ``":memory"``) runs a ``.tflite`` on the CPU through LiteRT's
    CompiledModel with XNNPACK's packed weights cached there."""
    delegates.check_intent(delegate)
    suffix = Path(path).suffix
    if not Path(path).is_file():
        raise EdgebertError(f"model file {path} not found", "pass a bundle directory made by edgebert export")
    if suffix == ".tflite":
        if delegate == "gpu" and not delegate_library:
            if hidden_size is None:
                raise EdgebertError("the GPU runner needs the model's hidden size", "load the model with edgebert.load")
            return LiteRtAcceleratedRunner(
                path, hidden_size, strict=strict, enforce_f32=gpu_enforce_f32, output_widths=output_widths
            )
        if weight_cache and delegate in ("auto", "cpu", "xnnpack") and not delegate_library:
            if hidden_size is None:
                raise EdgebertError(
                    "the weight-cache runner needs the model's hidden size", "load the model with edgebert.load"
                )
            return LiteRtAcceleratedRunner(
                path,
                hidden_size,
                accelerator="cpu",
                weight_cache=weight_cache,
                num_threads=num_threads,
                output_widths=output_widths,
            )
        return TFLiteRunner(path, num_threads, delegate, delegate_library)
    if suffix == ".onnx":
        if delegate_library:
            raise EdgebertError("delegate_library is a TFLite option", "use backend='tflite', or drop it")
        return OnnxRunner(path, num_threads, delegate, exact_int8)
    raise EdgebertError(f"cannot run {path}", "expected a .tflite or .onnx file")


def run_batches(runner: Runner, batches: Iterable[Arrays]) -> Arrays:
    """Runs token batches through ``runner`` and concatenates every output along batch.

    ``sequence_output`` rows are padded with zeros to the widest batch.
    """
    parts: dict[str, list] = {}
    for feeds in batches:
        for name, value in runner.run(feeds).items():
            parts.setdefault(name, []).append(value)
    if "sequence_output" in parts:
        width = max(s.shape[1] for s in parts["sequence_output"])
        parts["sequence_output"] = [
            np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0))) for s in parts["sequence_output"]
        ]
    return {k: np.concatenate(v) for k, v in parts.items()}
