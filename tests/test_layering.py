"""The packages' layering, checked on the source with `ast` (docs/architecture.md).

schemas sits at the bottom, the broker knows no roles, algorithms, networks and environments
know no broker, only cli wires everything together, and no modules import each other in a
cycle. Every import counts: at module top and inside functions, `import x`, `from x import y`
(relative ones resolved; `y` counts when `x.y` is a module) and `importlib.import_module("x")`
with a literal name. Imports under `if TYPE_CHECKING:` count for the layering rules but not
for cycles, since they never run. Python runs a package's `__init__` before its submodules,
but that does not count as an import: an `__init__` re-exporting a submodule closes no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGES = ("schemas", "broker", "actors", "web", "cli", "configs")


class Import(NamedTuple):
    importer: str
    target: str
    path: Path
    line: int
    type_checking: bool

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.importer} imports {self.target}"


class Source(NamedTuple):
    modules: dict[str, Path]  # dotted name -> file, relative to the root
    imports: list[Import]  # of one module of `modules` by another


def module_names(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path.relative_to(root)
    return modules


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module that defines what `import name` binds, or None outside the scanned packages."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def literal_import_module(node: ast.AST) -> str | None:
    """The name in `importlib.import_module("name")`, when it is a literal."""
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def targets(node: ast.AST, package: list[str], modules: dict[str, Path]) -> Iterator[str | None]:
    """The modules that `node` imports, if it is an import; `package` resolves relative ones."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield resolve(alias.name, modules)
    elif isinstance(node, ast.ImportFrom):
        base = package[: len(package) - node.level + 1] if node.level else []
        base = ".".join([*base, *([node.module] if node.module else [])])
        for alias in node.names:
            # `from pkg import name` imports the module pkg.name if there is one, else pkg.
            submodule = f"{base}.{alias.name}"
            yield submodule if submodule in modules else resolve(base, modules)
    elif (name := literal_import_module(node)) is not None:
        yield resolve(name, modules)


