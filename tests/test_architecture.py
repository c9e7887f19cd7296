"""The engine's import graph: no circle, and no import running back up the layer order.

The layers, lowest first. A module belongs to the layer of the longest prefix that names it. A module may
import its own layer and the layers below; an import of a higher layer, or any circle of imports (lazy ones
inside functions included), fails here with the modules that make it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parents[1] / "engine"
PACKAGE = "infscene"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("infscene", "infscene.errors", "infscene.protocol", "infscene.progress", "infscene.console",
                    "infscene.checksums")),
    ("diffusion", ("infscene.diffusion",)),  # the method: schedule, grid, fusion, canvases, step loop, Executor
    # What a model folder is (the data contract every family's config has, its files, its checks, its format): read
    # by the raster layer (band scaling), the trainer (saving) and every family, so it sits below them all.
    ("model format", ("infscene.modelformat",)),
    ("raster", ("infscene.raster",)),
    ("training", ("infscene.training",)),  # the generic Trainer: families bring their objectives to it
    # The families and what their networks share (the scalar embedding, the fp32 / bf16 arithmetic).
    ("families", ("infscene.models", "infscene.models.family", "infscene.models.embedding", "infscene.models.precision",
                  "infscene.models.sr3", "infscene.models.e2diffsr")),
    ("registry", ("infscene.models.registry",)),  # the one module that lists the families
    ("execution", ("infscene.execution",)),
    ("iceplant", ("infscene.iceplant",)),
    ("plan and run", ("infscene.plan", "infscene.run", "infscene.quick_plan")),  # quick_plan: the torch-free checks
    ("serve", ("infscene.serve",)),  # the live tile layer: runs blocks through run.py, serves them over HTTP
    # The commands: `infscene` and its subcommands, in one folder.
    ("commands", ("infscene.commands", "infscene.__main__")),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted((ENGINE / PACKAGE).rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The engine modules `name` imports, wherever the import statement is (top level, function, TYPE_CHECKING)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def layer_of(name: str) -> int:
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if name == prefix or name.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return max(matches)[1]


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, set(found)) for name, path in found.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_no_import_runs_back_up_the_layers() -> None:
    edges = graph()
    upward = [f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for source, targets in sorted(edges.items()) for target in sorted(targets)
              if layer_of(target) > layer_of(source)]
    assert upward == []


def test_no_import_circle() -> None:
    assert circles(graph()) == []


def folder_of(name: str) -> str:
    """The sub-package of infscene a module is in (a module at the package's top is a node of its own)."""
    return ".".join(name.split(".")[:2])


def folder_graph() -> dict[str, set[str]]:
    """The import graph at folder scale: each sub-package one node, an arrow where any of its modules imports another's."""
    edges: dict[str, set[str]] = {}
    for source, targets in graph().items():
        edges.setdefault(folder_of(source), set()).update(folder_of(t) for t in targets if folder_of(t) != folder_of(source))
    return edges


def test_no_import_circle_between_folders() -> None:
    """Folders follow the layers: none imports a folder that imports it back (a command inside a lower folder, or the
    model format inside models/, made one)."""
    assert circles(folder_graph()) == []


def test_the_walk_sees_relative_absolute_and_lazy_imports(tmp_path: Path) -> None:
    """The walk would catch what it must: a relative import, an absolute one and one inside a function."""
    source = tmp_path / "probe.py"
    source.write_text("from ..errors import InfSceneError\nimport infscene.protocol\n"
                      "def f():\n    from .loop import SamplingJob\n")
    known = {"infscene.errors", "infscene.protocol", "infscene.diffusion.loop"}
    assert imported("infscene.diffusion.probe", source, known) == known
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("family", ["sr3", "e2diffsr"])
def test_no_generic_module_names_a_family(family: str) -> None:
    """Family names appear only in the families' own folders, the registry that lists them, the option table, which
    says which family takes an option (the plugin reads it there: it cannot ask the registry), and the model format's
    file names, which name the bundled default model's folder (resources/models/e2diffsr)."""
    allowed = (f"{PACKAGE}.models.{family}", f"{PACKAGE}.models.registry", f"{PACKAGE}.sr_options",
               f"{PACKAGE}.modelformat.files")
    leaks = []
    for name, path in modules().items():
        if name.startswith(allowed):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == family:
                leaks.append(f"{name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module and f".{family}" in f".{node.module}":
                leaks.append(f"{name}:{node.lineno} imports {node.module}")
    assert leaks == []


def summary() -> dict[str, int]:
    """The numbers the issue asks for (printed by `python tests/test_architecture.py`)."""
    edges = graph()
    arrows = [(s, t) for s, targets in edges.items() for t in targets]
    folders = folder_graph()
    return {"modules": len(edges), "layers": len(LAYERS), "arrows": len(arrows),
            "arrows up": sum(layer_of(t) > layer_of(s) for s, t in arrows), "circles": len(circles(edges)),
            "folders": len(folders), "folder arrows": sum(map(len, folders.values())), "folder circles": len(circles(folders))}


if __name__ == "__main__":
    print(summary())
