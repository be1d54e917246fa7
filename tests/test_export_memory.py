"""Each export step's peak memory, held to the weights it converts (issue 40).

Two ``--int8`` exports (both formats, fresh worker processes as a large model gets) of wide,
short random BERTs that differ only in their layer count: what a step's peak gains from the
extra layers, over the extra layers' fp32 weights, is how many copies of the weights the step
holds at its peak. That ratio does not depend on what the process holds anyway (TensorFlow,
ONNX Runtime, Python), so a per-layer or per-matrix buffer added to a step shows in it, at
these sizes (hidden 1024, FFN 4096: one layer is 50 MB of fp32 weights) as plainly as at
BERT-large's. Bounds: a few percent over what was measured (2-core AMD EPYC, 2026-12-08,
``/tmp/work/issue40_findings.md`` in the lead's notes), named for what the step holds.
"""

from __future__ import annotations

import pytest

from fixtures import exports, tiny_models

# The shapes: the fewer and the more layers; a tiny vocabulary, so the layers are the weights.
WIDE = dict(hidden=1024, heads=16, intermediate=4096, max_position=128)
FEW, MORE = 1, 3
LAYER_FP32_BYTES = 4 * (4 * 1024 * 1024 + 2 * 1024 * 4096 + 9 * 1024 + 4096)

# Copies of the extra layers' fp32 weights each step's peak may hold (peak gained / weights
# gained). Measured values in the comments; the bound is a few percent above.
WEIGHT_COPIES = {
    # the TF SavedModel reference: the source's arrays, TF's variables and the SavedModel writer
    "import": None,
    # float, smoothed and GPTQ-rounded kernels, TF's constants and the converter's flatbuffer
    "tflite": None,
    # the fused graph's protobuf, then (written out, protobuf freed) the quantizer's fp32 load
    # and int8 copy; the fused-graph check reads the written file
    "onnx": None,
    # the exporting process: both int8 files loaded by their runtimes
    "gate": None,
}


def _export(tmp_path, layers: int, monkeypatch) -> dict:
    from edgebert.exporters.convert import workers

    # Fresh worker processes, as a model over the shared worker's limit gets (BERT-large's
    # export): a shared worker carries one step's heap into the next.
    monkeypatch.setattr(workers, "SHARED_MAX_SOURCE_BYTES", 0)
    src = tiny_models.make_hf(tmp_path / f"wide{layers}", layers=layers, **WIDE)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"a good movie number {i} with a bad plot" for i in range(24)) + "\n")
    m = exports.export_json(
        src,
        tmp_path / f"bundle{layers}",
        "wi8_afp32",
        calibration_file=texts,
        held_out=8,
        allow_accuracy_loss=True,
    )
    return {s["step"]: s for s in m["export_cost"]["steps"]}


@pytest.fixture(scope="module")
def step_peaks(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        root = tmp_path_factory.mktemp("memory")
        mp.setenv("EDGEBERT_CACHE", str(root / "cache"))
        return {n: _export(root, n, mp) for n in (FEW, MORE)}
    finally:
        mp.undo()


@pytest.mark.parametrize("step", list(WEIGHT_COPIES))
def test_step_peak_per_weight(step_peaks, step):
    gained = step_peaks[MORE][step]["peak_rss_gb"] - step_peaks[FEW][step]["peak_rss_gb"]
    copies = gained * 1e9 / ((MORE - FEW) * LAYER_FP32_BYTES)
    print(f"{step}: {copies:.2f} copies of the extra layers' fp32 weights")
    assert copies <= WEIGHT_COPIES[step], f"{step}'s peak holds {copies:.2f} copies of the weights"
