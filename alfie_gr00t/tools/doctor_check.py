"""What every groot_doctor check is: a level (`ok`, `warn`, `fail`), a topic, a message and the fix,
and the few safe probes the checks share (import without raising, version strings)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    level: str
    topic: str
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.level:4}  {self.topic}: {self.message}"
        return text + (f"\n      fix: {self.fix}" if self.fix and self.level != OK else "")


def version_of(module) -> str:
    return str(getattr(module, "__version__", "") or "?")


def import_or_error(name: str):
    """The module, or the exception that importing it raised (never raises)."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # ImportError, or a binary built against another numpy
        return exc


def major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
