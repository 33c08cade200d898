"""Isaac-GR00T's wire format under hostile payloads (object dtypes, lying npy headers, extension types,
deep nesting) and property tests: alfie_gr00t.wire.gr00t refuses each with a clear error and never
unpickles; the codec tests are in test_gr00t_protocol.py."""

from __future__ import annotations

import io
import struct

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alfie_gr00t.wire import gr00t as gp
from alfie_gr00t.wire.gr00t import Gr00tLimits, Gr00tProtocolError

from support import gr00t_wire
from support.gr00t_observations import CAMERAS, GROUPS, make_observation, marker, npy_bytes, npy_with_header


# --------------------------------------------------------------------------- hostile payloads

_TRAP = {"fired": False}


def _trap_fired():
    _TRAP["fired"] = True
    return "unpickled"


class PickleTrap:
    def __reduce__(self):
        return (_trap_fired, ())


def test_object_dtype_is_refused_without_unpickling():
    armed = npy_bytes(np.array([PickleTrap(), 1], dtype=object), allow_pickle=True)
    _TRAP["fired"] = False
    with pytest.raises(Gr00tProtocolError, match="refused"):
        gp.unpack(marker(armed))
    assert _TRAP["fired"] is False
    # the payload really is armed: numpy with pickles allowed runs the trap
    np.load(io.BytesIO(armed), allow_pickle=True)
    assert _TRAP["fired"] is True
    _TRAP["fired"] = False


def test_truncated_npy_is_refused():
    good = npy_bytes(np.arange(100, dtype=np.float32))
    for cut in (0, 5, 9, 11, 60, len(good) - 200, len(good) - 1):
        with pytest.raises(Gr00tProtocolError):
            gp.unpack(marker(good[:cut]))
    with pytest.raises(Gr00tProtocolError, match="trailing"):
        gp.unpack(marker(good + b"\x00"))


def test_absurd_shape_is_refused_before_allocation():
    npy = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }")
    with pytest.raises(Gr00tProtocolError, match="limit"):
        gp.unpack(marker(npy))


def test_array_byte_limit_applies():
    npy = npy_bytes(np.zeros(1000, np.float64))
    assert gp.unpack(marker(npy))["x"].shape == (1000,)
    with pytest.raises(Gr00tProtocolError, match="limit is 4096"):
        gp.unpack(marker(npy), Gr00tLimits(max_array_bytes=4096))


@pytest.mark.parametrize("header", [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (True,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': 4, }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': [4], }",
    "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '|V8', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '<f4,<i4', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '|S0', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
    "{'descr': '<f4', 'shape': (1,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
    "__import__('os').system('false')",
    "[" * 1000 + "]" * 1000,
    "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 40 + "), }",
])
def test_bad_npy_headers_are_refused(header):
    with pytest.raises(Gr00tProtocolError):
        gp.unpack(marker(npy_with_header(header, b"\x00" * 4)))


