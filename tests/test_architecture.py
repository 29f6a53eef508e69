"""The package's layering: no import cycles, and no module importing from a layer above its own.

The layers, top to bottom (docs/design.md, "Where things live"); a module may import from its own
layer and the ones below it:

1. ``lyftr`` (the factory), ``lyftr.console``, ``lyftr.ops``
2. ``lyftr.providers`` (the senders' endpoints)
3. ``lyftr.api`` (the read endpoints and what every endpoint shares: errors, auth, request log)
4. ``lyftr.store`` (storage: the facade, its backends, the schema and migrations)
5. ``lyftr.config``, ``lyftr.extensions``, ``lyftr.logs``, ``lyftr.metrics``, ``lyftr.timestamps``
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lyftr"

LAYERS = {
    "lyftr": 1,
    "lyftr.console": 1,
    "lyftr.ops": 1,
    "lyftr.providers": 2,
    "lyftr.api": 3,
    "lyftr.store": 4,
    "lyftr.config": 5,
    "lyftr.extensions": 5,
    "lyftr.logs": 5,
    "lyftr.metrics": 5,
    "lyftr.timestamps": 5,
}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts
    }


def imported_modules(name, path, known):
    """The lyftr modules ``name`` imports, wherever in the file (function bodies included)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # "from a import b" imports the module a.b when there is one, else a name of a.
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def graph():
    known = modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def layer(name):
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return LAYERS[name]


def find_cycle(edges):
    """One import cycle as a list of modules, or None (depth-first search, three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_walk_sees_the_imports():
    edges = graph()
    assert "lyftr.store" in edges["lyftr.api.messages"]
    assert "lyftr.api.errors" in edges["lyftr.api.auth"]
    assert len(edges) > 30


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_import_from_a_layer_above(name):
    edges = graph()
    above = sorted(target for target in edges[name] if layer(target) < layer(name))
    assert not above, f"{name} (layer {layer(name)}) imports from above: {above}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_short(name):
    lines = modules()[name].read_text().count("\n")
    assert lines <= 420, f"{name} has {lines} lines"
