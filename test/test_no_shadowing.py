"""No top-level folder of the repository may be importable under another package's name (docs/design.md#the-machine-around-it).

A folder without `__init__.py` is a namespace-package portion: a *regular* installed
package of the same name always wins over it, so a folder named like a package that is
installed is harmless. The danger is a folder named like an OPTIONAL dependency that is not
installed: `importlib.util.find_spec(name)` then finds the folder instead of returning None,
and a library that probes for the dependency that way believes it is there. That is what
the old `triton/` model repository did: torch's `has_triton_package()` saw it, torch._dynamo
went on to import OpenAI Triton and broke torch -> transformers -> Gr00tPolicy. The model
repository is `triton_repository/` now.

(a) every top-level folder, resolved with the repository root first on sys.path in a fresh
    interpreter, either does not resolve into the repository or is on ALLOWED (with the reason),
    and no allowed name is one torch probes for; the same check fails on a copy of the layout
    with a `triton/` folder;
(b) with torch installed: `import torch._dynamo` and `torch.utils._triton.has_triton()` is False
    on this CPU build, run from the repository root with it first on sys.path.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from support.ros_helpers import REPO

# Top-level folders that resolve into the repository, and why each is harmless: none is the
# name of a package any library probes for (checked below against torch's own probes).
ALLOWED = {
    "alfie_gr00t": "the package itself",
    "config": "ROS layout: parameter YAML files installed to share/alfie_gr00t/config",
    "docs": "documentation (Markdown only)",
    "launch": "ROS layout: launch files installed to share/alfie_gr00t/launch",
    "resource": "ROS layout: the ament index marker file",
    "test": "the test suite (no __init__.py; the stdlib's regular `test` package wins where installed)",
    "triton_repository": "the Triton model repository, named so that it shadows nothing",
    "build": "colcon's build output (not in git; pypa's regular `build` package wins where installed)",
    "install": "colcon's install tree (not in git)",
    "log": "colcon's logs (not in git)",
    "bench_out": "benchmark output (not in git)",
}

# Optional dependencies torch / transformers look for before importing (triton is the one that
# broke; the rest are collected from torch's own source by `torch_probes`).
KNOWN_PROBES = {"triton", "flash_attn", "torchvision", "tabulate", "matplotlib", "halide", "cutlass", "torch_xla",
                "rich", "accelerate", "bitsandbytes", "deepspeed", "apex", "xformers", "peft", "timm", "av"}

_RESOLVE = r"""
import importlib.util, json, os, sys
root = os.path.realpath(sys.argv[1])
sys.path.insert(0, root)
out = {}
for name in json.loads(sys.argv[2]):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        out[name] = "error: " + str(exc)
        continue
    places = [] if spec is None else [spec.origin or ""] + list(spec.submodule_search_locations or [])
    inside = [p for p in places if p and os.path.realpath(p).startswith(root + os.sep)]
    out[name] = inside[0] if inside else None
print(json.dumps(out))
"""


def top_level_folders(root) -> list[str]:
    """Every top-level folder whose name could be imported (an identifier)."""
    return sorted(name for name in os.listdir(root)
                  if os.path.isdir(os.path.join(root, name)) and name.isidentifier())


def resolving_into(root, names) -> dict[str, str | None]:
    """{name: path inside `root` it resolves to, or None}, found by a fresh interpreter whose
    sys.path starts with `root` (cwd elsewhere, so only that entry can point into it)."""
    proc = subprocess.run([sys.executable, "-c", _RESOLVE, str(root), json.dumps(list(names))],
                          capture_output=True, text=True, timeout=120, cwd=os.path.dirname(str(root)))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def shadowing(root, probes) -> list[str]:
    """Why `root`'s layout is unsafe: folders that resolve into it without being allowed, and any
    top-level folder named like a probed optional dependency."""
    folders = top_level_folders(root)
    problems = [f"{name}/ resolves to {place}" for name, place in resolving_into(root, folders).items()
                if place is not None and name not in ALLOWED]
    problems += [f"{name}/ is named like an optional dependency libraries probe for" for name in folders
                 if name in probes]
    return problems


def torch_probes() -> set[str]:
    """Names torch probes with find_spec("...") in its own source (empty without torch)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return set()
    found = set()
    pattern = re.compile(r"""find_spec\(\s*["']([A-Za-z_][A-Za-z0-9_.]*)["']""")
    for base, _dirs, files in os.walk(list(spec.submodule_search_locations)[0]):
        for file in files:
            if file.endswith(".py"):
                with open(os.path.join(base, file), encoding="utf-8", errors="replace") as f:
                    found.update(m.split(".")[0] for m in pattern.findall(f.read()))
    return found


@pytest.fixture(scope="module")
def probes() -> set[str]:
    return KNOWN_PROBES | torch_probes()


def test_no_top_level_folder_shadows_a_package(probes):
    assert shadowing(REPO, probes) == []


def test_allowed_names_are_not_probed_optional_dependencies(probes):
    assert "triton" in probes
    if importlib.util.find_spec("torch") is not None:
        assert "triton" in torch_probes(), "torch's own triton probe is seen by the scan"
    assert sorted(set(ALLOWED) & probes) == []


def test_a_triton_folder_is_caught(tmp_path, probes):
    """A copy of the layout (empty folders of the same names) passes; add triton/ and it fails."""
    copy = tmp_path / "repo"
    for name in top_level_folders(REPO):
        (copy / name).mkdir(parents=True)
    (copy / "alfie_gr00t" / "__init__.py").write_text("")
    assert shadowing(copy, probes) == []
    (copy / "triton" / "alfie_policy" / "1").mkdir(parents=True)  # the old model repository's shape
    problems = shadowing(copy, probes)
    assert any(p.startswith("triton/ is named like an optional dependency") for p in problems), problems
    if importlib.util.find_spec("triton") is None:  # not installed: find_spec lands in the folder
        assert any(p.startswith("triton/ resolves to " + str(copy / "triton")) for p in problems), problems
    (copy / "triton").rename(copy / "flash_attn")
    assert any(p.startswith("flash_attn/ ") for p in shadowing(copy, probes))


_DYNAMO = r"""
import sys
sys.path.insert(0, sys.argv[1])
import torch._dynamo
from torch.utils._triton import has_triton, has_triton_package
print(has_triton_package(), has_triton())
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (pip install torch==2.13.0 gives the CPU build)")
def test_torch_dynamo_imports_from_the_repository_root_and_sees_no_triton():
    proc = subprocess.run([sys.executable, "-c", _DYNAMO, REPO], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package, usable = proc.stdout.split()
    if importlib.util.find_spec("triton") is None:
        assert package == "False", "a folder made torch believe OpenAI Triton is installed"
    assert usable == "False", "this CPU build has no usable Triton"


@pytest.mark.skipif(importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is not None,
                    reason="needs torch without OpenAI Triton (the CPU build)")
def test_the_old_triton_folder_breaks_torch_dynamo(tmp_path):
    """What (b) guards against, shown on a scratch directory: a `triton/` folder first on sys.path."""
    (tmp_path / "triton" / "alfie_policy" / "1").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-c", _DYNAMO, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode != 0 or proc.stdout.split()[0] == "True", proc.stdout
