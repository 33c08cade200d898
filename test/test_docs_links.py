"""The README is a front page and the guides in docs/ stay reachable.

Every relative markdown link in README.md and docs/*.md resolves to a file of the
repository, and a `#anchor` into a markdown file to one of its headings (GitHub's slugs).
The README stays under 250 lines, and every guide exists and is linked from the README or
from docs/README.md.
"""

import os
import re

import pytest

from support.ros_helpers import REPO

GUIDES = ("robot-jetson.md", "checkpoint.md", "parameters.md", "topics.md", "motion.md", "latency.md",
          "wire.md", "remote-gpu.md", "triton.md", "performance.md", "security.md", "recording.md", "design.md",
          "README.md")
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def pages():
    docs = sorted(n for n in os.listdir(os.path.join(REPO, "docs")) if n.endswith(".md"))
    return ["README.md"] + [f"docs/{n}" for n in docs]


def _read(relpath):
    with open(os.path.join(REPO, relpath), encoding="utf-8") as f:
        return f.read()


def _prose(text):
    """The text without code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading):
    """GitHub's anchor for a heading: link markup dropped, lower case, punctuation removed, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())  # backticks, asterisks, commas, arrows ...
    return text.replace(" ", "-")


def anchors(text):
    """Every heading's anchor, with GitHub's -1, -2 ... for repeated headings."""
    seen = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        n = seen.get(base, 0)
        found.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return found


def links(relpath):
    """(target, anchor) for every relative link of one page; web links and mail are not ours to check."""
    out = []
    for target in LINK.findall(_prose(_read(relpath))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        out.append((path, anchor))
    return out


def _resolve(relpath, path):
    """The repository-relative file a link's path names ('' = the page itself)."""
    if not path:
        return relpath
    return os.path.normpath(os.path.join(os.path.dirname(relpath), path))


CASES = [pytest.param(page, path, anchor, id=f"{page}: {path}#{anchor}" if anchor else f"{page}: {path}")
         for page in pages() for path, anchor in links(page)]


def broken(page, path, anchor):
    """Why the link is broken, or None."""
    target = _resolve(page, path)
    if target.startswith(".."):
        return f"{path} leaves the repository"
    full = os.path.join(REPO, target)
    if not os.path.exists(full):
        return f"{target} does not exist"
    if anchor and target.endswith(".md"):
        if anchor not in anchors(_read(target)):
            return f"{target} has no heading with anchor #{anchor}"
    return None


@pytest.mark.parametrize("page, path, anchor", CASES)
def test_relative_link_resolves(page, path, anchor):
    problem = broken(page, path, anchor)
    assert problem is None, f"{page}: [..]({path}{'#' + anchor if anchor else ''}): {problem}"


def test_links_were_found():
    """The collector sees the links (a broken pattern would pass every test above vacuously)."""
    assert len([c for c in CASES if c.values[0] == "README.md"]) >= len(GUIDES)
    assert any(c.values[2] for c in CASES), "no #anchor link collected"


def test_readme_is_a_front_page():
    lines = _read("README.md").count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


@pytest.mark.parametrize("guide", GUIDES)
def test_every_guide_exists_and_is_linked(guide):
    assert os.path.isfile(os.path.join(REPO, "docs", guide)), f"docs/{guide} is missing"
    linked = {_resolve(page, path) for page in ("README.md", "docs/README.md") for path, _ in links(page)}
    assert f"docs/{guide}" in linked, f"docs/{guide} is linked from neither README.md nor docs/README.md"


@pytest.mark.parametrize("heading, expected", [
    ("The single-graph contract (ONNX and TensorRT)", "the-single-graph-contract-onnx-and-tensorrt"),
    ("`get_action` input and output", "get_action-input-and-output"),
    ("Decoded frames, not JPEG, on the groot_server → Triton hop",
     "decoded-frames-not-jpeg-on-the-groot_server--triton-hop"),
    ("Measured: robots × requests/s", "measured-robots--requestss"),
    ("groot_server", "groot_server"),
    ("**A hold** is where the robot is", "a-hold-is-where-the-robot-is"),
])
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_a_broken_link_is_caught():
    """The checks can fail: a missing file and a missing heading are both reported."""
    assert broken("README.md", "docs/no-such-guide.md", "") is not None
    assert broken("README.md", "docs/checkpoint.md", "no-such-heading") is not None
    assert broken("docs/README.md", "../README.md", "documentation") is None
    assert broken("docs/README.md", "../../elsewhere.md", "") is not None
