"""The import graph keeps the layers (docs/architecture.md): tools -> services -> runtime ->
contracts, no service reaching into another, nothing below tools/ importing it, no cycle.

Every module of the packages that pyproject.toml installs, and of tests/, is parsed (ast, not
imported) and every import in it counts: at the top, inside functions, and under
``if TYPE_CHECKING`` for the layer rules; for cycles only what runs when the module is
imported (an import inside a function runs later, a TYPE_CHECKING one never).
"""

import ast
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONTRACTS = "contracts"
RUNTIME = "relaydesk"
TOOLS = "tools"
SERVICES = frozenset(
    {
        "gateway",
        "agent_service",
        "history_service",
        "billing_service",
        "connectors",
        "outbound_webhooks",
    }
)
TESTS = "tests"
# A service may use another's modules only as a library it runs: the admin service
# (agent_service/admin/) runs the outbound webhook dispatcher.
SERVICE_LIBRARIES = frozenset({("agent_service", "outbound_webhooks")})


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. gateway.routes.admin
    imported: str  # the module of ours it names (the package when a name is not a module)
    line: int
    eager: bool  # runs when the importer is imported (top level, not under TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} (line {self.line})"


def _installed_packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return [pattern.removesuffix("*") for pattern in patterns]


@cache
def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in [*_installed_packages(), TESTS]:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _ours(name: str) -> str | None:
    """The longest module of ours that ``name`` is or lies in (None for other libraries)."""
    modules = _modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_in(module: str, path: Path) -> Iterator[Import]:
    is_package = path.name == "__init__.py"

    def targets(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
            return
        base = node.module or ""
        if node.level:  # relative: resolved against the importing package
            package = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        for alias in node.names:
            yield f"{base}.{alias.name}"  # a submodule, or a name defined in ``base``

    def visit(node: ast.AST, eager: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in targets(node):
                imported = _ours(target)
                if imported is not None and imported != module:
                    yield Import(module, imported, node.lineno, eager)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, False)
            for child in node.orelse:
                yield from visit(child, eager)
            return
        deferred = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, eager and not deferred)

    yield from visit(ast.parse(path.read_text(), filename=str(path)), True)


@cache
def _graph() -> tuple[Import, ...]:
    return tuple(
        found for module, path in _modules().items() for found in _imports_in(module, path)
    )


def _top(module: str) -> str:
    return module.partition(".")[0]


def _violations(allowed: Callable[[str, str], bool]) -> list[str]:
    return sorted(
        str(found) for found in _graph() if not allowed(_top(found.importer), _top(found.imported))
    )


def test_every_installed_package_has_a_layer() -> None:
    known = {CONTRACTS, RUNTIME, TOOLS, *SERVICES}
    assert set(_installed_packages()) == known, (
        "pyproject.toml installs a package this test does not place in a layer: add it above"
    )
    assert len(_graph()) > 500, "the parser found implausibly few imports"


def test_contracts_import_nothing_above_them() -> None:
    assert _violations(lambda src, dst: src != CONTRACTS or dst == CONTRACTS) == []


def test_the_runtime_imports_only_contracts_and_itself() -> None:
    assert _violations(lambda src, dst: src != RUNTIME or dst in {CONTRACTS, RUNTIME}) == []


def _service_may_import(src: str, dst: str) -> bool:
    if src not in SERVICES:
        return True
    return dst in {CONTRACTS, RUNTIME, src} or (src, dst) in SERVICE_LIBRARIES


def test_no_service_imports_another_services_modules() -> None:
    crossing = [e for e in _graph() if not _service_may_import(_top(e.importer), _top(e.imported))]
    assert [str(e) for e in crossing] == []


def test_only_tools_and_tests_import_tools() -> None:
    assert _violations(lambda src, dst: dst != TOOLS or src in {TOOLS, TESTS}) == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    edges: dict[str, set[str]] = {module: set() for module in _modules()}
    for found in _graph():
        if found.eager:
            edges[found.importer].add(found.imported)
    assert _cycles(edges) == []
