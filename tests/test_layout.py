"""The dependency order the folders show, checked on every import statement (also those inside
functions): a module imports only from its own tier or the tiers below it, and never a private
name of another module. Every package is a folder; its tier is its place in ``TIERS``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tiers, bottom first: each a set of installed packages (the most specific package of a module
# decides). Packages in one tier may import each other; nothing imports upward.
TIERS: list[tuple[str, ...]] = [
    ("edgebert",),  # errors, atomic files, cache paths, the package's public facade
    ("edgebert.model", "edgebert.formats", "edgebert.tokenizer", "edgebert.eval"),  # data, file readers
    ("edgebert.hub", "edgebert.checks"),  # where models come from; static accelerator checks
    ("edgebert.runtime",),  # device side: model, runners, delegates
    ("edgebert.quantize",),  # recipes and the transforms that apply them
    ("edgebert.exporters", "edgebert.exporters.sources"),  # five source formats -> SourceModel
    ("edgebert.exporters.convert",),  # reference, TFLite, ONNX, workers
    ("edgebert.exporters.pipelines",),  # export, verify, android, finetune
    ("edgebert.cli",),  # the user's entry point: one module per command
]
# Installed package -> folder (the export side is installed under edgebert through package-dir).
FOLDERS = {"edgebert.quantize": ROOT / "quantize", "edgebert.exporters": ROOT / "exporters"}


def _layer_of(module: str) -> int:
    best, best_len = -1, -1
    for i, tier in enumerate(TIERS):
        for pkg in tier:
            if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > best_len:
                best, best_len = i, len(pkg)  # the most specific package wins
    return best


def _folder_of(pkg: str) -> Path:
    for top, folder in FOLDERS.items():
        if pkg == top or pkg.startswith(top + "."):
            return folder.joinpath(*pkg[len(top) + 1 :].split(".")) if pkg != top else folder
    return ROOT.joinpath(*pkg.split("."))


def _modules():
    for tier in TIERS:
        for pkg in tier:
            for path in sorted(_folder_of(pkg).glob("*.py")):
                yield (pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"), path


def _imports(path: Path):
    """(module imported, names taken from it, line) for every import in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, [a.name for a in node.names], node.lineno


MODULES = dict(_modules())


def test_tiers_cover_every_package_folder():
    """A new sub-package must be given a tier: every folder with an __init__.py is listed."""
    listed = {_folder_of(pkg) for tier in TIERS for pkg in tier}
    on_disk = {p.parent for top in ("edgebert", "quantize", "exporters") for p in (ROOT / top).rglob("__init__.py")}
    assert on_disk - listed == set(), f"folders without a tier: {sorted(on_disk - listed)}"
    assert len(MODULES) > 60


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    own = _layer_of(module)
    # A package's __init__ and __main__ are its entry points: they may reach into its own
    # sub-packages (the public facade re-exports them; ``python -m edgebert`` runs the CLI).
    entry = MODULES[module].name in ("__init__.py", "__main__.py")
    facade = module.removesuffix(".__main__") if entry else None
    upward = [
        f"line {line}: {target} (tier {_layer_of(target)} > {own})"
        for target, _, line in _imports(MODULES[module])
        if target.startswith("edgebert")
        and _layer_of(target) > own
        and not (facade and target.startswith(facade + "."))
    ]
    assert not upward, f"{module} imports from a higher tier: {upward}"


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


def test_the_device_side_never_imports_the_export_side():
    """runtime/ and what it stands on never import the export side (TensorFlow appears there only
    as the last fallback interpreter, which test_runtime's import check covers)."""
    device = [m for m in MODULES if _layer_of(m) <= _layer_of("edgebert.runtime")]
    for module in device:
        bad = [t for t, _, _ in _imports(MODULES[module]) if t.startswith(("edgebert.exporters", "edgebert.quantize"))]
        assert not bad, f"{module}: {bad}"


def test_layer_of_takes_the_most_specific_package():
    assert _layer_of("edgebert.errors") == 0 and _layer_of("edgebert.model.config") == 1
    assert _layer_of("edgebert.runtime.edge_model") == 3 > _layer_of("edgebert.checks.gpu") == 2
    assert _layer_of("edgebert.quantize.recipes") == 4
    assert _layer_of("edgebert.exporters.pipelines.verify") == 7
    assert _layer_of("edgebert.cli") == len(TIERS) - 1
    assert _layer_of("numpy") == -1


def test_the_wheel_lists_every_package_and_ships_py_typed():
    """setuptools installs only the packages pyproject.toml lists: a new sub-package missing there
    imports in the editable checkout and is absent from the wheel. ``py.typed`` makes users' type
    checkers read edgebert's annotations (PEP 561)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = {_folder_of(pkg) for pkg in project["packages"]}
    on_disk = {p.parent for top in ("edgebert", "quantize", "exporters") for p in (ROOT / top).rglob("__init__.py")}
    assert listed == on_disk, f"pyproject.toml packages differ from the folders: {sorted(listed ^ on_disk)}"
    assert "py.typed" in project["package-data"]["edgebert"] and (ROOT / "edgebert/py.typed").is_file()
