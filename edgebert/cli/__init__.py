"""The ``edgebert`` command line. Export-side commands import TensorFlow only when run."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from edgebert.errors import EdgebertError

MODEL_COLUMNS = ("handle", "layers", "hidden", "heads", "intermediate", "casing", "language", "vocab_size", "format")


def _cmd_models(args: argparse.Namespace) -> int:
    import dataclasses

    from edgebert.hub import catalog

    filters = {"layers": "layers", "hidden": "hidden", "casing": "casing", "language": "language", "fmt": "format"}
    rows = catalog.filter_models(contains=args.grep, **{k: getattr(args, flag) for k, flag in filters.items()})
    if args.json:
        print(json.dumps([dataclasses.asdict(m) for m in rows], indent=1))
        return 0
    table = [MODEL_COLUMNS] + [tuple(str(getattr(m, c)) for c in MODEL_COLUMNS) for m in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(MODEL_COLUMNS))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"{len(rows)} models", file=sys.stderr)
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from edgebert.quantize import recipes

    if args.show:  # one recipe as a file of its own: the start of a custom recipe
        r = recipes.get(args.show).to_json()
        r.pop("path", None)
        print(
            json.dumps({**r, "name": f"my_{r['name']}" if args.show in recipes.all_recipes() else r["name"]}, indent=1)
        )
        return 0
    for r in recipes.all_recipes().values():
        t = r.thresholds
        print(
            f"{r.name:16s} {','.join(r.formats):12s} gate cos mean>={t['cosine_mean']} min>={t['cosine_min']}"
            f"  {r.description}"
        )
    return 0


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF raises real errors; its logs are noise here
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def _missing_extra(e: ImportError, purpose: str, extras: str) -> EdgebertError:
    return EdgebertError(
        f"{purpose} needs the {extras} extra ({e.name} is missing)", f"pip install 'edgebert[{extras}]'"
    )


@contextlib.contextmanager
def _export_side(purpose: str, extras: str = "export"):
    """Imports of the export side (TensorFlow's logs quieted first); a missing extra becomes an
    error that names the one to install."""
    _quiet_tensorflow()
    try:
        yield
    except ImportError as e:
        raise _missing_extra(e, purpose, extras) from None


def _source_and_label(args: argparse.Namespace) -> tuple[str, str]:
    """The SOURCE argument, or the embedded default model, and how to name it."""
    from edgebert.hub import default_model

    if args.source:
        return args.source, args.source
    return str(default_model.model_dir()), f"{default_model.NAME} (embedded default)"


def _cmd_export(args: argparse.Namespace) -> int:
    with _export_side("exporting"):
        from edgebert.exporters.pipelines.export import ExportRequest, export
        from edgebert.quantize import recipes

    if args.recipe and args.int8 and not recipes.get(args.recipe).int8:
        raise EdgebertError(
            f"--int8 asks for an int8 recipe but --recipe {args.recipe} is not one", "drop one of the two flags"
        )
    recipe = recipes.get(args.recipe or (recipes.DEFAULT_INT8 if args.int8 else recipes.DEFAULT_FLOAT))
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    for f in formats:
        if f not in ("tflite", "onnx"):
            raise EdgebertError(f"unknown format '{f}'", "use --format tflite,onnx")
    seq = args.seq_len
    buckets = None
    if "," in seq:  # length buckets: one static TFLite signature per length
        buckets = _seq_lengths(seq)
        seq_length = None
    else:
        seq_length = None if seq == "dynamic" else _positive_int(seq, "--seq-len")
    source, label = _source_and_label(args)
    req = ExportRequest(
        source=source,
        source_label=label,
        output=Path(args.output),
        formats=formats,
        recipe=recipe,
        seq_length=seq_length,
        buckets=buckets,
        calibration_file=Path(args.calibration) if args.calibration else None,
        allow_accuracy_loss=args.allow_accuracy_loss,
        onnx_graph=args.onnx_graph,
        batch_size=None if args.batch == "dynamic" else _positive_int(args.batch, "--batch", 1),
        graph_form=args.graph_form,
    )
    m = export(req)
    a = m.architecture
    print(f"bundle:    {req.output}")
    print(f"source:    {label} [{m.source['kind']}]")
    print(
        f"model:     L={a['num_layers']} H={a['hidden_size']} A={a['num_heads']} I={a['intermediate_size']} "
        f"vocab={a['vocab_size']} activation={a['activation']} do_lower_case={m.do_lower_case}"
    )
    print(f"reference: {m.reference['path']} (sha256 {m.reference['sha256'][:16]}...)")
    print(f"recipe:    {recipe.name}: {recipe.description}")
    for entry in m.models.values():
        acc = entry.accuracy
        gate = "passed" if entry.gate["passed"] else "FAILED (kept: --allow-accuracy-loss)"
        print(
            f"  {entry.file:13s} {entry.total_bytes / 1e6:7.1f} MB  cosine pooled {acc['pooled_output']['cosine']['mean']:.5f}"
            f"  mean-pooled {acc['mean_pooled']['cosine']['mean']:.5f}  gate {gate}"
        )
    if "tflite" in m.models and m.models["tflite"].gpu_compatibility:
        from edgebert.checks import gpu as gpu_compat

        print(f"  {gpu_compat.summary(m.models['tflite'].gpu_compatibility)}")
    if buckets:
        print(
            f"  tflite: one static signature per length bucket ({', '.join(f'seq_{n}' for n in buckets)}: "
            f"[{req.batch_size or 1}, n]); the runtime pads each batch to the shortest that holds it"
        )
    print(f"  inputs  int32 [batch, {seq_length or 'seq'}]: input_word_ids, input_mask, input_type_ids")
    print(
        f"  outputs pooled_output [batch, {a['hidden_size']}], sequence_output [batch, {seq_length or 'seq'}, "
        f"{a['hidden_size']}]"
        + (
            f", scores [batch, {m.head['units']}] ({m.head['activation']}; "
            f"labels {', '.join(m.labels or [])}: m.classify / m.scores)"
            if m.head
            else ""
        )
    )
    from edgebert.exporters.convert import costs

    print(f"cost:      {costs.summary(m.export_cost)}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    with _export_side("fine-tuning"):
        from edgebert.exporters.pipelines.finetune import FinetuneRequest, finetune

    source, label = _source_and_label(args)
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


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from edgebert.runtime.edge_model import load

    texts = list(args.texts)
    if not texts or texts == ["-"]:
        if sys.stdin.isatty() and not texts:
            raise EdgebertError("no texts given", 'pass texts as arguments, or lines on stdin (use "-")')
        texts = [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
        if not texts:
            raise EdgebertError("stdin held no non-empty lines", "pipe one sentence a line")
    if args.pairs:
        if len(texts) % 2:
            raise EdgebertError(
                f"--pairs needs an even number of texts, got {len(texts)}",
                "pass text and pair alternately (or TAB-separated lines on stdin)",
            )
        inputs = list(zip(texts[0::2], texts[1::2]))
    elif all("\t" in t for t in texts) and args.tab_pairs:
        inputs = [tuple(t.split("\t", 1)) for t in texts]
    else:
        inputs = texts
    device = dict(backend=args.backend, delegate=args.delegate, fallback=args.fallback, num_threads=args.threads)
    m = load(args.bundle, delegate_library=args.delegate_library, weight_cache=args.weight_cache, **device)
    # An embedder asset pools as it was built; an encoder bundle gives the pooled (cls) output.
    pooling = args.pooling or (m.info.pooling if "embedding" in m.outputs else None) or "cls"
    emb = m.embed(inputs, pooling=pooling, normalize=args.normalize)
    if args.json:
        json.dump(
            {
                "bundle": str(m.bundle),
                "backend": m.backend,
                "delegate": m.delegate.to_json(),
                "pooling": pooling,
                "normalized": args.normalize,
                "inputs": [list(t) if isinstance(t, tuple) else t for t in inputs],
                "embeddings": np.round(emb.astype(np.float64), 7).tolist(),
            },
            sys.stdout,
        )
        print()
        return 0
    print(f"{m.backend} on {m.delegate.summary()}, {pooling} pooling, dim {emb.shape[1]}", file=sys.stderr)
    for t, e in zip(inputs, emb):
        label = " || ".join(t) if isinstance(t, tuple) else t
        head = " ".join(f"{v:+.4f}" for v in e[:4])
        print(f"[{head} ...] |e|={np.linalg.norm(e):.4f}  {label[:60]}")
    if len(emb) > 1:
        unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        sim = unit @ unit.T
        np.fill_diagonal(sim, -2)
        i, j = np.unravel_index(int(sim.argmax()), sim.shape)
        print(f"most similar: {i} and {j} (cosine {sim[i, j]:.4f})")
    return 0


def _cmd_android(args: argparse.Namespace) -> int:
    with _export_side("writing android assets", "export,android"):
        from edgebert.exporters.pipelines.android import AndroidRequest, accuracy_line, build
    source, label = _source_and_label(args)
    if args.seq_len == "dynamic":
        raise EdgebertError(
            "Android assets need a fixed --seq-len (MediaPipe and the Task Library read it from the "
            "model's input shape)",
            "use --seq-len 128",
        )
    lengths = _seq_lengths(args.seq_len)
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


def _cmd_verify(args: argparse.Namespace) -> int:
    with _export_side("verify (it runs the reference SavedModel)"):
        from edgebert.eval.text_files import read_texts
        from edgebert.exporters.pipelines.verify import VerifyRequest, verify
    from edgebert.quantize import calibration

    if args.texts:
        texts, labels = read_texts(Path(args.texts), Path(args.labels) if args.labels else None)
    else:
        texts, labels = calibration.read_texts(None), None
    if args.limit:
        texts, labels = texts[: args.limit], (labels[: args.limit] if labels else None)
    formats = tuple(f.strip() for f in args.format.split(",")) if args.format else None
    out = Path(args.output) if args.output else Path(args.bundle) / "verify"
    report = verify(
        VerifyRequest(
            bundle=Path(args.bundle),
            texts=texts,
            labels=labels,
            reference=Path(args.reference) if args.reference else None,
            output=out,
            formats=formats,
            seq_length=args.seq_len,
        )
    )
    print(f"report: {out}/verify.md, verify.json, verify.png")
    for fmt, s in report["formats"].items():
        c, mp = s["pooled_output"]["cosine"], s["mean_pooled"]["cosine"]
        extra = f"  agreement {s['probe']['agreement']:.4f}" if "probe" in s else ""
        print(
            f"  {fmt:7s} cosine pooled {c['mean']:.5f} (min {c['min']:.5f})  mean-pooled {mp['mean']:.5f} "
            f"(min {mp['min']:.5f}){extra}  {'passed' if s['passed'] else 'FAILED: ' + '; '.join(s['misses'])}"
        )
    return 0 if report["passed"] else 2


def _seq_lengths(text: str) -> tuple[int, ...]:
    """``--seq-len 16,32,64``: each length checked as one ``--seq-len`` is."""
    return tuple(_positive_int(x.strip(), "--seq-len") for x in text.split(",") if x.strip())


def _positive_int(text: str, flag: str, least: int = 3) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < least:
        raise EdgebertError(
            f"{flag} must be an integer >= {least} or 'dynamic', got '{text}'", f"e.g. {flag} {128 if least > 1 else 1}"
        )
    return value


class _Parser(argparse.ArgumentParser):
    run_parser: argparse.ArgumentParser  # `run` re-parses its texts intermixed with the flags


def build_parser() -> _Parser:
    from edgebert.quantize import recipes  # plain data, no TensorFlow

    p = _Parser(prog="edgebert", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list the TF Hub BERT collection")
    m.add_argument("--layers", type=int, help="only models with this many layers")
    m.add_argument("--hidden", type=int, help="only models with this hidden size")
    m.add_argument("--casing", choices=["cased", "uncased"])
    m.add_argument("--language", choices=["en", "zh", "multi"])
    m.add_argument("--format", choices=["tf2_saved_model", "tf1_hub_module"])
    m.add_argument("--grep", help="only handles containing this text")
    m.add_argument("--json", action="store_true", help="print JSON instead of a table")
    m.set_defaults(func=_cmd_models)

    r = sub.add_parser("recipes", help="list the quantization recipes")
    r.add_argument(
        "--show",
        metavar="RECIPE",
        help="print one recipe as JSON, renamed my_RECIPE: edit it and pass the file to export --recipe",
    )
    r.set_defaults(func=_cmd_recipes)

    e = sub.add_parser("export", help="export a model to TFLite / ONNX (a bundle with vocab and manifest)")
    e.add_argument(
        "source",
        nargs="?",
        help="catalog handle (TF Hub or Kaggle Models), model directory or "
        "model archive (.tar.gz) downloaded by hand (default: the embedded all-MiniLM-L6-v2)",
    )
    e.add_argument("--int8", action="store_true", help="use the default int8 recipe (wi8_afp32)")
    e.add_argument(
        "--recipe",
        help="quantization recipe (see `edgebert recipes`), or a recipe file (FILE.json, from "
        "`edgebert recipes --show NAME`); default fp32",
    )
    e.add_argument("--format", default="tflite,onnx", help="comma-separated formats (default: %(default)s)")
    e.add_argument(
        "--seq-len",
        default="dynamic",
        help="'dynamic' (default: each batch runs at its longest sentence, up to the model's "
        "positions), a fixed length (Android, the GPU delegate), or length buckets such as "
        "16,32,64,128: one static TFLite signature per length, weights stored once, each batch "
        "run at the shortest that holds it (static-shape accelerators); ONNX stays dynamic",
    )
    e.add_argument(
        "--batch",
        default="dynamic",
        help="TFLite batch: 'dynamic' (default) or a fixed size; a fixed batch gives a static graph "
        "with no shape ops, as Android and the GPU delegate want",
    )
    e.add_argument(
        "--graph-form",
        default="gpu",
        choices=["gpu", "classic"],
        help="gpu (default): lookups spelled so the GPU delegate takes the whole graph; classic: "
        "2-D gathers and x[:, 0] (for comparison)",
    )
    e.add_argument(
        "--calibration",
        help="text file for calibration and the accuracy gate "
        "(one sentence a line, or id<TAB>score<TAB>text); default: the bundled corpus",
    )
    e.add_argument(
        "--allow-accuracy-loss",
        action="store_true",
        help="write the bundle even when the recipe's accuracy thresholds are missed",
    )
    e.add_argument(
        "--onnx-graph",
        choices=["fused", "standard"],
        help="fused: ONNX Runtime's fused operators (MultiHeadAttention or QAttention, "
        "BiasGelu/FastGelu, LayerNormalization), the default of fp32, fp16 and the per-row and "
        "block int8 recipes; standard: standard operators only (tf2onnx), for NPU execution "
        "providers such as NNAPI or QNN, the default of quantize_dynamic and static QDQ",
    )
    e.add_argument("-o", "--output", default="edgebert-out", help="bundle directory (default: %(default)s)")
    e.set_defaults(func=_cmd_export)

    f = sub.add_parser("finetune", help="fine-tune all of an encoder's parameters with a classification head (CPU)")
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
    f.set_defaults(func=_cmd_finetune)

    a = sub.add_parser(
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
    a.set_defaults(func=_cmd_android)

    v = sub.add_parser("verify", help="compare a bundle with its fp32 reference SavedModel (report + exit code)")
    v.add_argument("bundle", help="bundle directory")
    v.add_argument("--reference", help="reference SavedModel (default: the one in the bundle's manifest)")
    v.add_argument(
        "--texts",
        help="one sentence a line, or id<TAB>score<TAB>text (the score's sign gives labels); "
        "default: the bundled calibration corpus",
    )
    v.add_argument("--labels", help="one label a line, for the probe (with one-sentence-a-line texts)")
    v.add_argument("--limit", type=int, help="use only the first N sentences")
    v.add_argument("--format", help="formats to check (default: all in the bundle)")
    v.add_argument("--seq-len", type=int, default=128, help="tokenize to this length (default: %(default)s)")
    v.add_argument("-o", "--output", help="report directory (default: BUNDLE/verify)")
    v.set_defaults(func=_cmd_verify)

    r = sub.add_parser("run", prog="edgebert run", help="embed texts with a bundle (no TensorFlow needed)")
    r.add_argument("bundle", help="bundle directory written by `edgebert export`")
    r.add_argument("texts", nargs="*", help='texts (none or "-": one a line from stdin)')
    r.add_argument("--pairs", action="store_true", help="texts are text, pair, text, pair, ...")
    r.add_argument("--tab-pairs", action="store_true", help="stdin lines are text<TAB>pair")
    r.add_argument("--backend", default="auto", choices=["auto", "tflite", "onnx"])
    r.add_argument("--delegate", default="auto", choices=["auto", "cpu", "xnnpack", "gpu", "nnapi"])
    r.add_argument("--delegate-library", help="TFLite delegate .so for load_delegate")
    r.add_argument("--fallback", action="store_true", help="run on the CPU when the delegate is not there")
    r.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    r.add_argument(
        "--weight-cache",
        metavar="auto|FILE|:memory|off",
        default="auto",
        help="TFLite on the CPU: XNNPACK's packed weights in a cache file, built on the first run "
        "(default auto: in the edgebert cache; peak memory 1.4x an int8 BERT-base file instead of "
        "2.1x, same outputs); off: the LiteRT Interpreter",
    )
    r.add_argument(
        "--pooling", choices=["cls", "mean"], help="default: the pooling an embedder asset was built with, else cls"
    )
    r.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    r.add_argument("--json", action="store_true", help="print all embeddings as JSON")
    r.set_defaults(func=_cmd_run)
    p.run_parser = r
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        # Texts may come before or after the flags (argparse alone stops at the first flag).
        args = parser.run_parser.parse_intermixed_args(argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EdgebertError as e:
        print(f"edgebert: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgebert: interrupted; nothing was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