def imports_in(module: str, path: Path, modules: dict[str, Path]) -> Iterator[Import]:
    """Each import of a scanned module by `module`, wherever it sits in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def visit(node: ast.AST, type_checking: bool) -> Iterator[Import]:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, True)
            for child in node.orelse:
                yield from visit(child, type_checking)
            return
        for target in targets(node, package, modules):
            if target is not None and target != module:
                yield Import(module, target, path, node.lineno, type_checking)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, type_checking)

    yield from visit(tree, False)


def scan(root: Path, packages: Iterable[str] = PACKAGES) -> Source:
    modules = module_names(root, packages)
    imports = [
        found._replace(path=path)
        for module, path in modules.items()
        for found in imports_in(module, root / path, modules)
    ]
    return Source(modules, imports)


def graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    """Module -> modules it imports when it runs (TYPE_CHECKING imports never run)."""
    edges: dict[str, set[str]] = {}
    for found in imports:
        if not found.type_checking:
            edges.setdefault(found.importer, set()).add(found.target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(edges.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return sorted(components)


def within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def breaches(
    imports: Iterable[Import],
    importers: Iterable[str],
    forbidden: Iterable[str],
    allowed: Iterable[tuple[str, str]] = (),
) -> list[Import]:
    """The imports by modules under `importers` of modules under `forbidden`."""
    importers, forbidden, allowed = tuple(importers), tuple(forbidden), set(allowed)
    return [
        found
        for found in imports
        if within(found.importer, importers)
        and within(found.target, forbidden)
        and (found.importer, found.target) not in allowed
    ]


def report(found: list[Import]) -> str:
    return "\n".join(["forbidden imports:", *map(str, found)])


@pytest.fixture(scope="module")
def source() -> Source:
    return scan(Path(__file__).resolve().parents[1])


def test_scan_sees_every_package(source):
    assert {module.split(".")[0] for module in source.modules} == set(PACKAGES)
    assert len(source.imports) > 100, "too few imports found: the parser misses some"


def test_algorithms_networks_envs_know_no_broker_web_or_roles(source):
    found = breaches(
        source.imports,
        ["actors.algorithms", "actors.networks", "actors.envs"],
        ["broker", "web", "cli", "actors.roles", "actors.agent"],
    )
    assert not found, report(found)


def test_roles_and_agent_import_no_web_or_cli(source):
    found = breaches(source.imports, ["actors.roles", "actors.agent"], ["web", "cli"])
    assert not found, report(found)


def test_schemas_import_no_other_package(source):
    # configs is data, not code: a directory of YAML files whose package holds only
    # CONFIG_DIR. schemas.config reads the service defaults (runt.yaml) from it.
    allowed = [("schemas.config", "configs")]
    others = [package for package in PACKAGES if package != "schemas"]
    found = breaches(source.imports, ["schemas"], others, allowed)
    assert not found, report(found)


def test_configs_import_nothing_of_runt(source):
    others = [package for package in PACKAGES if package != "configs"]
    found = breaches(source.imports, ["configs"], others)
    assert not found, report(found)


def test_broker_imports_no_role(source):
    found = breaches(source.imports, ["broker"], ["actors", "web", "cli"])
    assert not found, report(found)


def test_nothing_but_cli_imports_cli(source):
    others = [package for package in PACKAGES if package != "cli"]
    found = breaches(source.imports, others, ["cli"])
    assert not found, report(found)


def test_no_import_cycle(source):
    edges = graph(source.imports)
    found = cycles(edges)
    lines = []
    for component in found:
        members = set(component)
        lines.append(" <-> ".join(component))
        lines += sorted(
            {
                f"    {edge}"
                for edge in source.imports
                if edge.importer in members and edge.target in members and not edge.type_checking
            }
        )
    assert not found, "\n".join(["import cycles:", *lines])


# The scanner itself, on small trees written for the purpose.

TREE = {
    "pkg/__init__.py": "from pkg.a import thing\n",
    "pkg/a.py": "from . import b\n\nthing = 1\n",
    "pkg/b.py": "import os\n\n\ndef load():\n    from .sub import c\n    import pkg.sub.c\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/c.py": "import importlib\n\nimportlib.import_module('pkg.d')\n",
    "pkg/d.py": (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from . import a\n"
        "else:\n    from pkg.sub import c\n"
    ),
    "app/__init__.py": "",
    "app/main.py": "from pkg import thing, sub\n",
}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_scan_resolves_every_form_of_import(tmp_path):
    source = scan(write(tmp_path, TREE), ["pkg", "app"])
    found = {(i.importer, i.target, i.line, i.type_checking) for i in source.imports}
    assert found == {
        ("pkg", "pkg.a", 1, False),  # an __init__ re-exporting from its submodule
        ("pkg.a", "pkg.b", 1, False),  # relative, and `from pkg import module`
        ("pkg.b", "pkg.sub.c", 5, False),  # inside a function, relative to a subpackage
        ("pkg.b", "pkg.sub.c", 6, False),  # `import a.b.c`
        ("pkg.sub.c", "pkg.d", 3, False),  # importlib.import_module with a literal
        ("pkg.d", "pkg.a", 4, True),
        ("pkg.d", "pkg.sub.c", 6, False),  # the else branch of TYPE_CHECKING runs
        ("app.main", "pkg", 1, False),  # a name defined in pkg/__init__.py
        ("app.main", "pkg.sub", 1, False),  # a subpackage
    }


def test_cycles_close_only_through_imports_that_run(tmp_path):
    # sub.c and d import each other; d -> a is TYPE_CHECKING only, and the __init__
    # re-exporting from pkg.a closes nothing.
    source = scan(write(tmp_path, TREE), ["pkg", "app"])
    assert cycles(graph(source.imports)) == [["pkg.d", "pkg.sub.c"]]

    write(tmp_path, {"pkg/d.py": "", "pkg/b.py": "def load():\n    from pkg import thing\n"})
    source = scan(tmp_path, ["pkg", "app"])
    assert cycles(graph(source.imports)) == [["pkg", "pkg.a", "pkg.b"]]


def test_breaches_list_the_forbidden_imports(tmp_path):
    files = {
        "low/__init__.py": "",
        "low/core.py": "def f():\n    import high.role\n",
        "low/data.py": "from high import CONFIG\n",
        "high/__init__.py": "CONFIG = 1\n",
        "high/role.py": "from low import core\n",
    }
    imports = scan(write(tmp_path, files), ["low", "high"]).imports
    found = breaches(imports, ["low"], ["high"])
    assert [str(i) for i in found] == [
        f"{Path('low/core.py')}:2 low.core imports high.role",
        f"{Path('low/data.py')}:1 low.data imports high",
    ]
    assert breaches(imports, ["low"], ["high"], [("low.data", "high")]) == found[:1]
    assert breaches(imports, ["high"], ["low.data"]) == []
