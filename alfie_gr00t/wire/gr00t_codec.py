"""The Isaac-GR00T PolicyServer codec: msgpack bytes <-> Python values, both upstream wire generations.

Isaac-GR00T's PolicyServer/PolicyClient exchange msgpack messages (``use_bin_type=True``) over a
ZeroMQ REQ/REP socket. Requests are maps ``{"endpoint": name, "data": {...}, "api_token": str}``.
Two upstream generations encode numpy arrays and ``ModalityConfig`` differently (docs/design.md#isaac-gr00ts-protocol):

* **N1.6** (tag ``n1.6-release``): arrays as ``{"__ndarray_class__": True, "as_npy": <np.save
  bytes, allow_pickle=False>}``; configs as ``{"__ModalityConfig_class__": True, "as_json": {...}}``.
* **N1.7** (upstream main since 2026-05): arrays as msgpack-numpy 0.4.8 envelopes whose keys are
  msgpack *bin*: ``{b"nd": True, b"type": dtype.str, b"kind": b"", b"shape": [...], b"data": raw
  bytes}``; numpy scalars as ``{b"nd": False, b"type": dtype.str, b"data": raw bytes}``; Python
  complex as ``{b"complex": True, b"data": repr}``; configs as ``{"__ModalityConfig__": True,
  "as_json": {...}}``.

:func:`unpack` reads both generations in one pass and reports which one a message used
(:func:`unpack_generation`); :func:`pack` writes the one asked for. This module is ROS-free and
socket-free. The decoder is written for hostile input: nothing ever reaches pickle (object and
structured dtypes, msgpack-numpy ``kind`` ``b"O"``/``b"V"`` and every extension type are refused),
every array header is checked before numpy sees the data, msgpack container sizes are bounded by
the payload length, and every failure is a :class:`Gr00tProtocolError`, whose message the server
sends back as ``{"error": str}``.
"""

from __future__ import annotations

import ast
import io
import re
import struct
from dataclasses import dataclass
from typing import Any, Iterable

import msgpack
import numpy as np

from alfie_gr00t.wire.protocol import ProtocolError, container_counter

__all__ = [
    "Gr00tProtocolError",
    "Gr00tLimits",
    "N16",
    "N17",
    "GENERATIONS",
    "NDARRAY_MARKER",
    "MODALITY_CONFIG_MARKER",
    "MODALITY_CONFIG_MARKER_N17",
    "ENDPOINTS",
    "pack",
    "unpack",
    "unpack_generation",
    "modality_markers",
]

N16 = "n1.6"
N17 = "n1.7"
GENERATIONS = (N16, N17)

NDARRAY_MARKER = "__ndarray_class__"
MODALITY_CONFIG_MARKER = "__ModalityConfig_class__"  # N1.6
MODALITY_CONFIG_MARKER_N17 = "__ModalityConfig__"
ENDPOINTS = ("ping", "kill", "get_action", "reset", "get_modality_config")

# msgpack-numpy 0.4.8's envelope keys (bin on the wire, bytes after unpacking with raw=False)
_ND, _TYPE, _KIND, _SHAPE, _DATA, _COMPLEX = b"nd", b"type", b"kind", b"shape", b"data", b"complex"
_ARRAY_KEYS = frozenset((_ND, _TYPE, _KIND, _SHAPE, _DATA))
_SCALAR_KEYS = frozenset((_ND, _TYPE, _DATA))
_MAX_COMPLEX_CHARS = 100


class Gr00tProtocolError(ValueError):
    """Bad request in the Isaac-GR00T format; message is sent back as {"error": str}.

    ``malformed`` is True when the bytes are not a plain msgpack message at all (syntax, UTF-8,
    extension types, too many containers), False when they are msgpack with bad content.
    """

    def __init__(self, message: str, *, malformed: bool = False):
        super().__init__(message)
        self.malformed = malformed


@dataclass(frozen=True)
class Gr00tLimits:
    max_batch_size: int = 8
    max_frames: int = 4  # T
    max_image_side: int = 2048  # H and W of one frame
    max_array_bytes: int = 64 << 20  # one ndarray payload
    max_language_chars: int = 1024


_DEFAULT_LIMITS = Gr00tLimits()


def modality_markers(generation: str | None) -> tuple[str, ...]:
    """The ModalityConfig marker key(s) to write for a generation; None (unknown) writes both.

    A map carrying both markers decodes in either upstream client: each one's object hook tests
    only for its own key and builds ``ModalityConfig(**obj["as_json"])``.
    """
    if generation == N16:
        return (MODALITY_CONFIG_MARKER,)
    if generation == N17:
        return (MODALITY_CONFIG_MARKER_N17,)
    if generation is None:
        return (MODALITY_CONFIG_MARKER, MODALITY_CONFIG_MARKER_N17)
    raise ValueError(f"generation must be {N16!r}, {N17!r} or None, got {generation!r}")


