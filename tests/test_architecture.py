"""The import graph keeps its layers (docs/architecture.md, "Layers"): no module imports
one from a layer above its own, no import cycle between modules or between the parts
the layers name, and no module takes a private name (`_x`) from another package.

The graph is grimp's: every import statement counts, those inside functions too, so
a cycle cannot hide in a function body. Tests are outside the layers (they drive
every part) but not outside the private-name rule's reach: they may reach into the
package they test, nothing else."""

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "config",
    "deploy",
    "bench",
    "api",
    "accounts",
    "dashboard",
    "alerts",
    "notifications",
    "audit",
    "boards",
    "scrape",
)

# Highest first. A module may import from its own layer and the ones below it. The
# parts of `dashboard` not named here are its core plumbing (the lowest layer).
LAYERS = (
    ("bench",),
    ("deploy",),
    ("config",),
    # The ways in: the SSE stream, the WebSocket, the page, the API, the commands.
    (
        "dashboard.stream",
        "dashboard.control",
        "dashboard.views",
        "dashboard.urls",
        "dashboard.management",
        "boards.views",
        "boards.urls",
        "api",
        "accounts",
    ),
    # Dashboards people build: documents, versions, provisioning from files.
    ("boards",),
    ("alerts",),
    ("notifications",),
    # Prometheus scrape targets: read by the collector, published through core.
    ("scrape",),
    # What every layer above shares: core plumbing, the audit log, and the names both
    # transports and the layers between them speak (SSE channels, channel-layer messages).
    ("dashboard", "audit", "dashboard.stream.channels", "dashboard.control.events"),
)


def is_test(module):
    parts = module.split(".")
    return "tests" in parts or parts[-1].startswith("test") or parts[-1] == "conftest"


def part_of(module):
    """The most specific entry of LAYERS that contains `module`."""
    best = None
    for entry in (entry for layer in LAYERS for entry in layer):
        if (module == entry or module.startswith(entry + ".")) and (best is None or len(entry) > len(best)):
            best = entry
    return best


def layer_of(module):
    part = part_of(module)
    return next(index for index, layer in enumerate(LAYERS) if part in layer)


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*PACKAGES)


def production_imports(graph):
    for importer in sorted(graph.modules):
        if is_test(importer):
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if not is_test(imported):
                yield importer, imported


def test_every_package_is_in_a_layer(graph):
    assert {module.split(".")[0] for module in graph.modules} == set(PACKAGES)
    assert all(part_of(module) for module in graph.modules)


def test_no_module_imports_from_a_layer_above_its_own(graph):
    upward = [
        f"{importer} ({part_of(importer)}) imports {imported} ({part_of(imported)})"
        for importer, imported in production_imports(graph)
        if layer_of(imported) < layer_of(importer)
    ]
    assert upward == []


def strongly_connected(nodes, edges):
    """Tarjan's components of more than one node (each an import cycle)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules(graph):
    edges = {}
    for importer, imported in production_imports(graph):
        edges.setdefault(importer, set()).add(imported)
    assert strongly_connected(edges, edges) == []


def test_no_import_cycle_between_the_parts_the_layers_name(graph):
    edges = {}
    for importer, imported in production_imports(graph):
        if part_of(importer) != part_of(imported):
            edges.setdefault(part_of(importer), set()).add(part_of(imported))
    assert strongly_connected(edges, edges) == []


def python_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))
    yield from sorted((ROOT / "tests").rglob("*.py"))
    yield ROOT / "conftest.py"


def private_names_taken(path):
    """(line, what) for each private name this file takes from another top-level package."""
    own = path.relative_to(ROOT).parts[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = {}  # local name -> the module of another package it is bound to
    taken = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in (own, "tests", "conftest"):
                continue
            for alias in node.names:
                if is_private(alias.name) or any(is_private(part) for part in node.module.split(".")):
                    taken.append((node.lineno, f"{node.module}.{alias.name}"))
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == own:
                    continue
                if any(is_private(part) for part in alias.name.split(".")):
                    taken.append((node.lineno, alias.name))
                if alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and is_private(node.attr)
        ):
            taken.append((node.lineno, f"{modules[node.value.id]}.{node.attr}"))
    # Setting a private attribute by name (monkeypatch.setattr(module, "_x", ...)) also counts.
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            target, name = node.args[0], node.args[1]
            if (
                isinstance(target, ast.Name)
                and target.id in modules
                and isinstance(name, ast.Constant)
                and isinstance(name.value, str)
                and is_private(name.value)
            ):
                taken.append((node.lineno, f"{modules[target.id]}.{name.value}"))
    return taken


# Django's model metadata: private by its spelling, public by its documentation.
PUBLIC_DESPITE_THE_UNDERSCORE = {"_meta"}


def is_private(name):
    dunder = name.startswith("__") and name.endswith("__")
    return name.startswith("_") and not dunder and name not in PUBLIC_DESPITE_THE_UNDERSCORE


def test_no_module_takes_a_private_name_from_another_package():
    first_party = set(PACKAGES) | {"tests", "conftest"}
    taken = [
        f"{path.relative_to(ROOT)}:{line} takes {what}"
        for path in python_files()
        for line, what in private_names_taken(path)
        if what.split(".")[0] in first_party
    ]
    assert taken == []


def test_the_rules_catch_what_they_are_for(tmp_path):
    """The checks themselves: a private import, a cycle and an upward import are found."""
    assert strongly_connected({"a", "b", "c"}, {"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert layer_of("dashboard.stream.views") < layer_of("alerts.models") < layer_of("notifications.models")
    assert layer_of("notifications.models") < layer_of("dashboard.groups") == layer_of("audit.services")
    assert layer_of("dashboard.control.events") > layer_of("dashboard.control.consumers")
    package = tmp_path / "api"
    package.mkdir()
    module = package / "sneaky.py"
    module.write_text(
        "from notifications.services import _group_send\n"
        "from notifications import services\n"
        "services._push(None)\n"
        "import notifications.services as ns\n"
        "monkeypatch.setattr(ns, '_group_send', None)\n"
        "from api.auth import _own_is_fine\n"
    )
    global ROOT
    real_root, ROOT = ROOT, tmp_path
    try:
        found = [what for _, what in private_names_taken(module)]
    finally:
        ROOT = real_root
    assert found == [
        "notifications.services._group_send",
        "notifications.services._push",
        "notifications.services._group_send",
    ]
