"""The package's folders are its architecture (alfie_gr00t/__init__.py): each module imports only its own
layer or lower ones, server/ and client/ never import each other, client/ never imports engines/, and no
two modules import each other in a circle. Every import counts, also those inside functions."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "alfie_gr00t"
BASE = {"layout", "stats", "settings", "discovery"}
RANK = {"base": 0, "wire": 1, "bag": 1, "engines": 2, "dataset": 2, "server": 3, "client": 3, "nodes": 4,
        "tools": 5}
FORBIDDEN = {("client", "engines"), ("client", "server"), ("server", "client")}
DEPRECATED_ALIASES = {"alfie_gr00t.protocol", "alfie_gr00t.gr00t_protocol"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in RANK:
        return parts[1]
    if parts[1] in BASE:
        return "base"
    raise AssertionError(f"{module} is in no layer: put it in one of {sorted(RANK)} or name it in BASE")


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield name, path


def imports_of(path: pathlib.Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("alfie_gr00t"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("alfie_gr00t"):
            found.add(node.module)
            # `from alfie_gr00t.wire import images` imports the module alfie_gr00t.wire.images
            found.update(f"{node.module}.{a.name}" for a in node.names if (PACKAGE.parent / node.module.replace(
                ".", "/") / f"{a.name}.py").is_file() or (PACKAGE.parent / node.module.replace(".", "/") / a.name).is_dir())
    return found


GRAPH = {name: imports_of(path) for name, path in modules()}


def test_every_module_is_in_a_layer():
    for name in GRAPH:
        if name not in DEPRECATED_ALIASES:
            layer_of(name)


@pytest.mark.parametrize("module", sorted(n for n in GRAPH if n not in DEPRECATED_ALIASES and n != "alfie_gr00t"))
def test_imports_respect_the_layers(module):
    mine = layer_of(module)
    bad = []
    for target in GRAPH[module]:
        if target == "alfie_gr00t":
            continue
        if target in DEPRECATED_ALIASES:
            bad.append(f"{target} (deprecated alias: import the new path)")
            continue
        theirs = layer_of(target)
        if theirs == "package":
            continue
        if RANK[theirs] > RANK[mine] or (mine, theirs) in FORBIDDEN:
            bad.append(f"{target} ({theirs})")
    assert not bad, f"{module} ({mine}) imports from a higher or forbidden layer: {bad}"


def test_the_checker_catches_an_upward_import(tmp_path):
    """The rule above can fail: a client module importing an engine is reported."""
    path = tmp_path / "m.py"
    path.write_text("from alfie_gr00t.engines.base import EngineConfig\n")
    targets = imports_of(path)
    assert "alfie_gr00t.engines.base" in targets
    assert ("client", layer_of("alfie_gr00t.engines.base")) in FORBIDDEN


def test_no_import_cycles():
    real = {n: {t for t in ts if t in GRAPH and t != n} for n, ts in GRAPH.items()}
    # a package's __init__ importing its children is not a cycle of code; only module -> module edges count
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(real[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(real):
        if node not in state:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("old, new", [("alfie_gr00t.protocol", "alfie_gr00t.wire.protocol"),
                                      ("alfie_gr00t.gr00t_protocol", "alfie_gr00t.wire.gr00t")])
def test_old_module_paths_keep_working_for_one_release_with_a_warning(old, new):
    """Users who import the pre-re-house paths get the same module and a DeprecationWarning naming the new one."""
    import importlib
    import subprocess
    import sys

    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
            f"warnings.simplefilter('ignore')\nimport {old} as a, {new} as b\nprint('same' if a is b else 'different')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(PACKAGE.parent))
    assert out.returncode == 0, out.stderr
    assert f"warned: {old} moved to {new}" in out.stdout and out.stdout.strip().endswith("same"), out.stdout
    assert importlib.import_module(new).__name__ == new
