"""The test tree keeps its shared code apart from its tests: fakes, doubles, data makers and harnesses
live in test/support; a test module imports from there, never from another test module or conftest."""

import ast
import os

HERE = os.path.dirname(os.path.abspath(__file__))
# Helper modules still beside the tests, and why.
BESIDE_THE_TESTS = {"dit_double.py": "the DiT policy double, kept beside its tests by its owner for now"}
# A test module whose subject is conftest itself (its ROS-free selection), not a helper in it.
TESTS_OF_CONFTEST = {"test_discovery.py"}


def _imported_modules(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_test_module_imports_another_or_conftest():
    offenders = []
    for name in sorted(os.listdir(HERE)):
        if name.endswith(".py") and name != "conftest.py":
            bad = {m for m in _imported_modules(os.path.join(HERE, name))
                   if m.startswith("test_") or (m == "conftest" and name not in TESTS_OF_CONFTEST)}
            offenders += [f"{name} imports {m}" for m in sorted(bad)]
    assert not offenders, "; ".join(offenders) + ": move what they share into test/support"


def test_shared_code_lives_in_support():
    loose = [n for n in sorted(os.listdir(HERE)) if n.endswith(".py") and not n.startswith("test_")
             and n != "conftest.py" and n not in BESIDE_THE_TESTS]
    assert not loose, f"{loose}: shared test code goes into test/support"
    support = os.path.join(HERE, "support")
    inside = [n for n in os.listdir(support) if n.endswith(".py")]
    assert "__init__.py" in inside and not [n for n in inside if n.startswith("test_")]
