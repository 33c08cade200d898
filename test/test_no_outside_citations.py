"""The repository explains itself: code, tests, configuration and docs never cite documents a maintainer
cannot open (an outside specification's sections, seed documents, issue numbers). They point to
docs/design.md (the contract) or a guide in docs/, or say the thing itself."""

import os
import re

import pytest

from support.ros_helpers import REPO

CITATION = re.compile(r"\bSPEC\b(?!_)|\bseeds? ?0\d\d\b|\b[Ii]ssues? #?\d+")
ROOTS = ("alfie_gr00t", "test", "launch", "config", "docs", ".ci", "triton_repository")
FILES = ("README.md", "Makefile", "setup.py", "setup.cfg", "package.xml")
SUFFIXES = (".py", ".md", ".yaml", ".yml", ".txt", ".cfg", ".xml", ".json", ".pbtxt", "")


def _files():
    for name in FILES:
        yield os.path.join(REPO, name)
    for root in ROOTS:
        for folder, dirs, names in os.walk(os.path.join(REPO, root)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            yield from (os.path.join(folder, n) for n in names if os.path.splitext(n)[1] in SUFFIXES)


def citations(text: str) -> list[str]:
    return [m.group(0) for m in CITATION.finditer(text)]


@pytest.mark.parametrize("text, found", [
    ("the one gate (SPEC §4)", ["SPEC"]), ("seed 002's pattern", ["seed 002"]), ("Issue 14: launch", ["Issue 14"]),
    ("issues 11/12", ["issues 11"]), ("PIP_SPEC = 'x'; SPEC_LOWER", []), ("docs/design.md#one-gate", []),
])
def test_the_pattern_finds_citations(text, found):
    assert citations(text) == found


def test_nothing_cites_an_outside_document():
    offenders = []
    for path in _files():
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except UnicodeDecodeError:
            continue
        offenders += [f"{os.path.relpath(path, REPO)}:{i}: {line.strip()}" for i, line in enumerate(lines, 1)
                      if citations(line) and os.path.abspath(path) != os.path.abspath(__file__)]
    assert not offenders, ("point to docs/design.md#anchor or say the thing itself:\n" + "\n".join(offenders))
