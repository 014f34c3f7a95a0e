"""The package's layering, read from the source with `ast`: media I/O is a floor below data and
inference, no import cycle between modules (imports inside functions and under TYPE_CHECKING count),
and no file too long to read."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "esrgan"
MAX_LINES = 450


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `package` (a package is its __init__)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its file.

    `from a.b import c` is an edge to `a.b.c` when that is a module, else to `a.b` (whose __init__ runs);
    relative imports are resolved; third-party and standard-library imports are left out.
    """
    modules = module_files(package)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        graph[name] = {m for t in targets if (m := known(t)) is not None and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def imports_from(graph: dict[str, set[str]], layer: str, forbidden: str) -> list[str]:
    """`module -> target` for each import of `forbidden` (a package) by a module of `layer`."""
    return [
        f"{m} -> {t}"
        for m, targets in sorted(graph.items())
        if m == layer or m.startswith(layer + ".")
        for t in sorted(targets)
        if t == forbidden or t.startswith(forbidden + ".")
    ]


GRAPH = import_graph(PACKAGE)


def test_data_and_io_never_import_inference() -> None:
    assert imports_from(GRAPH, "esrgan.data", "esrgan.inference") == []
    assert imports_from(GRAPH, "esrgan.io", "esrgan.inference") == []


def test_io_is_a_floor_below_everything_but_utils() -> None:
    above = [f"{m} -> {t}" for m in GRAPH if m.startswith("esrgan.io") for t in GRAPH[m]]
    assert [e for e in above if not e.split(" -> ")[1].startswith(("esrgan.io", "esrgan.utils"))] == []


def test_the_readers_of_image_files_import_esrgan_io() -> None:
    for user in (
        "esrgan.data.cache",
        "esrgan.data.benchmarks",
        "esrgan.inference.batch",
        "esrgan.serving.imaging",
    ):
        assert "esrgan.io" in GRAPH[user], user


def test_no_import_cycle() -> None:
    assert cycles(GRAPH) == []


def test_no_file_over_the_limit() -> None:
    lengths = {
        p.relative_to(PACKAGE).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert too_long == {}


def test_the_checks_see_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    # A tiny package with the two kinds of cycle this project had: one through an import inside a
    # function, one through an import under TYPE_CHECKING; and a data module reaching up into inference.
    pkg = tmp_path / "esrgan"
    for folder in ("", "data", "inference", "training"):
        (pkg / folder).mkdir(exist_ok=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "inference" / "export.py").write_text("def f():\n    from esrgan.inference.int8 import q\n")
    (pkg / "inference" / "int8.py").write_text("from .export import f\n")
    (pkg / "training" / "checkpoint.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from esrgan.training.stage import Stage\n"
    )
    (pkg / "training" / "stage.py").write_text("from esrgan.training import checkpoint\n")
    (pkg / "data" / "cache.py").write_text("from esrgan.inference.export import f\n")
    graph = import_graph(pkg)
    assert cycles(graph) == [
        ["esrgan.inference.export", "esrgan.inference.int8"],
        ["esrgan.training.checkpoint", "esrgan.training.stage"],
    ]
    assert imports_from(graph, "esrgan.data", "esrgan.inference") == [
        "esrgan.data.cache -> esrgan.inference.export"
    ]
