"""The exact length of a ROS 2 CDR message, found by walking its bytes with the message's own type.

`rclpy.serialization.serialize_message` returns the buffer the middleware sized for the message:
under rmw_fastrtps_cpp that is the *estimated* size, so the bytes after the CDR end are whatever
the buffer held (zeros, or left-over heap memory). A strict reader (rosbags, `ros2 bag`) refuses
such a message. `cdr_length(cls, data)` reads the buffer as CDR (XCDR1, little or big endian,
alignment counted from the end of the 4-byte encapsulation header), field by field from the
generated Python class's `SLOT_TYPES`, and returns where the message ends; `exact_cdr(cls, data)`
is the buffer trimmed there.

Works for every type built from basic types, strings, nested messages, arrays and sequences
(bounded or not). Wide strings are refused (no message the package records uses them).
"""

from __future__ import annotations

import importlib
import struct
import threading

_BASIC_SIZES = {
    "boolean": 1, "octet": 1, "char": 1, "int8": 1, "uint8": 1,
    "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "float": 4,
    "int64": 8, "uint64": 8, "double": 8,
}
_HEADER = 4  # encapsulation: 2 bytes representation id, 2 bytes options


class CdrError(ValueError):
    """The bytes are not a CDR serialization of the type (too short, or an unknown encapsulation)."""


_PLANS: dict[type, tuple] = {}
_PLANS_LOCK = threading.Lock()


def _kind(slot) -> str:
    return type(slot).__name__


def _message_class(slot):
    module = importlib.import_module(".".join(slot.namespaces))
    return getattr(module, slot.name)


def _plan(cls) -> tuple:
    """The class's fields as a tuple of steps: ("basic", size) | ("string",) | ("msg", cls) |
    ("array", element step, count) | ("seq", element step)."""
    with _PLANS_LOCK:
        plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    slots = tuple(getattr(cls, "SLOT_TYPES", ()))
    steps = tuple(_step(s) for s in slots) if slots else (("basic", 1),)  # an empty struct holds one uint8
    with _PLANS_LOCK:
        _PLANS[cls] = steps
    return steps


def _step(slot) -> tuple:
    kind = _kind(slot)
    if kind == "BasicType":
        if slot.typename not in _BASIC_SIZES:
            raise CdrError(f"basic type {slot.typename!r} is not supported")
        return ("basic", _BASIC_SIZES[slot.typename])
    if kind in ("UnboundedString", "BoundedString"):
        return ("string",)
    if kind == "NamespacedType":
        return ("msg", _message_class(slot))
    if kind == "Array":
        return ("array", _step(slot.value_type), int(slot.size))
    if kind in ("UnboundedSequence", "BoundedSequence"):
        return ("seq", _step(slot.value_type))
    raise CdrError(f"field type {kind} is not supported (wide strings are not)")


class _Walker:
    def __init__(self, data, little: bool, zero: bool = False):
        self.data = data
        self.zero = zero
        self.u32 = struct.Struct("<I" if little else ">I")
        self.size = len(data)

    def align(self, pos: int, n: int) -> int:
        pad = (-(pos - _HEADER)) % n
        if pad and self.zero and pos + pad <= self.size:
            self.data[pos:pos + pad] = bytes(pad)  # alignment padding: zeros, not left-over memory
        return pos + pad

    def count(self, pos: int) -> tuple[int, int]:
        pos = self.align(pos, 4)
        if pos + 4 > self.size:
            raise CdrError(f"truncated: a length at byte {pos} of {self.size}")
        return self.u32.unpack_from(self.data, pos)[0], pos + 4

    def struct(self, cls, pos: int) -> int:
        for step in _plan(cls):
            pos = self.step(step, pos)
        return pos

    def step(self, step: tuple, pos: int) -> int:
        kind = step[0]
        if kind == "basic":
            pos = self.align(pos, step[1]) + step[1]
        elif kind == "string":
            n, pos = self.count(pos)
            pos += n
        elif kind == "msg":
            pos = self.struct(step[1], pos)
        elif kind == "array":
            pos = self.elements(step[1], step[2], pos)
        else:  # seq
            n, pos = self.count(pos)
            pos = self.elements(step[1], n, pos)
        if pos > self.size:
            raise CdrError(f"truncated: the message needs {pos} bytes, the buffer has {self.size}")
        return pos

    def elements(self, element: tuple, n: int, pos: int) -> int:
        if n == 0:
            return pos
        if element[0] == "basic":  # one jump: contiguous, aligned once
            return self.align(pos, element[1]) + n * element[1]
        for _ in range(n):
            pos = self.step(element, pos)
        return pos


def _check(data) -> bool:
    """True for little endian; CdrError when `data` is not plain CDR."""
    if len(data) < _HEADER:
        raise CdrError(f"{len(data)} bytes: shorter than the CDR encapsulation header")
    representation = bytes(data[:2])
    if representation not in (b"\x00\x00", b"\x00\x01"):
        raise CdrError(f"encapsulation {representation.hex()} is not plain CDR (big or little endian)")
    return representation == b"\x00\x01"


def cdr_length(cls, data) -> int:
    """Bytes of `data` (encapsulation header included) that the CDR serialization of `cls` takes."""
    return _Walker(data, _check(data)).struct(cls, _HEADER)


def exact_cdr(cls, data) -> bytes:
    """`data` up to the end of its CDR message, alignment padding zeroed (the middleware leaves it
    uninitialized): the canonical serialization, byte for byte what an independent CDR serializer
    writes for the same message, nothing after the end."""
    buffer = bytearray(data)
    walker = _Walker(buffer, _check(buffer), zero=True)
    end = walker.struct(cls, _HEADER)
    buffer[2:4] = b"\x00\x00"  # options: no padding announced (there is none after the end)
    return bytes(buffer[:end])
