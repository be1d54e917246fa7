"""Raspberry Pi by emulation: the device install (``pip install edgebert`` with numpy,
ai-edge-litert and onnxruntime from the package index) in arm64 Debian bookworm (Python 3.11)
and trixie (3.13) under qemu as a Cortex-A72, running ``edgebert run`` on the committed tiny
bundles and matching the outputs recorded on x86. Skipped with the reason where the machine
cannot emulate (not root, no binfmt_misc, no qemu-user-static / mmdebstrap); under CI that
fails instead (conftest.require)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebert.eval.metrics import cosine
from edgebert.runtime.edge_model import load
from edgebert.runtime.options import TfliteOptions

HERE = Path(__file__).resolve().parent / "pi"
sys.path.insert(0, str(HERE))

import pi_root  # noqa: E402
from conftest import require  # noqa: E402

REASON = pi_root.unsupported_reason()


@pytest.fixture(scope="module", autouse=True)
def _emulated_pi():
    # REASON says what is missing and how to get it (`make test` as root installs the tools: pi-tools).
    require(REASON is None, "the emulated Raspberry Pi", str(REASON))


EXPECTED = json.loads((HERE / "expected.json").read_text())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    root = HERE.parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(root), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("edgebert-*.whl"))


def _install(pi, wheel):
    target = pi.path / "opt" / "wheels"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.copy(wheel, target / wheel.name)
    pi.run(
        [
            "/opt/venv/bin/python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--force-reinstall",
            "--disable-pip-version-check",
            f"/opt/wheels/{wheel.name}",
        ],
        timeout=600,
    )
    shutil.rmtree(pi.path / "opt" / "bundles", ignore_errors=True)
    shutil.copytree(HERE / "bundles", pi.path / "opt" / "bundles")


def _run(pi, bundle, fmt, *extra):
    p = pi.run(
        [
            "/opt/venv/bin/edgebert",
            "run",
            f"/opt/bundles/{bundle}",
            *EXPECTED["texts"],
            "--backend",
            fmt,
            "--json",
            *extra,
        ],
        timeout=600,
    )
    return json.loads(p.stdout), p


def _matches(key, got):
    want = np.array(EXPECTED["embeddings"][key])
    if key.startswith("fp32"):
        return float(np.abs(got - want).max()) <= 1e-5
    return float(cosine(got, want).min()) >= 0.999  # int8 kernels differ between x86 and Arm


# bookworm (Pi OS 12, the one the Pi Imager still offers for the Pi 4) by default; trixie in the slow tier:
# each root is built from the package index under emulation (about 2 minutes on a clean machine).
@pytest.mark.parametrize(
    "suite", [s if s == "bookworm" else pytest.param(s, marks=pytest.mark.slow) for s in pi_root.SUITES]
)
def test_device_install_on_emulated_pi_matches_x86(suite, wheel):
    pi = pi_root.PiRoot(suite).ensure()
    _install(pi, wheel)
    version = pi.run(
        [
            "/opt/venv/bin/python",
            "-c",
            "import platform, sys; print(platform.machine(), "
            "sys.version.split()[0]); import edgebert; assert 'tensorflow' not in sys.modules",
        ]
    ).stdout
    assert version.startswith("aarch64 " + pi_root.SUITES[suite])
    for key in EXPECTED["embeddings"]:
        bundle, fmt = key.split("/")
        out, _ = _run(pi, bundle, fmt)
        got = np.array(out["embeddings"])
        assert got.shape == np.array(EXPECTED["embeddings"][key]).shape
        assert _matches(key, got), (suite, key, np.abs(got - np.array(EXPECTED["embeddings"][key])).max())
        if fmt == "tflite":  # the Pi gets XNNPACK's kernels, for the same ops as on x86
            with load(HERE / "bundles" / bundle, backend="tflite", tflite=TfliteOptions(weight_cache="off")) as x86:
                x86.embed(EXPECTED["texts"])  # the counts are taken once the graph has run
                want = x86.delegate
            pi_delegate = out["delegate"]
            # A Pi 4 (ARMv8.0) cannot run LiteRT's CompiledModel library (built with LSE atomics):
            # the default weight cache steps aside for the Interpreter instead of dying of SIGILL.
            assert "needs ARMv8.1 atomics (LSE)" in (pi_delegate["reason"] or ""), pi_delegate
            assert pi_delegate["used"] == "xnnpack" and pi_delegate["nodes_delegated"] > 0, (suite, key, pi_delegate)
            assert (pi_delegate["nodes_delegated"], pi_delegate["nodes_total"]) == (
                want.nodes_delegated,
                want.nodes_total,
            ), (suite, key, pi_delegate, want)


def test_weight_cache_on_an_armv8_2_pi(wheel):
    """A Pi 5's Cortex-A76 (ARMv8.2, LSE atomics) runs the default weight-cache path: the x86 numbers."""
    pi = pi_root.PiRoot("bookworm", cpu="cortex-a76").ensure()
    _install(pi, wheel)
    out, _ = _run(pi, "int8", "tflite")
    assert out["delegate"]["used"] == "xnnpack-weight-cache" and not out["delegate"]["reason"], out["delegate"]
    assert _matches("int8/tflite", np.array(out["embeddings"]))


def test_corrupted_bundle_is_caught(wheel):
    pi = pi_root.PiRoot("bookworm").ensure()
    _install(pi, wheel)
    model = pi.path / "opt" / "bundles" / "fp32" / "model.onnx"
    data = bytearray(model.read_bytes())
    # Flip weights in the middle of the file (same size, so the manifest's byte count holds).
    for i in range(len(data) // 2, len(data) // 2 + 400, 4):
        data[i] ^= 0x40
    model.write_bytes(bytes(data))
    p = pi.run(
        ["/opt/venv/bin/edgebert", "run", "/opt/bundles/fp32", *EXPECTED["texts"], "--backend", "onnx", "--json"],
        timeout=600,
        check=False,
    )
    if p.returncode == 0:  # it loaded: the outputs must then be seen to differ
        assert not _matches("fp32/onnx", np.array(json.loads(p.stdout)["embeddings"]))
    else:  # or the runtime refused the file with its one-line error
        assert p.returncode == 1 and p.stderr.strip().splitlines()[-1].startswith("edgebert: error:"), p.stderr
