"""Imports run one way: `core ← models ← auth ← fleet, billing ← api`.

An `ast` walk over the source finds every first-party import, function-local ones included,
and four rules judge them:
- chain: a package of the chain imports only itself and the packages below it (`fleet` and
  `billing` stand side by side and do not import each other);
- circle: no import circle between first-party modules; a deferred import still counts (so
  deferring never hides a circle), an `if TYPE_CHECKING:` import does not (it never runs);
- client: the chain does not import its clients (`simulator`, `bench`) nor the tests; the CLI
  alone wires the `devicecloud simulate` command;
- device client: the simulator speaks to the cloud only through the protocol, so of the chain
  it imports `core` alone (shared rules such as the form of a device ID live there);
- test module: no module under `tests/` imports a test module (`test_*.py`, `conftest.py`);
  shared helpers live in `tests/support/`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = ("core", "models", "auth", "fleet", "billing", "api", "simulator", "bench", "tests")
# The chain, bottom up; packages of equal rank do not import each other.
RANK = {"core": 0, "models": 1, "auth": 2, "fleet": 3, "billing": 3, "api": 4}
CLIENTS = ("simulator", "bench", "tests")
# (importing module, imported package): the CLI wires `devicecloud simulate`.
ALLOWED_CLIENT_IMPORTS = {("api.cli", "simulator")}
# What the simulator, a device client, may import of the chain.
SIMULATOR_MAY_IMPORT = ("core",)


@dataclass(frozen=True)
class Import:
    importer: str
    path: str
    line: int
    target: str
    type_only: bool

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_test_module(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return path.startswith("tests/") and (
        name == "conftest.py" or (name.startswith("test_") and name.endswith(".py"))
    )


def source_tree(root: Path = ROOT) -> dict[str, str]:
    """Every first-party Python file, by its path relative to `root`."""
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for package in FIRST_PARTY
        for path in sorted((root / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """The ids of the nodes inside an `if TYPE_CHECKING:` body."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                inside.update(id(child) for child in ast.walk(statement))
    return inside


def find_imports(sources: Mapping[str, str]) -> list[Import]:
    """The first-party imports of `sources` (path → text), each resolved to the module it loads:
    `from a import b` names the module `a.b` when there is one, else `a`."""
    modules = {module_name(path): path for path in sources}
    found = []
    for path, text in sources.items():
        importer = module_name(path)
        package = importer if path.endswith("__init__.py") else importer.rpartition(".")[0]
        tree = ast.parse(text, filename=path)
        type_only = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            for target in dict.fromkeys(targets):
                resolved = _known(target, modules)
                if resolved is not None and resolved != importer:
                    found.append(Import(importer, path, node.lineno, resolved,
                                        id(node) in type_only))
    return found


