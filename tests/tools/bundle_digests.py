"""Exports the tiny fixtures and prints a digest of every file written, so a refactoring can be
shown to leave bundles byte for byte as they were.

    python tests/tools/bundle_digests.py -o before.json        # on the old code
    python tests/tools/bundle_digests.py --compare before.json # on the new code: exit 1 on a change

Two runs of unchanged code differ in a few places, which the digest leaves out (measured: two
runs of this script on one commit): the manifest's creation time, seconds, peak memory, paths
and the reference SavedModel's digest (TensorFlow writes it differently each time); the dates of
the files zipped into an Android asset; tf2onnx's generated node names. So a manifest is compared
without those fields, a .tflite by its bytes (with the zipped files by name and CRC), an .onnx by
its initializers, its op types and its outputs on fixed inputs (bit for bit), every other file by
its sha256.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# Fields a second run of unchanged code writes differently.
VOLATILE = {
    "created",
    "seconds",
    "peak_rss_gb",
    "worker_peak_rss_gb",
    "path",
    "spec",
    "file",
    "reference",
    "sha256",
    "bytes",
}
TINY_TRAIN = [
    "1\tgood fun movie",
    "0\tboring bad plot",
    "1\ti love this film",
    "0\ti hate this story",
    "1\tgreat actor",
    "0\tbad acting",
    "1\tvery good",
    "0\tnot good",
] * 4

# (name, source fixture, extra CLI arguments): each a command a user runs.
EXPORTS = [
    ("hf_fp32", "hf", ["export"]),
    ("hf_int8", "hf", ["export", "--int8"]),
    ("hf_buckets", "hf", ["export", "--seq-len", "8,16", "--format", "tflite"]),
    ("hf_fixed_int8", "hf", ["export", "--recipe", "wi8_afp32", "--seq-len", "16", "--batch", "1"]),
    ("tf1_checkpoint", "tf1_checkpoint", ["export"]),
    ("tf1_hub", "tf1_hub", ["export", "--format", "tflite"]),
    ("tf2_hub", "tf2_hub", ["export", "--format", "onnx"]),
    ("android_classifier", "hf", ["android", "--task", "classifier", "--seq-len", "16", "--train", "{train}"]),
]


def _scrub(value):
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def _tflite_digest(path: Path) -> str:
    data = path.read_bytes()
    h = hashlib.sha256()
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile:
        members = []
    if members:  # metadata's associated files: compare contents, not the dates they were zipped
        h.update(data[: min(m.header_offset for m in members)])
        for m in members:
            h.update(f"{m.filename}:{m.CRC}:{m.file_size};".encode())
    else:
        h.update(data)
    return h.hexdigest()


def _onnx_digest(path: Path) -> str:
    import numpy as np
    import onnx
    import onnxruntime as ort

    from fixtures import tiny_models

    model = onnx.load(str(path))
    h = hashlib.sha256()
    for d in sorted(
        hashlib.sha256(onnx.numpy_helper.to_array(t).tobytes()).hexdigest() for t in model.graph.initializer
    ):
        h.update(d.encode())
    h.update(json.dumps(sorted(collections.Counter(n.op_type for n in model.graph.node).items())).encode())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape  # a fixed export has static dimensions
    batch, seq = (d if isinstance(d, int) else default for d, default in zip(shape, (3, 12)))
    feeds = dict(zip([i.name for i in sess.get_inputs()], tiny_models.token_inputs(batch=batch, seq=seq)))
    for out in sess.run(None, feeds):
        h.update(np.ascontiguousarray(out).tobytes())
    return h.hexdigest()


def digest_tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        if path.suffix == ".json":
            data = _scrub(json.loads(path.read_text()))
            out[rel] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        elif path.suffix == ".tflite":
            out[rel] = _tflite_digest(path)
        elif path.suffix == ".onnx":
            out[rel] = _onnx_digest(path)
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_sources(root: Path) -> dict[str, Path]:
    from fixtures import tiny_models

    return {
        "hf": tiny_models.make_hf(root / "hf"),
        "tf1_checkpoint": tiny_models.make_tf1_checkpoint(root / "uncased_L-2_H-32_A-4")[0],
        "tf1_hub": tiny_models.make_tf1_hub_module(root / "tf1_hub")[0],
        "tf2_hub": tiny_models.make_tf2_hub_encoder(root / "tf2_hub"),
    }


def run_all(work: Path) -> dict[str, dict[str, str]]:
    sources = make_sources(work / "src")
    train = work / "train.tsv"
    train.write_text("\n".join(TINY_TRAIN) + "\n")
    edgebert = [sys.executable, "-m", "edgebert"]
    env = {**os.environ, "EDGEBERT_CACHE": str(work / "cache")}  # nothing reused from earlier runs
    digests = {}
    for name, source, args in EXPORTS:
        out = work / name
        argv = [a.format(train=train) for a in args]
        cmd = edgebert + argv[:1] + [str(sources[source])] + argv[1:] + ["-o", str(out)]
        print("$", " ".join(cmd[2:]), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        digests[name] = digest_tree(out)
    return digests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, help="write the digests here")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temporary one)")
    ap.add_argument("--rehash", type=Path, help="digest the bundles a --keep run left here again (no export)")
    ap.add_argument("--compare", type=Path, help="digests written before: report every difference")
    args = ap.parse_args()
    if args.rehash:
        digests = {
            d.name: digest_tree(d) for d in sorted(args.rehash.iterdir()) if d.name in {name for name, _, _ in EXPORTS}
        }
    elif args.keep:
        digests = run_all(args.keep)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            digests = run_all(Path(tmp))
    if args.output:
        args.output.write_text(json.dumps(digests, indent=1))
    if not args.compare:
        return 0
    before = json.loads(args.compare.read_text())
    changed = [
        f"{b}/{f}: {before.get(b, {}).get(f, 'absent')[:12]} -> {digests.get(b, {}).get(f, 'absent')[:12]}"
        for b in sorted(set(before) | set(digests))
        for f in sorted(set(before.get(b, {})) | set(digests.get(b, {})))
        if before.get(b, {}).get(f) != digests.get(b, {}).get(f)
    ]
    files = sum(len(v) for v in digests.values())
    print("\n".join(changed) if changed else f"all {files} files of {len(digests)} bundles identical")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