# --------------------------------------------------------------------------- encoding


def _refuse_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.kind in "OV" or dtype.fields is not None:
        raise TypeError(f"cannot send an array of dtype {dtype} in the Isaac-GR00T format "
                        "(object and structured dtypes would need pickle); convert it to a numeric dtype")


def _encode_n16(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        _refuse_dtype(obj.dtype)
        buffer = io.BytesIO()
        np.save(buffer, obj, allow_pickle=False)
        return {NDARRAY_MARKER: True, "as_npy": buffer.getvalue()}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialize {type(obj).__name__} in the Isaac-GR00T format")


def _encode_n17(obj: Any) -> Any:
    """msgpack-numpy 0.4.8's encode, minus its pickle branch (kind 'O'/'V' are refused)."""
    if isinstance(obj, np.ndarray):
        _refuse_dtype(obj.dtype)
        data = obj.data if obj.flags["C_CONTIGUOUS"] else obj.tobytes()
        return {_ND: True, _TYPE: obj.dtype.str, _KIND: b"", _SHAPE: obj.shape, _DATA: data}
    if isinstance(obj, (np.bool_, np.number)):
        return {_ND: False, _TYPE: obj.dtype.str, _DATA: obj.tobytes()}
    if isinstance(obj, complex):
        return {_COMPLEX: True, _DATA: repr(obj)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialize {type(obj).__name__} in the Isaac-GR00T format")


def pack(obj, generation: str = N16) -> bytes:
    """msgpack (use_bin_type=True) with numpy arrays in the given generation's form.

    N1.6: ``{"__ndarray_class__": True, "as_npy": np.save bytes}`` (byte-identical to upstream's
    ``MsgSerializer.to_bytes`` at n1.6-release). N1.7: msgpack-numpy envelopes with bin keys, in
    msgpack-numpy's key order (byte-identical to ``msgpack.packb(x, default=mnp.encode)``).
    """
    if generation == N17:
        return msgpack.packb(obj, use_bin_type=True, default=_encode_n17)
    if generation != N16:
        raise ValueError(f"generation must be {N16!r} or {N17!r}, got {generation!r}")
    return msgpack.packb(obj, use_bin_type=True, default=_encode_n16)


# --------------------------------------------------------------------------- decoding

_NPY_MAGIC = b"\x93NUMPY"
_NPY_MAX_HEADER = 4096  # np.save writes ~128 bytes for the dtypes accepted here
_NPY_MAX_NDIM = 32
# What np.save / dtype.str write for plain numeric and fixed-width string dtypes.
_DESCR = re.compile(r"[<>|=]?(?:[biufc][0-9]{1,2}|[SU][0-9]{1,9})")
_KINDS = frozenset("biufcSU")
# The header exactly as np.save writes it; anything else goes through the full check.
_NPY_FAST = re.compile(
    r"\{'descr': '([<>|=]?[biufcSU][0-9]{1,9})', 'fortran_order': (False|True), "
    r"'shape': \(((?:[0-9]{1,12}, )*[0-9]{1,12},?|)\), \} *\n")


def _npy_error(message: str) -> Gr00tProtocolError:
    return Gr00tProtocolError(f"bad ndarray payload: {message}")


def _plain_dtype(descr: Any, error) -> np.dtype:
    """A dtype from its string form, refusing everything but bool/int/float/complex/fixed strings."""
    if not isinstance(descr, str) or not _DESCR.fullmatch(descr):
        raise error(f"dtype {descr!r} refused (only bool, integer, float, complex and fixed-width string arrays)")
    try:
        dtype = np.dtype(descr)
    except Exception:
        raise error(f"invalid dtype {descr!r}") from None
    if dtype.kind not in _KINDS or dtype.hasobject or dtype.fields is not None or dtype.itemsize == 0:
        raise error(f"dtype {descr!r} refused")
    return dtype


def _checked_shape(shape: Any, dtype: np.dtype, descr: str, limits: Gr00tLimits, error) -> tuple[tuple, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) > _NPY_MAX_NDIM:
        raise error(f"'shape' must be a sequence of at most {_NPY_MAX_NDIM} dims")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise error(f"bad dimension {dim!r} in shape {shape!r}")
        count *= dim
    nbytes = count * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise error(f"shape {tuple(shape)!r} of {descr} needs {nbytes} bytes, limit is {limits.max_array_bytes}")
    return tuple(shape), count


def _npy_header(data: bytes) -> tuple[int, str]:
    if len(data) < 10 or data[:6] != _NPY_MAGIC:
        raise _npy_error("missing .npy magic")
    major = data[6]
    if data[7] != 0:  # numpy reads only versions 1.0, 2.0 and 3.0
        raise _npy_error(f"unsupported .npy version {major}.{data[7]}")
    if major == 1:
        (header_len,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif major in (2, 3):
        if len(data) < 12:
            raise _npy_error("truncated .npy header")
        (header_len,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise _npy_error(f"unsupported .npy version {major}.{data[7]}")
    if header_len > _NPY_MAX_HEADER:
        raise _npy_error(f".npy header of {header_len} bytes exceeds {_NPY_MAX_HEADER}")
    end = start + header_len
    if len(data) < end:
        raise _npy_error("truncated .npy header")
    try:
        return end, data[start:end].decode("utf-8" if major == 3 else "latin-1")
    except UnicodeDecodeError:
        raise _npy_error("unreadable .npy header (UnicodeDecodeError)") from None


def _npy_fields(text: str) -> tuple[Any, Any, Any]:
    fast = _NPY_FAST.fullmatch(text)
    if fast:
        descr, fortran, dims = fast.groups()
        return descr, fortran == "True", tuple(int(d) for d in dims.split(",") if d.strip())
    try:
        header = ast.literal_eval(text)
    except Exception as exc:  # SyntaxError, ValueError, MemoryError, RecursionError...
        raise _npy_error(f"unreadable .npy header ({type(exc).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _npy_error("header must have exactly 'descr', 'fortran_order' and 'shape'")
    if not isinstance(header["shape"], tuple):
        raise _npy_error(f"'shape' must be a tuple of at most {_NPY_MAX_NDIM} dims")
    return header["descr"], header["fortran_order"], header["shape"]


def _load_npy(data: Any, limits: Gr00tLimits) -> np.ndarray:
    """An .npy byte string -> a (read-only) array, validated completely before numpy reads the data."""
    if not isinstance(data, bytes):
        raise _npy_error(f"'as_npy' must be bin bytes, got {type(data).__name__}")
    end, text = _npy_header(data)
    descr, fortran, shape = _npy_fields(text)
    dtype = _plain_dtype(descr, _npy_error)
    if not isinstance(fortran, bool):
        raise _npy_error("'fortran_order' must be a bool")
    shape, count = _checked_shape(shape, dtype, descr, limits, _npy_error)
    have, nbytes = len(data) - end, count * dtype.itemsize
    if have < nbytes:
        raise _npy_error(f"truncated data: shape {shape!r} needs {nbytes} bytes, got {have}")
    if have > nbytes:
        raise _npy_error(f"{have - nbytes} trailing bytes after array data")
    flat = np.frombuffer(data, dtype=dtype, count=count, offset=end)
    return flat.reshape(shape, order="F" if fortran else "C")


def _mnp_error(message: str) -> Gr00tProtocolError:
    return Gr00tProtocolError(f"bad msgpack-numpy payload: {message}")


def _load_mnp(obj: dict, limits: Gr00tLimits) -> Any:
    """A msgpack-numpy 0.4.8 envelope -> a (read-only) array or a numpy scalar; never pickle."""
    nd = obj[_ND]
    if nd is not True and nd is not False:
        raise _mnp_error(f"b'nd' must be true or false, got {type(nd).__name__}")
    kind = obj.get(_KIND, b"")
    if kind in (b"O", "O"):
        raise _mnp_error("object arrays (kind b'O') are refused: msgpack-numpy would unpickle them")
    if kind in (b"V", "V"):
        raise _mnp_error("structured arrays (kind b'V') are refused; send plain numeric arrays")
    if kind not in (b"", ""):
        raise _mnp_error(f"unknown kind {kind!r}")
    extra = set(obj) - (_ARRAY_KEYS if nd else _SCALAR_KEYS)
    if extra:
        raise _mnp_error(f"unexpected keys {sorted(repr(k) for k in extra)} in an {'array' if nd else 'scalar'} envelope")
    descr = obj.get(_TYPE)
    if isinstance(descr, bytes):
        descr = descr.decode("latin-1")
    dtype = _plain_dtype(descr, _mnp_error)
    data = obj.get(_DATA)
    if not isinstance(data, bytes):
        raise _mnp_error(f"b'data' must be bin bytes, got {type(data).__name__}")
    if not nd:
        if len(data) != dtype.itemsize:
            raise _mnp_error(f"scalar of {descr} needs {dtype.itemsize} bytes, got {len(data)}")
        return np.frombuffer(data, dtype=dtype)[0]
    if _SHAPE not in obj:
        raise _mnp_error("array envelope without b'shape'")
    shape, count = _checked_shape(obj[_SHAPE], dtype, descr, limits, _mnp_error)
    if len(data) != count * dtype.itemsize:
        raise _mnp_error(f"shape {shape!r} of {descr} needs {count * dtype.itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def _load_complex(obj: dict) -> complex:
    if set(obj) != {_COMPLEX, _DATA} or obj[_COMPLEX] is not True:
        raise _mnp_error("complex envelope must be exactly {b'complex': True, b'data': str}")
    text = obj[_DATA]
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not isinstance(text, str) or len(text) > _MAX_COMPLEX_CHARS:
        raise _mnp_error("complex b'data' must be a short string")
    try:
        return complex(text)
    except ValueError:
        raise _mnp_error(f"complex b'data' {text[:40]!r} is not a complex number") from None


def _refuse_ext(code: int, data: bytes) -> Any:
    raise Gr00tProtocolError(f"msgpack extension type {code} is not allowed", malformed=True)


def _refuse_timestamps(items: Iterable[Any]) -> None:
    # msgpack turns ext type -1 into Timestamp without consulting ext_hook.
    for item in items:
        if isinstance(item, msgpack.Timestamp):
            raise Gr00tProtocolError("msgpack extension type -1 (timestamp) is not allowed", malformed=True)


def unpack_generation(payload, limits: Gr00tLimits = _DEFAULT_LIMITS) -> tuple[Any, str | None]:
    """Decode one Isaac-GR00T message of either generation; returns ``(value, generation)``.

    ``generation``, from the strongest sign the message shows: arrays first (any msgpack-numpy
    envelope: :data:`N17`; else any ``__ndarray_class__`` array: :data:`N16`), then a bin (bytes)
    map key or the N1.7 ModalityConfig marker (N1.7), then the N1.6 marker (N1.6), then a
    ModalityConfig map carrying both markers (N1.7: a peer that reads both, ours); None when it
    shows none (ping, get_modality_config and reset requests look the same in both generations).

    Arrays of both forms decode to read-only numpy arrays over the message's own bytes, after
    their dtype (bool/int/float/complex/fixed-width strings only) and shape (data length exactly
    as declared, at most ``limits.max_array_bytes``) passed. Marker maps of either
    ModalityConfig generation decode to the plain field dict. Extension types (timestamps
    included), non-UTF-8 strings, non-string/bytes map keys and every other msgpack error raise
    :class:`Gr00tProtocolError`.
    """
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise Gr00tProtocolError(f"payload must be bytes, got {type(payload).__name__}")
    size = memoryview(payload).nbytes
    count = container_counter()
    # what the message shows, strongest sign first: msgpack-numpy envelopes, npy arrays, bin keys or the
    # N1.7 marker, the N1.6 marker, a config map with both markers
    seen = {"envelope": False, "npy": False, "n17": False, "n16": False, "both": False}

    def list_hook(items: list) -> list:
        count(items)
        _refuse_timestamps(items)
        return items

    def object_hook(obj: dict) -> Any:
        count(obj)
        _refuse_timestamps(obj.values())
        if _ND in obj:
            seen["envelope"] = True
            return _load_mnp(obj, limits)
        if _COMPLEX in obj:
            seen["envelope"] = True
            return _load_complex(obj)
        n16, n17 = MODALITY_CONFIG_MARKER in obj, MODALITY_CONFIG_MARKER_N17 in obj
        if n16 or n17:
            seen["n16" if not n17 else "n17" if not n16 else "both"] = True
            fields = obj.get("as_json")
            if not isinstance(fields, dict):
                raise Gr00tProtocolError("ModalityConfig marker without an 'as_json' map")
            return dict(fields)
        if NDARRAY_MARKER in obj:
            seen["npy"] = True
            return _load_npy(obj.get("as_npy"), limits)
        if not seen["n17"]:
            for key in obj:
                if type(key) is bytes:
                    seen["n17"] = True
                    break
        return obj

    try:
        value = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            use_list=True,
            object_hook=object_hook,
            list_hook=list_hook,
            ext_hook=_refuse_ext,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=size,
        )
    except Gr00tProtocolError:
        raise
    except ProtocolError as exc:
        raise Gr00tProtocolError(str(exc), malformed=True) from None
    except UnicodeDecodeError:
        raise Gr00tProtocolError("msgpack string is not valid UTF-8", malformed=True) from None
    except Exception as exc:  # ExtraData, FormatError, StackError, ValueError, TypeError...
        detail = str(exc) or type(exc).__name__
        raise Gr00tProtocolError(f"malformed msgpack message: {detail}", malformed=True) from None
    _refuse_timestamps((value,))
    if seen["envelope"] or seen["npy"]:
        return value, N17 if seen["envelope"] else N16
    if seen["n17"] or seen["n16"]:
        return value, N17 if seen["n17"] else N16
    return value, N17 if seen["both"] else None


def unpack(payload, limits: Gr00tLimits = _DEFAULT_LIMITS) -> Any:
    """Decode one Isaac-GR00T message of either generation (see :func:`unpack_generation`)."""
    return unpack_generation(payload, limits)[0]
