"""Slow tier of the accuracy suite (`make test-slow`): every architecture of the catalog
(BERT-base, BERT-large, the 24 Small BERTs) with random weights and Google's uncased vocab,
exported fp32 and with the default int8 recipe in both formats, verified on 200 real
sentences against its reference."""

import json

import pytest

from edgebert.eval.text_files import read_texts
from edgebert.exporters.pipelines.export import ExportRequest, export
from edgebert.exporters.pipelines.verify import VerifyRequest, verify
from edgebert.hub import catalog
from edgebert.quantize import recipes
from fixtures import tiny_models

SHAPES = sorted({(m.layers, m.hidden, m.heads, m.intermediate) for m in catalog.filter_models(language="en")})


@pytest.mark.slow
@pytest.mark.parametrize("layers,hidden,heads,intermediate", SHAPES, ids=[f"L{s[0]}_H{s[1]}" for s in SHAPES])
def test_catalog_shape_exports_verify(layers, hidden, heads, intermediate, default_model_dir, sentiment_dir, tmp_path):
    src = tiny_models.make_hf(
        tmp_path / "src",
        hidden_act="gelu_new",
        vocab_file=default_model_dir / "vocab.txt",
        layers=layers,
        hidden=hidden,
        heads=heads,
        intermediate=intermediate,
        max_position=512,
    )
    texts, labels = read_texts(sentiment_dir / "movieReviewSnippets_GroundTruth.txt")
    texts, labels = texts[:-700:30][:200], labels[:-700:30][:200]
    results = {}
    for recipe in ("fp32", recipes.DEFAULT_INT8):
        out = tmp_path / recipe
        export(
            ExportRequest(
                source=str(src),
                source_label=f"L{layers}_H{hidden}",
                output=out,
                formats=("tflite", "onnx"),
                recipe=recipes.get(recipe),
                seq_length=None,
                allow_accuracy_loss=True,
            )
        )
        r = verify(VerifyRequest(bundle=out, texts=texts, labels=labels), progress=lambda m: None)
        results[recipe] = {
            f: (s["pooled_output"]["cosine"]["mean"], s["passed"], s["misses"]) for f, s in r["formats"].items()
        }
        for fmt, s in r["formats"].items():
            assert s["token_ids_match_reference"]
            if recipe == "fp32":
                assert s["passed"] and s["pooled_output"]["max_abs"] <= 1e-4, (fmt, s["misses"])
            else:
                assert not metrics_misses(s), (fmt, s["misses"])
    print(json.dumps(results))


def metrics_misses(stats):
    """The cosine gate only: a probe trained on random-weight embeddings says little."""
    return [m for m in stats["misses"] if "cosine" in m]
