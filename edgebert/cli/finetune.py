"""The ``edgebert finetune`` command: a classifier fine-tuned on labelled sentences (TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgebert.cli import common


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    f = subparsers.add_parser(
        "finetune", help="fine-tune all of an encoder's parameters with a classification head (CPU)"
    )
    f.add_argument("source", nargs="?", help="catalog handle or model directory (default: the embedded model)")
    f.add_argument(
        "--train",
        required=True,
        help="labelled sentences: label<TAB>text, or id<TAB>score<TAB>text (the score's sign is the label)",
    )
    f.add_argument("--eval", help="held-out sentences in the same format (default: a random 20%% of --train)")
    f.add_argument("--epochs", type=int, default=3, help="at most this many epochs (default: %(default)s)")
    f.add_argument(
        "--patience",
        type=int,
        default=1,
        help="stop after this many epochs without a better held-out accuracy (default: %(default)s)",
    )
    f.add_argument("--batch-size", type=int, default=32, help="sentences per step (default: %(default)s)")
    f.add_argument("--learning-rate", type=float, default=5e-5, help="peak AdamW learning rate (default: %(default)s)")
    f.add_argument(
        "--seq-len",
        type=int,
        help="the preprocessing's packing length (default: the shortest of 32/64/128 that fits the training sentences)",
    )
    f.add_argument("--seed", type=int, default=0)
    f.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the frozen-embedding logistic-regression probe it is compared with",
    )
    f.add_argument("-o", "--output", default="finetuned", help="SavedModel directory (default: %(default)s)")
    f.set_defaults(func=run)
    return f


def run(args: argparse.Namespace) -> int:
    with common.export_side("fine-tuning"):
        from edgebert.exporters.pipelines.finetune import FinetuneRequest, finetune

    source, label = common.source_and_label(args)
    req = FinetuneRequest(
        source=source,
        source_label=label,
        train_file=Path(args.train),
        eval_file=Path(args.eval) if args.eval else None,
        output=Path(args.output),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        seq_length=args.seq_len,
        seed=args.seed,
        baseline=not args.no_baseline,
    )
    r = finetune(req)
    print(f"classifier: {req.output} (strings-in SavedModel, labels {', '.join(r['labels'])})")
    print(
        f"held-out accuracy: {r['held_out_accuracy']:.4f} on {r['held_out_sentences']} sentences "
        f"(best epoch {r['best_epoch']} of {r['epochs_run']}, {r['train_seconds']:.0f} s)"
    )
    if r["frozen_probe"]:
        p = r["frozen_probe"]
        print(f"frozen-embedding probe: {p['cls']['accuracy']:.4f} pooled, {p['mean']['accuracy']:.4f} mean-pooled")
    print(
        f"next: edgebert export {req.output} --int8 -o BUNDLE, or "
        f"edgebert android {req.output} --task classifier -o ASSETS"
    )
    return 0
