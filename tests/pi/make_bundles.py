"""Writes the committed Pi bundles (tiny, fp32 and int8, TFLite + ONNX) and their x86 outputs.

    .venv/bin/python tests/pi/make_bundles.py

The model is the tiny random BERT of tests/fixtures (hidden 32, vocabulary of 45 pieces);
``expected.json`` holds what ``edgebert run --json`` prints for ``TEXTS`` on this x86 host.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TEXTS = ["the a the", "a the a the a", "the"]
RECIPES = {"fp32": "fp32", "int8": "wi8_afp32"}


def main() -> int:
    from fixtures import tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        src = tiny_models.make_hf(Path(tmp) / "tiny")
        expected = {}
        for name, recipe in RECIPES.items():
            out = HERE / "bundles" / name
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "edgebert",
                    "export",
                    str(src),
                    "--recipe",
                    recipe,
                    "--seq-len",
                    "dynamic",
                    "--allow-accuracy-loss",
                    "-o",
                    str(out),
                ],
                check=True,
            )
            manifest = json.loads((out / "edgebert.json").read_text())
            manifest["reference"]["path"] = "(not shipped)"  # the test runs the bundle, not the reference
            (out / "edgebert.json").write_text(json.dumps(manifest, indent=1))
            for fmt in manifest["models"]:
                p = subprocess.run(
                    [sys.executable, "-m", "edgebert", "run", str(out), *TEXTS, "--backend", fmt, "--json"],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                expected[f"{name}/{fmt}"] = json.loads(p.stdout)["embeddings"]
    (HERE / "expected.json").write_text(json.dumps({"texts": TEXTS, "embeddings": expected}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
