"""The package's layers: every import, top-level or inside a function, points down or sideways."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tfp_aline"

# A module may import modules of its own rank or lower. The longest matching prefix decides.
RANKS = {
    "tfp_aline": 0,  # the package's __init__: the log-level constant only
    "tfp_aline.errors": 0,
    "tfp_aline.coerce": 0,
    "tfp_aline.atomic": 0,
    "tfp_aline.paths": 0,
    "tfp_aline.run_files": 0,
    "tfp_aline.quiet": 0,
    "tfp_aline.signals": 0,
    "tfp_aline.devices": 0,
    "tfp_aline.core": 1,
    "tfp_aline.nn": 2,
    "tfp_aline.tasks": 2,  # base and registry; the model subpackages are below
    "tfp_aline.config": 3,
    "tfp_aline.runs": 4,
    "tfp_aline.training": 5,
    "tfp_aline.evaluation": 5,
    "tfp_aline.migraine": 6,
    "tfp_aline.psychometric": 6,
    "tfp_aline.export": 7,
    "tfp_aline.cli": 7,
    "tfp_aline.migraine.service": 7,  # the HTTP advice service (optional extra `serve`)
    "tfp_aline.migraine.commands": 7,  # its commands, which start the service
    "tfp_aline.__main__": 7,
}


def rank(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in RANKS:
            return RANKS[prefix]
    raise KeyError(module)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path):
    """(line, imported module) for every import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for a in node.names:  # `from tfp_aline.core import objectives` imports a module
                yield node.lineno, f"{node.module}.{a.name}"


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_rank():
    assert MODULES
    for path in MODULES:
        rank(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_down(path):
    me = module_name(path)
    upward = []
    for line, target in imports(path):
        if not target.startswith("tfp_aline"):
            continue
        if target.split(".")[-1][:1].isupper() or target == me:
            continue  # a class or constant imported by name, not a module
        if rank(target) > rank(me):
            upward.append(f"{path.name}:{line} imports {target} (rank {rank(target)} > {rank(me)})")
    assert not upward, "\n".join(upward)


def test_rank_lookup_prefers_the_longest_prefix():
    assert rank("tfp_aline.tasks.base") == 2
    assert rank("tfp_aline.migraine.history") == 6
    assert rank("tfp_aline.core.rollout") == 1
    with pytest.raises(KeyError):
        rank("numpy")


def test_imports_inside_functions_are_seen(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import numpy\nfrom tfp_aline.core import objectives\n\ndef f():\n    from tfp_aline.cli.main import main\n"
    )
    found = [target for _, target in imports(source)]
    assert found == [
        "numpy",
        "tfp_aline.core",
        "tfp_aline.core.objectives",
        "tfp_aline.cli.main",
        "tfp_aline.cli.main.main",
    ]
    assert rank("tfp_aline.cli.main") > rank("tfp_aline.core.objectives")


def _module_graph():
    """{module: modules of the package it imports}, at any depth, each import resolved to the
    longest prefix that is one of the package's modules."""
    names = {module_name(p): p for p in MODULES}
    graph = {}
    for me, path in names.items():
        edges = set()
        for _, target in imports(path):
            parts = target.split(".")
            for n in range(len(parts), 0, -1):
                prefix = ".".join(parts[:n])
                if prefix in names:
                    if prefix != me and not me.startswith(prefix + "."):  # a package's own __init__
                        edges.add(prefix)
                    break
        graph[me] = edges
    return graph


def _cycles(graph):
    """Every import cycle once, as a list of modules (depth-first search with colours)."""
    colour, stack, found = {}, [], []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == "grey":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in colour:
                visit(nxt)
        stack.pop()
        colour[node] = "black"

    for node in sorted(graph):
        if node not in colour:
            visit(node)
    return found


def test_no_import_cycles():
    cycles = _cycles(_module_graph())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# The built-in models: only their own subpackages (and the tests) may name them.
MODEL_PACKAGES = ("tfp_aline.migraine", "tfp_aline.psychometric")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_generic_module_names_a_model(path):
    me = module_name(path)
    if me.startswith(MODEL_PACKAGES):
        return
    text = path.read_text()
    named = [m for m in MODEL_PACKAGES if m in text or m.replace(".", "/") in text]
    named += [f"imports {t}" for _, t in imports(path) if t.startswith(MODEL_PACKAGES)]
    assert not named, f"{path.name} names {', '.join(named)}"