def test_bad_npy_framing_is_refused():
    good = npy_bytes(np.zeros(2, np.float32))
    with pytest.raises(Gr00tProtocolError, match="magic"):
        gp.unpack(marker(b"PK\x03\x04" + good[4:]))
    with pytest.raises(Gr00tProtocolError, match="version"):
        gp.unpack(marker(good[:6] + b"\x09\x00" + good[8:]))
    with pytest.raises(Gr00tProtocolError, match="exceeds"):
        gp.unpack(marker(b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{}"))
    with pytest.raises(Gr00tProtocolError, match="as_npy"):
        gp.unpack(msgpack.packb({"__ndarray_class__": True, "as_npy": "text"}, use_bin_type=True))
    with pytest.raises(Gr00tProtocolError, match="as_npy"):
        gp.unpack(msgpack.packb({"__ndarray_class__": True}, use_bin_type=True))
    with pytest.raises(Gr00tProtocolError, match="as_json"):
        gp.unpack(msgpack.packb({"__ModalityConfig_class__": True, "as_json": [1]}, use_bin_type=True))


def test_npy_versions_2_and_3_are_read():
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    v1 = npy_bytes(array)
    header_len = struct.unpack("<H", v1[8:10])[0]
    header = v1[10:10 + header_len]
    body = v1[10 + header_len:]
    for version in (2, 3):
        v = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(header)) + header + body
        np.testing.assert_array_equal(gp.unpack(marker(v))["x"], array)


@pytest.mark.parametrize("value", [
    msgpack.ExtType(5, b"abc"),
    [1, msgpack.ExtType(0, b"")],
    {"k": msgpack.ExtType(127, b"z")},
    msgpack.Timestamp(10, 0),
    [msgpack.Timestamp(1, 5)],
    {"t": msgpack.Timestamp(1, 5)},
])
def test_ext_types_are_refused(value):
    with pytest.raises(Gr00tProtocolError, match="extension type"):
        gp.unpack(msgpack.packb(value, use_bin_type=True, datetime=False))


@pytest.mark.parametrize("payload", [
    b"\xa2\xff\xfe",
    b"\x81\xa1k\xa2\xc3\x28",
    b"\x81\xa2\xff\xfe\x01",
])
def test_non_utf8_strings_are_refused(payload):
    with pytest.raises(Gr00tProtocolError, match="UTF-8"):
        gp.unpack(payload)


@pytest.mark.parametrize("payload", [
    b"",
    b"\xc1",
    b"\x92\x01",
    b"\x01\x02",
    b"\x81\x01\x02",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xdb\x7f\xff\xff\xff",
    b"\x91" * 5000 + b"\xc0",
    b"\x81\x91\x01\x02",
])
def test_malformed_msgpack_is_refused(payload):
    with pytest.raises(Gr00tProtocolError):
        gp.unpack(payload)


# --------------------------------------------------------------------------- property tests

_leaves = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
_trees = st.recursive(_leaves, lambda children: st.lists(children, max_size=5)
                      | st.dictionaries(st.text(max_size=8), children, max_size=5), max_leaves=30)


def _assert_plain(value):
    stack = [value]
    while stack:
        item = stack.pop()
        assert not isinstance(item, (msgpack.ExtType, msgpack.Timestamp))
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _decode_or_refuse(payload):
    try:
        value = gp.unpack(payload)
    except Gr00tProtocolError:
        return None
    _assert_plain(value)
    return value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees)
def test_random_trees_round_trip(tree):
    assert gp.unpack(gp.pack(tree)) == tree
    assert gp.unpack(gr00t_wire.to_bytes(tree)) == tree


def _valid_messages():
    small = make_observation(batch=1, height=4, width=4)
    return [
        gp.pack(gr00t_wire.request("get_action", {"observation": small, "options": None}, api_token="x")),
        gp.pack(gp.modality_config(CAMERAS, GROUPS)),
        gp.pack([gp.action_dict(np.ones((1, 4, 21)), GROUPS), {}]),
        gp.pack({"a": np.arange(5, dtype=np.int16), "b": [np.array(["u"]), np.zeros((2, 0))]}),
    ]


_VALID = _valid_messages()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_VALID))), st.data())
def test_corrupted_messages_only_decode_or_refuse(index, data):
    payload = bytearray(_VALID[index])
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(payload) - 1), st.integers(0, 7)), max_size=6))
    for position, bit in flips:
        payload[position] ^= 1 << bit
    cut = data.draw(st.integers(0, len(payload)))
    _decode_or_refuse(bytes(payload))
    _decode_or_refuse(bytes(payload[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_decode_or_refuse(payload):
    _decode_or_refuse(payload)
    _decode_or_refuse(b"\x81\xa1x\x82\xb1__ndarray_class__\xc3\xa6as_npy\xc4" + bytes([len(payload)]) + payload)
