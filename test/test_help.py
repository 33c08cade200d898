"""`--help` on every entry point answers with a usage and exits 0, starting nothing: the console scripts
of setup.py (ROS nodes included: they explain their ROS parameters) and the single-process bringup."""

import contextlib
import importlib
import io
import os
import re

import pytest

from support.ros_helpers import REPO


def entry_points() -> list[tuple[str, str]]:
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        text = f.read()
    found = re.findall(r'"(\w+) = (alfie_gr00t[\w.]+):main"', text)
    assert len(found) >= 10, found
    return found + [("bringup", "alfie_gr00t.tools.bringup")]


@pytest.mark.parametrize("name, module", entry_points(), ids=[n for n, _ in entry_points()])
def test_help_prints_a_usage_and_exits_0(name, module):
    try:
        main = importlib.import_module(module).main
    except ImportError as exc:  # a ROS-free run (no rclpy) or an optional extra the tool needs
        pytest.skip(f"{module}: {exc}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = main(["--help"])
        except SystemExit as exc:  # argparse's --help
            code = exc.code
    text = out.getvalue()
    assert code in (0, None), (name, code, text)
    assert text.lstrip().lower().startswith("usage:") and len(text.splitlines()) >= 3, text
    assert "name:=value, got" not in text
