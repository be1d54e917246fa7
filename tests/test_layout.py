"""The dependency order the folders show, checked on every import statement (also those inside
functions): a module imports only from its own layer or the layers below it, and never a
private name of another module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Folder -> installed package; the order is the layering, bottom first.
LAYERS = [
    ("edgebert", "edgebert"),  # device side: runtime, tokenizer, bundle, model description
    ("quantize", "edgebert.quantize"),  # recipes and the transforms that apply them
    ("exporters/sources", "edgebert.exporters.sources"),  # five source formats -> SourceModel
    ("exporters/convert", "edgebert.exporters.convert"),  # reference, TFLite, ONNX, workers
    ("exporters/pipelines", "edgebert.exporters.pipelines"),  # export, verify, android, finetune
]
# The CLI is the user's entry point: it dispatches to the pipelines (inside its commands, so
# that importing it stays TensorFlow-free), so it sits above them.
TOP = {"edgebert.cli", "edgebert.__main__"}


def _layer_of(module: str) -> int:
    if module in TOP:
        return len(LAYERS)
    best = -1
    for i, (_, pkg) in enumerate(LAYERS):
        if module == pkg or module.startswith(pkg + "."):
            best = max(best, i)  # the most specific package wins (edgebert.quantize over edgebert)
    return best


def _modules():
    for folder, pkg in LAYERS:
        for path in sorted((ROOT / folder).glob("*.py")):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            yield name, path
    for path in sorted((ROOT / "edgebert/model").glob("*.py")):
        yield ("edgebert.model" if path.stem == "__init__" else f"edgebert.model.{path.stem}"), path


def _imports(path: Path):
    """(module imported, names taken from it, line) for every import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, [a.name for a in node.names], node.lineno


MODULES = dict(_modules())


def test_layers_cover_every_module():
    assert len(MODULES) > 40
    assert all(_layer_of(m) >= 0 for m in MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    own = _layer_of(module)
    upward = [
        f"line {line}: {target} (layer {_layer_of(target)} > {own})"
        for target, _, line in _imports(MODULES[module])
        if target.startswith("edgebert") and _layer_of(target) > own
    ]
    assert not upward, f"{module} imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_modules(module):
    private = [
        f"line {line}: {target}.{name}"
        for target, names, line in _imports(MODULES[module])
        if target.startswith("edgebert") and target != module
        for name in names
        if name.startswith("_")
    ]
    assert not private, f"{module} takes private names of other modules: {private}"


def test_quantize_never_imports_the_exporters():
    """The cycle the redesign removed: quantize/ below exporters/, not beside it."""
    for module, path in MODULES.items():
        if module.startswith("edgebert.quantize"):
            assert not [t for t, _, _ in _imports(path) if t.startswith("edgebert.exporters")], module


def test_layer_of_takes_the_most_specific_package():
    assert _layer_of("edgebert.runtime") == 0 and _layer_of("edgebert.model.config") == 0
    assert _layer_of("edgebert.quantize.recipes") == 1
    assert _layer_of("edgebert.exporters.pipelines.verify") == 4
    assert _layer_of("edgebert.cli") == len(LAYERS)
    assert _layer_of("numpy") == -1
