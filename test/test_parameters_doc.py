"""docs/parameters.md's parameter tables say what the config dataclasses say: one row per field, its
default and its meaning exactly as the field declares them (settings.param). A field's metadata is the
one place a parameter is described; when this fails, the message shows the row to paste."""

import os
from dataclasses import MISSING, fields

import pytest

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.server.config import ServerConfig

from support.ros_helpers import REPO

TABLES = {"### groot_server": ServerConfig, "### groot_client": ClientConfig}


def render(value) -> str:
    """A default as the table shows it: strings bare, lists in brackets."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return str(value)


def expected_row(f) -> str:
    return f"| `{f.name}` | `{render(f.default)}` | {f.metadata.get('help', '')} |"


def doc_rows(heading: str) -> dict[str, str]:
    with open(os.path.join(REPO, "docs", "parameters.md"), encoding="utf-8") as fh:
        section = fh.read().split(heading + "\n", 1)[1].split("\n#", 1)[0]
    return {line.split("|")[1].strip().strip("`"): line.strip() for line in section.splitlines()
            if line.startswith("| `")}


@pytest.mark.parametrize("heading, config_cls", TABLES.items())
def test_every_parameter_has_its_row_as_declared(heading, config_cls):
    rows = doc_rows(heading)
    wrong = [expected_row(f) for f in fields(config_cls) if rows.get(f.name) != expected_row(f)]
    extra = sorted(set(rows) - {f.name for f in fields(config_cls)})
    assert not wrong and not extra, (
        f"docs/parameters.md {heading}: rows to paste (from the field metadata):\n" + "\n".join(wrong)
        + (f"\nrows of no parameter: {extra}" if extra else ""))


@pytest.mark.parametrize("config_cls", [ServerConfig, ClientConfig])
def test_every_parameter_says_what_it_means(config_cls):
    bare = [f.name for f in fields(config_cls) if not f.metadata.get("help") or f.default is MISSING]
    assert not bare, f"{config_cls.__name__}: declare these with settings.param(default, help): {bare}"


def test_the_renderer_matches_the_tables_style():
    assert render(("a", "b")) == "[a, b]" and render(0.0) == "0.0" and render(False) == "False" and render("") == ""
