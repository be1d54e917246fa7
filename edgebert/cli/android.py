"""The ``edgebert android`` command: MediaPipe / TFLite Task Library assets (TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebert.cli import common
from edgebert.errors import EdgebertError


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    from edgebert.quantize import recipes  # plain data, no TensorFlow

    a = subparsers.add_parser(
        "android", help="write MediaPipe / TFLite Task Library assets (model with metadata, vocab, labels)"
    )
    a.add_argument("source", nargs="?", help="catalog handle, model directory or bundle (default: the embedded model)")
    a.add_argument("--task", default="embedder", choices=["embedder", "classifier"])
    a.add_argument(
        "--train",
        help="labelled sentences (label<TAB>text, or id<TAB>score<TAB>text) to train the "
        "classifier head on frozen embeddings",
    )
    a.add_argument(
        "--head",
        help="a trained head (.npz with kernel [features, labels], bias [labels], "
        "optional labels, pooling, activation)",
    )
    a.add_argument("--labels", help="label names, one a line, in the head's output order")
    a.add_argument("--pooling", choices=["cls", "mean"], help="features for the embedding / head (default: mean)")
    a.add_argument(
        "--int8",
        nargs="?",
        const="dynamic",
        choices=list(recipes.INT8_KINDS),
        help="int8 asset: dynamic (the default int8 recipe, wi8_afp32: float activations, for the CPU), "
        "integer (wi8_ai8i16: every op int8 or int16, for NPU-style delegates; slow on the CPU) or a16w8 "
        "(wi8_ai16: every op int16 activations, int8 weights: what a fine-tuned classifier needs to keep "
        "its decisions integer-only)",
    )
    a.add_argument(
        "--seq-len",
        default="128",
        help="fixed sequence length (default: %(default)s), or lengths "
        "such as 16,32,64,128 for one asset per length (MediaPipe takes one signature)",
    )
    a.add_argument("--allow-accuracy-loss", action="store_true")
    a.add_argument("-o", "--output", default="assets", help="assets directory (default: %(default)s)")
    a.set_defaults(func=run)
    return a


def run(args: argparse.Namespace) -> int:
    with common.export_side("writing android assets", "export,android"):
        from edgebert.exporters.pipelines.android import AndroidRequest, accuracy_line, build
    source, label = common.source_and_label(args)
    if args.seq_len == "dynamic":
        raise EdgebertError(
            "Android assets need a fixed --seq-len (MediaPipe and the Task Library read it from the "
            "model's input shape)",
            "use --seq-len 128",
        )
    lengths = common.seq_lengths(args.seq_len)
    req = AndroidRequest(
        source=source,
        source_label=label,
        output=Path(args.output),
        task=args.task,
        labels_file=Path(args.labels) if args.labels else None,
        head_file=Path(args.head) if args.head else None,
        train_file=Path(args.train) if args.train else None,
        int8=args.int8 or False,
        seq_length=lengths[0],
        pooling=args.pooling,
        allow_accuracy_loss=args.allow_accuracy_loss,
    )
    if len(lengths) > 1:  # one asset per length bucket
        from edgebert.exporters.pipelines.android import build_buckets

        res = build_buckets(req, lengths)
        print(f"assets:  {args.output}/ ({', '.join(f'seq_{n}/' for n in lengths)}, buckets.json, README.md)")
        for n, m in res["assets"].items():
            entry = m.models["tflite"]
            print(
                f"  seq_{n}: [1, {n}], {entry.total_bytes / 1e6:.1f} MB, gate {'passed' if entry.gate['passed'] else 'FAILED'}"
            )
        return 0
    m = build(req)
    from edgebert.checks import gpu as gpu_compat

    entry = m.models["tflite"]
    print(
        f"assets:  {args.output}/ (model.tflite with metadata, vocab.txt{', labels.txt' if m.labels else ''}, "
        f"README.md, edgebert.json)"
    )
    print(
        f"task:    {m.task} ({m.pooling} pooling), recipe {m.recipe['name']}, [1, {m.seq_length}], "
        f"{entry.total_bytes / 1e6:.1f} MB"
    )
    if m.labels:
        print(f"labels:  {', '.join(m.labels)}")
    print(f"checked: {accuracy_line(entry.accuracy)}")
    print(f"         {gpu_compat.summary(entry.gpu_compatibility)}")
    return 0
