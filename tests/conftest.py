import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
SENTIMENT_DIR = ROOT.parent / "shared" / "data" / "sentiment"


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def hf_tiny(tiny_dir):
    from fixtures import tiny_models
    return tiny_models.make_hf(tiny_dir / "hf")


@pytest.fixture(scope="session")
def tf1_checkpoint_tiny(tiny_dir):
    """(directory, the TF1 graph's own outputs on tiny_models.token_inputs())."""
    from fixtures import tiny_models
    return tiny_models.make_tf1_checkpoint(tiny_dir / "uncased_L-2_H-32_A-4")


@pytest.fixture(scope="session")
def tf1_hub_tiny(tiny_dir):
    from fixtures import tiny_models
    return tiny_models.make_tf1_hub_module(tiny_dir / "tf1_hub")


@pytest.fixture(scope="session")
def tf2_hub_tiny(tiny_dir):
    from fixtures import tiny_models
    return tiny_models.make_tf2_hub_encoder(tiny_dir / "tf2_hub")


@pytest.fixture(scope="session")
def default_model_dir():
    from edgebert import default_model
    return default_model.model_dir()


@pytest.fixture(scope="session")
def default_bundles(tmp_path_factory, default_model_dir):
    """The default model exported once per run (both formats): fp32 at fixed length 128, and
    the default int8 recipe with a dynamic sequence axis. {recipe: (bundle dir, manifest)}."""
    from edgebert.exporters.export import ExportRequest, export
    from edgebert.quantize import recipes

    root = tmp_path_factory.mktemp("default")
    saved = os.environ.get("EDGEBERT_CACHE")
    os.environ["EDGEBERT_CACHE"] = str(root / "cache")  # the references must outlive one test's cache
    try:
        out = {}
        for recipe, seq in (("fp32", 128), ("wi8_afp32", None)):
            req = ExportRequest(source=str(default_model_dir), source_label="default", output=root / recipe,
                                formats=("tflite", "onnx"), recipe=recipes.get(recipe), seq_length=seq)
            out[recipe] = (root / recipe, export(req))
        return out
    finally:
        if saved is None:
            os.environ.pop("EDGEBERT_CACHE", None)
        else:
            os.environ["EDGEBERT_CACHE"] = saved


@pytest.fixture(scope="session")
def sentiment_dir():
    if not (SENTIMENT_DIR / "movieReviewSnippets_GroundTruth.txt").exists():
        pytest.skip(f"real sentences not found at {SENTIMENT_DIR} (shared/data/sentiment is missing)")
    return SENTIMENT_DIR


# Shared, expensive fixtures (the default model's exports) are made once per xdist worker:
# every test that uses them goes to one worker, and each module's tests stay together so
# module-scoped fixtures are not built twice (`make test` runs `pytest -n 2 --dist loadgroup`).
SHARED_GROUPS = ("default_bundles",)


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        group = next((f for f in SHARED_GROUPS if f in getattr(item, "fixturenames", ())), None)
        item.add_marker(pytest.mark.xdist_group(group or item.module.__name__))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # Never touch the user's cache or the real hubs from tests.
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEBERT_HUB_MIRROR", "http://127.0.0.1:9")
    monkeypatch.setenv("EDGEBERT_RETRY_BASE_S", "0.001")  # retries back off in milliseconds
