"""Message definitions as rosbag2 stores them: the ros2msg schema text and the type hash of a type.

`message_definition("pkg/msg/Type")` is the type's .msg text followed by each (transitive) dependency
once as a "=====...\nMSG: pkg/Type" block, read from `<prefix>/share/<pkg>/msg/`; `type_hash` is the
RIHS01 hash from the type's generated `.json` next to it ("" when there is none). Needs no ROS
import: only the installed share/ files.
"""

from __future__ import annotations

import json
import os
import sys
import threading

# ROS 2 built-in .msg field types: never a dependency.
_PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
    "int64", "uint64", "string", "wstring",
}
_SEPARATOR = "=" * 80


def type_name(msg) -> str:
    """'sensor_msgs/msg/CompressedImage' for a generated ROS 2 message instance (or class)."""
    cls = msg if isinstance(msg, type) else type(msg)
    package = cls.__module__.split(".")[0]
    return f"{package}/msg/{cls.__name__}"


def _share_prefixes(package: str) -> list[str]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    module = sys.modules.get(package)
    if module is None:
        try:
            module = __import__(package)
        except ImportError:
            module = None
    if module is not None and getattr(module, "__file__", None):
        # <prefix>/lib/pythonX.Y/site-packages/<pkg>/__init__.py -> <prefix>
        prefixes.append(os.path.abspath(os.path.join(os.path.dirname(module.__file__), "..", "..", "..", "..")))
    prefixes.append(sys.prefix)
    return prefixes


def _msg_file(package: str, name: str) -> str:
    for prefix in _share_prefixes(package):
        path = os.path.join(prefix, "share", package, "msg", f"{name}.msg")
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no {package}/msg/{name}.msg under share/ of {_share_prefixes(package)}")


def _dependencies(package: str, text: str) -> list[tuple[str, str]]:
    """The (package, Type) of every non-primitive field of a .msg text, in order of appearance."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or "=" in parts[0]:
            continue
        field_type = parts[0].split("[", 1)[0].split("<=", 1)[0]
        if field_type in _PRIMITIVES:
            continue
        if "/" in field_type:
            bits = field_type.split("/")
            dep = (bits[0], bits[-1])
        else:
            dep = (package, field_type)
        if dep not in found:
            found.append(dep)
    return found


_DEFINITIONS: dict[str, str] = {}
_DEFINITIONS_LOCK = threading.Lock()


def message_definition(full_type: str) -> str:
    """The ros2msg schema text of 'pkg/msg/Type' as rosbag2 writes it: the type's .msg text, then each
    (transitive) dependency once as '====...\\nMSG: pkg/Type\\n<its .msg text>'."""
    with _DEFINITIONS_LOCK:
        if full_type in _DEFINITIONS:
            return _DEFINITIONS[full_type]
    package, _, name = full_type.split("/")
    with open(_msg_file(package, name), encoding="utf-8") as f:
        root = f.read()
    parts = [root.rstrip("\n")]
    seen = {(package, name)}
    todo = list(_dependencies(package, root))
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        with open(_msg_file(*dep), encoding="utf-8") as f:
            text = f.read()
        parts.append(f"{_SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{text.rstrip(chr(10))}")
        todo.extend(d for d in _dependencies(dep[0], text) if d not in seen)
    definition = "\n".join(parts) + "\n"
    with _DEFINITIONS_LOCK:
        _DEFINITIONS[full_type] = definition
    return definition


def type_hash(full_type: str) -> str:
    """The RIHS01 type description hash of 'pkg/msg/Type' (rosbag2's type_description_hash), "" if unknown."""
    package, _, name = full_type.split("/")
    try:
        path = _msg_file(package, name)[:-len(".msg")] + ".json"
        with open(path, encoding="utf-8") as f:
            hashes = json.load(f).get("type_hashes", [])
    except (OSError, ValueError):
        return ""
    return next((h.get("hash_string", "") for h in hashes if h.get("type_name") == full_type), "")