def _known(target: str, modules: Mapping[str, str]) -> str | None:
    """The longest first-party module `target` names, or None for a third-party one."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in modules:
            return name
        parts.pop()
    return None


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def chain_violations(imports: Iterable[Import]) -> list[str]:
    found = []
    for edge in imports:
        source, target = _top(edge.importer), _top(edge.target)
        if source in RANK and target in RANK and source != target \
                and RANK[target] >= RANK[source]:
            found.append(f"{edge.where}: chain: {source} may not import {target} "
                         f"({edge.target}); imports run core ← models ← auth ← fleet, "
                         "billing ← api")
    return found


def client_violations(imports: Iterable[Import]) -> list[str]:
    return [
        f"{edge.where}: client: {_top(edge.importer)} may not import {edge.target}; "
        f"{', '.join(CLIENTS)} are clients outside the chain"
        for edge in imports
        if _top(edge.importer) in RANK
        and _top(edge.target) in CLIENTS
        and (edge.importer, _top(edge.target)) not in ALLOWED_CLIENT_IMPORTS
    ]


def simulator_violations(imports: Iterable[Import]) -> list[str]:
    return [
        f"{edge.where}: device client: simulator may not import {edge.target}; it imports "
        f"only {', '.join(SIMULATOR_MAY_IMPORT)} of the chain and speaks the protocol"
        for edge in imports
        if _top(edge.importer) == "simulator"
        and _top(edge.target) in RANK
        and _top(edge.target) not in SIMULATOR_MAY_IMPORT
    ]


def imported_test_modules(imports: Iterable[Import], sources: Mapping[str, str]) -> list[str]:
    paths = {module_name(path): path for path in sources}
    return [
        f"{edge.where}: test module: {edge.importer} imports the test module {edge.target}; "
        "shared helpers belong in tests/support/"
        for edge in imports
        if _top(edge.importer) == "tests" and is_test_module(paths[edge.target])
    ]


def circles(imports: Iterable[Import]) -> list[str]:
    """One finding per import circle (a strongly connected set of modules, Tarjan's
    algorithm), listing the imports that close it."""
    edges: dict[str, dict[str, Import]] = {}
    for edge in imports:
        if not edge.type_only:
            edges.setdefault(edge.importer, {}).setdefault(edge.target, edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, {}):
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
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    found = []
    for component in sorted(components):
        members = set(component)
        closing = [
            f"{edge.where} imports {target}"
            for source in component
            for target, edge in sorted(edges.get(source, {}).items())
            if target in members
        ]
        found.append(f"circle: {' ↔ '.join(component)}: " + "; ".join(closing))
    return found


def violations(sources: Mapping[str, str]) -> list[str]:
    imports = find_imports(sources)
    return [
        *chain_violations(imports),
        *circles(imports),
        *client_violations(imports),
        *simulator_violations(imports),
        *imported_test_modules(imports, sources),
    ]


def test_the_source_tree_follows_the_layering():
    found = violations(source_tree())
    assert not found, "\n".join(found)


# The rules themselves, on small made-up trees.


def test_a_lower_package_importing_a_higher_one_is_refused():
    found = violations({
        "core/clock.py": "",
        "auth/tokens.py": "from core import clock\n",
        "fleet/teams.py": "import auth.tokens\n",
        "models/devices.py": "\n\ndef f():\n    from fleet.teams import x\n",
        "api/app.py": "from fleet import teams\nfrom models import devices\n",
    })
    assert found == [
        "models/devices.py:4: chain: models may not import fleet (fleet.teams); "
        "imports run core ← models ← auth ← fleet, billing ← api",
    ]


def test_fleet_and_billing_do_not_import_each_other():
    found = violations({
        "fleet/products.py": "",
        "billing/plans.py": "from fleet.products import Product\n",
    })
    assert found == [
        "billing/plans.py:1: chain: billing may not import fleet (fleet.products); "
        "imports run core ← models ← auth ← fleet, billing ← api",
    ]


def test_a_type_checking_import_against_the_chain_is_still_refused():
    found = violations({
        "api/schema.py": "",
        "fleet/teams.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          "    from api import schema\n",
    })
    assert found == [
        "fleet/teams.py:3: chain: fleet may not import api (api.schema); "
        "imports run core ← models ← auth ← fleet, billing ← api",
    ]


def test_a_circle_is_found_through_a_deferred_import():
    found = violations({
        "auth/__init__.py": "",
        "auth/oauth.py": "def server():\n    from auth.code_flow import Grant\n",
        "auth/code_flow.py": "from auth import oauth\n",
        "auth/tokens.py": "from auth import oauth\n",
    })
    assert found == [
        "circle: auth.code_flow ↔ auth.oauth: auth/code_flow.py:1 imports auth.oauth; "
        "auth/oauth.py:2 imports auth.code_flow",
    ]


def test_a_longer_circle_is_reported_once_with_every_closing_import():
    found = violations({
        "api/a.py": "from . import b\n",
        "api/b.py": "from .c import thing\n",
        "api/c.py": "import api.a\n",
    })
    assert found == [
        "circle: api.a ↔ api.b ↔ api.c: api/a.py:1 imports api.b; api/b.py:1 imports api.c; "
        "api/c.py:1 imports api.a",
    ]


def test_type_checking_imports_do_not_make_a_circle():
    found = violations({
        "api/organizations.py": "import typing\nif typing.TYPE_CHECKING:\n"
                                "    from api.products import Product\n",
        "api/products.py": "from api.organizations import Organization\n",
    })
    assert found == []


def test_the_chain_does_not_import_its_clients():
    found = violations({
        "simulator/__init__.py": "",
        "simulator/runner.py": "from fleet import devices\n",
        "bench/__init__.py": "import simulator\n",
        "fleet/devices.py": "from bench import measure\n",
        "api/cli.py": "from simulator.runner import run\n",
        "api/app.py": "import simulator\n",
        "tests/__init__.py": "",
        "tests/test_x.py": "from simulator import runner\n",
    })
    assert found == [
        "fleet/devices.py:1: client: fleet may not import bench; "
        "simulator, bench, tests are clients outside the chain",
        "api/app.py:1: client: api may not import simulator; "
        "simulator, bench, tests are clients outside the chain",
        "simulator/runner.py:1: device client: simulator may not import fleet.devices; it "
        "imports only core of the chain and speaks the protocol",
    ]


def test_the_simulator_imports_only_core_of_the_chain():
    found = violations({
        "core/device_ids.py": "",
        "models/devices.py": "",
        "api/gateway.py": "",
        "simulator/__init__.py": "",
        "simulator/client.py": "from core import device_ids\nfrom models.devices import Device\n",
        "simulator/runner.py": "from api.gateway import CloseCode\nfrom simulator import client\n",
    })
    assert found == [
        "simulator/client.py:2: device client: simulator may not import models.devices; it "
        "imports only core of the chain and speaks the protocol",
        "simulator/runner.py:1: device client: simulator may not import api.gateway; it "
        "imports only core of the chain and speaks the protocol",
    ]


def test_no_test_module_is_imported_by_another_module_of_the_tests():
    found = violations({
        "tests/__init__.py": "",
        "tests/conftest.py": "from tests.support import world\n",
        "tests/support/__init__.py": "",
        "tests/support/world.py": "",
        "tests/helpers.py": "from tests.conftest import LiveServer\n",
        "tests/e2e/__init__.py": "",
        "tests/e2e/test_a.py": "from tests import helpers\nfrom ..test_b import probe\n",
        "tests/test_b.py": "",
    })
    assert found == [
        "tests/helpers.py:1: test module: tests.helpers imports the test module tests.conftest; "
        "shared helpers belong in tests/support/",
        "tests/e2e/test_a.py:2: test module: tests.e2e.test_a imports the test module "
        "tests.test_b; shared helpers belong in tests/support/",
    ]


@pytest.mark.parametrize(("path", "expected"), [
    ("tests/test_x.py", True),
    ("tests/e2e/conftest.py", True),
    ("tests/support/matrix.py", False),
    ("tests/helpers.py", False),
    ("fleet/test_data.py", False),
])
def test_what_counts_as_a_test_module(path, expected):
    assert is_test_module(path) is expected
