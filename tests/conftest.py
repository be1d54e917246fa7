import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, str(Path(__file__).parent))

from fixtures import cache  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SENTIMENT_DIR = ROOT / "tests" / "data" / "sentiment"


# Tiny sources (a few hundred KB) are exported dozens of times a run: one worker process
# serves all of them (the start-up, TensorFlow's import, is paid once). The default model
# (90 MB) keeps a fresh worker per export, so its recorded step peaks stay its own.
WARM_WORKER_MAX_SOURCE_BYTES = 20e6


def require(condition: bool, what: str, how_to_install: str) -> None:
    """A test's need for a tool the project installs (``make test`` installs them all): where it
    is missing the test skips and says how to install it; under CI (``$CI`` set) it fails, since
    there a missing tool is a broken setup, not a reason to skip. ``what`` names the tool,
    ``how_to_install`` the command. Call it in a test or fixture (an autouse module fixture for a
    whole file), not at import: a failure while collecting would stop the whole run."""
    if condition:
        return
    why = f"{what} is not available here: {how_to_install}"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI runs every test, but {why}", pytrace=False)
    pytest.skip(why)


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session", autouse=True)
def _warm_worker_for_tiny_sources():
    from edgebert.exporters.convert import workers

    with workers.warm(WARM_WORKER_MAX_SOURCE_BYTES):
        yield


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def hf_tiny(tiny_dir):
    from fixtures import tiny_models

    return tiny_models.make_hf(tiny_dir / "hf")


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory):
    """The tiny model (2 layers) as the TFLite files the static delegate checks read: {name: path}."""
    from fixtures import exports

    return exports.tiny_tflite_files(
        tmp_path_factory.mktemp("tiny_tflite"),
        {
            "fp32": ("fp32", 16, 1),
            "fp32_dynamic": ("fp32", None, None),
            "dynamic_range": ("wi8_afp32_naive", 16, 1),
            "full_int8": ("wi8_ai8", 16, 1),
            "a16w8": ("wi8_ai16", 16, 1),
        },
    )


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
    from edgebert.hub import default_model

    return default_model.model_dir()


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One edgebert cache for the tests that export or verify the default model: references and
    verify's reference outputs are stored by content, so the default model is imported once per run."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture
def in_shared_cache(shared_cache, monkeypatch):
    """A test that works in the shared cache (after the autouse isolated one)."""
    monkeypatch.setenv("EDGEBERT_CACHE", str(shared_cache))
    return shared_cache


@pytest.fixture(scope="session")
def default_bundles(tmp_path_factory, default_model_dir, shared_cache):
    """The default model exported once per run (both formats): fp32 at fixed length 128, and
    the default int8 recipe with a dynamic sequence axis. {recipe: (bundle dir, manifest JSON)}."""
    from edgebert.exporters.pipelines.export import ExportRequest, export
    from edgebert.quantize import recipes

    root = tmp_path_factory.mktemp("default")
    out = {}
    with cache.using(shared_cache):
        for recipe, seq in (("fp32", 128), ("wi8_afp32", None)):
            req = ExportRequest(
                source=str(default_model_dir),
                source_label="default",
                output=root / recipe,
                formats=("tflite", "onnx"),
                recipe=recipes.get(recipe),
                seq_length=seq,
            )
            out[recipe] = (root / recipe, export(req).to_json())
    return out


@pytest.fixture(scope="session")
def sentiment_dir():
    if not (SENTIMENT_DIR / "movieReviewSnippets_GroundTruth.txt").exists():
        require(False, f"the real sentences ({SENTIMENT_DIR})", "they are committed: check out tests/data/sentiment")
    return SENTIMENT_DIR


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # Never touch the user's cache or the real hubs from tests.
    monkeypatch.setenv("EDGEBERT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEBERT_HUB_MIRROR", "http://127.0.0.1:9")
    monkeypatch.setenv("EDGEBERT_RETRY_BASE_S", "0.001")  # retries back off in milliseconds


@pytest.fixture
def hub(archive, monkeypatch):
    """The loopback hub (tests/hub_server.py) serving the test module's own ``archive`` fixture,
    with ``$EDGEBERT_HUB_MIRROR`` pointing at it."""
    from hub_server import HubServer

    with HubServer(archive) as server:
        monkeypatch.setenv("EDGEBERT_HUB_MIRROR", server.url)
        yield server
