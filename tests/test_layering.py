"""The import layering that docs/architecture.md declares, read from the source.

Every `ranklist.*` import counts, at module level and inside functions (a function-level import is
still a dependency); only `if TYPE_CHECKING:` blocks are left out. No two modules may import each
other, directly or round a longer loop.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "ranklist"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# The top-level modules every package may use.
BASE_MODULES = {"atomic", "collectives", "compiling", "errors", "unit_rows"}

# Which packages each package may import (besides itself). `ranklist` is the package's own
# `__init__` (the public loss), `__main__` belongs to the command line.
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "data": {"base"},
    "models": {"base", "data"},
    "losses": {"base"},
    "evaluation": {"base", "data", "models"},
    "retrieval": {"base", "data", "models", "evaluation"},
    "reporting": {"base", "data", "models", "losses", "evaluation"},
    "training": {"base", "data", "models", "losses", "evaluation", "reporting"},
    "export": {"base", "data", "models"},
    "serving": {"base", "data", "models", "retrieval", "export"},
    "tuning": {"base", "data", "models", "losses", "evaluation", "reporting", "training"},
    "cli": {
        "base",
        "data",
        "models",
        "losses",
        "evaluation",
        "retrieval",
        "reporting",
        "training",
        "export",
        "serving",
        "tuning",
    },
    "ranklist": {"losses"},
}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int
    module_level: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "ranklist"
    if parts[1] in BASE_MODULES:
        return "base"
    return "cli" if parts[1] == "__main__" else parts[1]


def is_module(name: str) -> bool:
    path = SOURCE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_package(name: str) -> bool:
    return (SOURCE.parent.joinpath(*name.split(".")) / "__init__.py").is_file()


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def targets(node: ast.Import | ast.ImportFrom, source: str) -> list[str]:
    """The ranklist modules one import statement loads (`from ranklist import errors` loads a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "ranklist"]
    base = node.module or ""
    if node.level:  # relative: from the importing module's package, one level up per extra dot
        package = source.split(".") if is_package(source) else source.split(".")[:-1]
        base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
    if base.split(".")[0] != "ranklist":
        return []
    found = [f"{base}.{alias.name}" for alias in node.names if is_module(f"{base}.{alias.name}")]
    return found or [base]


def imports_of(path: Path) -> list[Import]:
    source = module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child, module_level)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend(Import(source, target, node.lineno, module_level) for target in targets(node, source))
        inner = module_level and not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(), filename=str(path)), True)
    return found


def all_imports() -> list[Import]:
    return [found for path in sorted(SOURCE.rglob("*.py")) for found in imports_of(path)]


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in sorted(graph.get(node, ())):
            if neighbour not in index:
                connect(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_scan_sees_the_imports():
    imports = all_imports()
    sources = {found.source for found in imports}
    assert "ranklist.cli.index" in sources and "ranklist.losses.registry" in sources
    assert any(not found.module_level for found in imports), "function-level imports are read too"
    assert {package_of(found.source) for found in imports} <= set(MAY_IMPORT)


def test_every_import_obeys_the_declared_layering():
    wrong = [
        f"{found.source}:{found.line} imports {found.target}{'' if found.module_level else ' (in a function)'}: "
        f"{package_of(found.source)} may not import {package_of(found.target)}"
        for found in all_imports()
        if package_of(found.target) != package_of(found.source)
        and package_of(found.target) not in MAY_IMPORT[package_of(found.source)]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_declared_layering_has_no_cycle():
    graph = {package: allowed - {package} for package, allowed in MAY_IMPORT.items()}
    assert strongly_connected(graph) == []


def test_no_import_cycle_between_modules():
    """Function-level imports count too: one that closes a cycle only hides it from the interpreter."""
    graph: dict[str, set[str]] = {}
    for found in all_imports():
        if found.target != found.source:
            graph.setdefault(found.source, set()).add(found.target)
    cycles = strongly_connected(graph)
    assert not cycles, "modules importing each other: " + "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_architecture_md_shows_the_same_table():
    """docs/architecture.md's table: | package | may import | with the packages in backticks."""
    rows = re.findall(r"^\| `([a-z_]+)` \| (.*) \|$", ARCHITECTURE.read_text(), flags=re.MULTILINE)
    documented = {package: set(re.findall(r"`([a-z_]+)`", allowed)) for package, allowed in rows}
    assert documented == MAY_IMPORT
