"""The package's layers (docs/architecture.md): imports point down, or sideways inside one
subpackage; never up, never in a circle; another subpackage is reached through its ``__init__``;
the engine never imports napari or Qt; importing the package is light."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import napari_dendrite_panoptic as pkg

P = pkg.__name__
ROOT = Path(pkg.__file__).parent

# unit (a subpackage, or a top-level module) -> layer; a unit imports lower layers only. The
# package's own __init__, errors and the triton guard are below every layer.
LAYERS = {
    "": -1,
    "errors": -1,
    "_triton_guard": -1,
    "core": 0,
    "io": 1,
    "models": 1,
    "data": 2,
    "inference": 2,
    "evaluation": 3,
    "analysis": 3,
    "training": 4,
    "tracking": 4,
    "cli": 5,
    "_widgets": 5,
    "_reader": 5,
    "_writer": 5,
    "_sample_data": 5,
}
# napari's entry points (npe2 paths) and the docks are one unit: the GUI
GUI = {"_widgets", "_reader", "_writer", "_sample_data"}
GUI_LIBRARIES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")


def _modules() -> dict[str, Path]:
    """Every module of the package, by its name below the package ('' = the package)."""
    found = {"": ROOT / "__init__.py"}
    for info in pkgutil.walk_packages(pkg.__path__, prefix=P + "."):
        name = info.name[len(P) + 1 :]
        path = ROOT.joinpath(*name.split("."))
        found[name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return found


MODULES = _modules()


def _unit(name: str) -> str:
    top = name.split(".")[0]
    return "gui" if top in GUI else top


def _imports(name: str, path: Path) -> set[str]:
    """Modules of the package that `name` imports anywhere in its code (lazy imports too)."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if name else []
    base_pkg = here if is_pkg else here[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = base_pkg[: len(base_pkg) - node.level + 1]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            elif node.module and node.module.split(".")[0] == P:
                target = node.module[len(P) + 1 :]
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                out.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == P:
                    out.add(alias.name[len(P) + 1 :])
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_every_unit_has_a_layer():
    assert {name.split(".")[0] for name in MODULES} <= set(LAYERS)


def test_imports_point_down_or_stay_inside_their_subpackage():
    wrong = []
    for name, targets in GRAPH.items():
        for target in targets:
            a, b = name.split(".")[0], target.split(".")[0]
            if _unit(name) != _unit(target) and not LAYERS[b] < LAYERS[a]:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_other_subpackages_are_reached_through_their_init():
    # from another unit, only a package (its __init__: data, data.synthetic) is imported
    wrong = []
    for name, targets in GRAPH.items():
        for target in targets:
            top = target.split(".")[0]
            is_package = MODULES[target].name == "__init__.py"
            inner = MODULES[top].name == "__init__.py" and not is_package
            if _unit(name) != _unit(target) and inner:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_no_import_circles():
    # every module's imports, with a package standing for what its __init__ imports
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt == node or (MODULES[node].name == "__init__.py" and nxt == node):
                continue
            if state.get(nxt) == 1:
                circles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_the_engine_imports_neither_napari_nor_qt():
    engine = [
        f"{P}.{name}" if name else P
        for name in MODULES
        if _unit(name) != "gui" and not name.endswith("__main__")
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {engine!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {GUI_LIBRARIES!r}]\n"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert len(engine) > 40
    assert out.stdout.strip() == ""


def test_importing_the_package_is_light():
    code = f"import sys, {P}\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
