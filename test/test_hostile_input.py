"""Hostile input against the policy server (reliability: property tests, a hostile campaign
over a real socket, a concurrent load test, and empty arrays with giant shapes; the resource bounds are in
test_request_limits.py).

The property every test checks: `PolicyService.respond` returns bytes that decode to either
a correct ok reply or an error reply (`status: error` + `error_message` in our protocol,
`{"error": str}` for Isaac-GR00T requests), never raises, and finishes in bounded time.
The time bound (HANG_BOUND_S) only catches hangs; nothing here asserts speed.
Figures (messages tried, RSS, throughput, p99) are printed: run with -s or read junit.
"""

from __future__ import annotations

import io
import math
import random
import resource
import threading
import time

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alfie_gr00t.server.service import BackgroundServer
from alfie_gr00t.wire import images, protocol
from alfie_gr00t.wire.transport import ReqClient, RequestTimeout

from support import gr00t_wire
from support.hostile_messages import (CAMERAS, DIM, GROUPS, HORIZON, SMALL_JPEGS, VALID_MESSAGES, Tally,
                                      check_gr00t, check_ours, exercise, gr00t_tree, jpeg_declaring, make_service,
                                      mock_chunk, npy_file, ours_tree, pack_gr00t, pack_ours, pickled_tripwire_npy,
                                      replace_at, request_kind, small_jpegs, tiny_jpeg, traced_peak, vm_rss_kb)
from support.load import run_load
from support.tripwire import TRIPWIRE_RAN

ENDPOINTS = ["ping", "get_action", "reset", "get_modality_config", "kill"]
SETTINGS = settings(
    max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def service():
    svc = make_service()
    yield svc
    svc.close()


def test_valid_messages_are_answered_ok(service):
    tally = Tally()
    for payload in VALID_MESSAGES:
        assert exercise(service, payload, tally) == "ok"
    assert service.engine.calls == 4


# ============================================================== strategies

KEYS = ["endpoint", "data", "observation", "options", "video", "state", "language", "task", "api_token",
        "frame_id", "timestamp", "images", "format", "width", "height", "rgb8",
        "__ndarray_class__", "as_npy", "__ModalityConfig_class__", "as_json", *CAMERAS, *(g.name for g in GROUPS)]

leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([2**64 - 1, 2**63, -(2**63), 2**32, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 3.5e38, 1e39, -0.0, 5e-324]),
    st.binary(max_size=48), st.text(max_size=24),
    st.sampled_from(ENDPOINTS + KEYS),
)
map_keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.binary(max_size=4), st.integers(-3, 3))
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(st.lists(kids, max_size=6), st.dictionaries(map_keys, kids, max_size=6)),
    max_leaves=30,
)


def pack_any(tree, bin_type: bool) -> bytes:
    # bin_type=False sends bytes as msgpack str: mostly invalid UTF-8
    return msgpack.packb(tree, use_bin_type=bin_type)


OURS_PATHS = [("timestamp",), ("frame_id",), ("images",), ("images", "left_wide"), ("images", "right_center"),
              ("images", "right_center", "width"), ("images", "right_center", "height"),
              ("images", "right_center", "data"), ("images", "right_center", "format"),
              ("state",), ("state", 0), ("state", DIM - 1), ("language",), ("api_token",)]
GR00T_PATHS = [("endpoint",), ("data",), ("data", "observation"), ("data", "options"),
               ("data", "observation", "video"), ("data", "observation", "video", "left_wide"),
               ("data", "observation", "state"), ("data", "observation", "state", "head"),
               ("data", "observation", "state", "base_velocity"), ("data", "observation", "language"),
               ("data", "observation", "language", "task"), ("data", "observation", "language", "task", 0),
               ("data", "observation", "language", "task", 0, 0), ("api_token",)]


# ============================================================== property tests (respond() directly)


def test_random_msgpack_trees(service):
    tally = Tally()

    @SETTINGS
    @given(tree=trees, bin_type=st.booleans(),
           wrap=st.sampled_from(["bare", "gr00t", "gr00t-data", "ours"]), endpoint=st.sampled_from(ENDPOINTS))
    def run(tree, bin_type, wrap, endpoint):
        if wrap == "gr00t":
            tree = {"endpoint": endpoint, "data": tree}
        elif wrap == "gr00t-data":
            tree = {"endpoint": endpoint, "data": {"observation": tree, "options": tree}}
        elif wrap == "ours":
            tree = {"timestamp": tree, "frame_id": 1, "images": tree, "state": tree, "language": tree}
        exercise(service, pack_any(tree, bin_type), tally)

    run()
    print(tally.report("random msgpack trees"))
    assert tally.tried >= 100 and service.kill_requested is False


def test_random_subtrees_inside_valid_observations(service):
    tally = Tally()

    @SETTINGS
    @given(protocol_name=st.sampled_from(["ours", "gr00t"]), data=st.data(), value=trees,
           mode=st.sampled_from(["replace", "replace", "delete", "extra"]))
    def run(protocol_name, data, value, mode):
        if protocol_name == "ours":
            path = data.draw(st.sampled_from(OURS_PATHS))
            tree = replace_at(ours_tree(raw_camera="right_center"), path, value, mode)
            payload = pack_ours(tree)
        else:
            path = data.draw(st.sampled_from(GR00T_PATHS))
            tree = replace_at(gr00t_tree(), path, value, mode)
            payload = pack_gr00t(tree)
        exercise(service, payload, tally)

    run()
    print(tally.report("random subtrees in valid observations"))
    assert tally.tried >= 100 and tally.errors > 0 and tally.ok > 0


def test_truncated_and_bit_flipped_messages(service):
    tally = Tally()

    @SETTINGS
    @given(base=st.sampled_from(VALID_MESSAGES), mode=st.sampled_from(["truncate", "flip", "splice", "insert"]),
           data=st.data())
    def run(base, mode, data):
        size = len(base)
        if mode == "truncate":
            payload = base[:data.draw(st.integers(0, size - 1))]
        elif mode == "flip":
            payload = bytearray(base)
            for bit in data.draw(st.lists(st.integers(0, size * 8 - 1), min_size=1, max_size=8)):
                payload[bit // 8] ^= 1 << (bit % 8)
            payload = bytes(payload)
        elif mode == "splice":
            at = data.draw(st.integers(0, size - 1))
            junk = data.draw(st.binary(min_size=1, max_size=16))
            payload = base[:at] + junk + base[at + len(junk):]
        else:
            at = data.draw(st.integers(0, size))
            payload = base[:at] + data.draw(st.binary(min_size=1, max_size=16)) + base[at:]
        exercise(service, payload, tally)

    run()
    print(tally.report("truncated / bit-flipped / spliced valid messages"))
    assert tally.tried >= 100 and tally.errors > 0


PLACEHOLDER = "\u2603PLACEHOLDER\u2603"  # 17 bytes of UTF-8
INVALID_UTF8_PREFIXES = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80"]


def _placeholder_positions():
    p = PLACEHOLDER
    ours = ours_tree()
    gr = gr00t_tree()
    return {
        "ours-language": pack_ours({**ours, "language": p}),
        "ours-top-key": pack_ours({**ours, p: 1}),
        "ours-camera-key": pack_ours({**ours, "images": {**{k: v for k, v in ours["images"].items()
                                                            if k != "left_wide"}, p: SMALL_JPEGS["left_wide"]}}),
        "ours-api-token": pack_ours({**ours, "api_token": p}),
        "gr00t-endpoint": pack_gr00t({**gr, "endpoint": p}),
        "gr00t-task": pack_gr00t(replace_at(gr, ("data", "observation", "language", "task", 0, 0), p)),
        "gr00t-state-key": pack_gr00t(replace_at(gr, ("data", "observation", "state", p), np.zeros((1, 1, 3), "f4"))),
        "gr00t-api-token": pack_gr00t({**gr, "api_token": p}),
        "gr00t-options": pack_gr00t(replace_at(gr, ("data", "options"), {"note": p})),
    }


PLACEHOLDER_MESSAGES = _placeholder_positions()


def test_non_utf8_strings_are_refused(service):
    tally = Tally()
    encoded = PLACEHOLDER.encode()

    @SETTINGS
    @given(where=st.sampled_from(sorted(PLACEHOLDER_MESSAGES)), prefix=st.sampled_from(INVALID_UTF8_PREFIXES),
           tail=st.binary(min_size=len(encoded), max_size=len(encoded)))
    def run(where, prefix, tail):
        invalid = (prefix + tail)[:len(encoded)]
        payload = PLACEHOLDER_MESSAGES[where]
        assert payload.count(encoded) == 1
        payload = payload.replace(encoded, invalid)
        assert exercise(service, payload, tally) == "error"

    run()
    print(tally.report("non-UTF-8 strings"))
    assert tally.tried >= 50 and tally.ok == 0


dims = st.one_of(st.integers(0, 5), st.sampled_from([0, 1, 2047, 2048, 2049, 30000, 65535, 2**31, 2**63, 2**64 - 1]),
                 st.integers(-2**63, -1))


def test_zero_size_and_giant_raw_images(service):
    tally = Tally()
    limit = service.config.max_image_side

    @SETTINGS
    @given(width=dims, height=dims, exact=st.booleans(), junk=st.binary(max_size=64),
           camera=st.sampled_from(CAMERAS))
    def run(width, height, exact, junk, camera):
        size = width * height * 3
        data = b"\x7f" * size if exact and 0 <= size <= (3 << 20) else junk
        raw = {"format": "rgb8", "width": width, "height": height, "data": data}
        verdict = exercise(service, pack_ours(replace_at(ours_tree(), ("images", camera), raw)), tally)
        if width <= 0 or height <= 0 or width > limit or height > limit or len(data) != size:
            assert verdict == "error", (width, height, len(data))

    run()
    print(tally.report("zero-size and giant raw images"))
    assert tally.tried >= 100 and tally.errors > 0


def test_zero_size_and_giant_upstream_video(service):
    tally = Tally()

    @SETTINGS
    @given(shape=st.tuples(st.sampled_from([0, 1, 2, 9]), st.sampled_from([0, 1, 5]),
                           st.sampled_from([0, 1, 14, 2049]), st.sampled_from([0, 1, 16, 2049]),
                           st.sampled_from([3, 3, 1, 4, 0])),
           camera=st.sampled_from(CAMERAS))
    def run(shape, camera):
        if math.prod(shape) > (4 << 20):
            shape = (1, 1, 2049, 2049 // 4, 3)
        tree = replace_at(gr00t_tree(), ("data", "observation", "video", camera), np.zeros(shape, np.uint8))
        verdict = exercise(service, pack_gr00t(tree), tally)
        if shape != (1, 1, 14, 16, 3) and not (shape[0] == 1 and 1 <= shape[1] <= 4 and shape[4] == 3
                                               and 1 <= shape[2] <= 2048 and 1 <= shape[3] <= 2048):
            assert verdict == "error", shape

    run()
    print(tally.report("zero-size and giant upstream video arrays"))
    assert tally.tried >= 50 and tally.errors > 0


def test_jpeg_header_declaring_30000x30000_is_refused_before_decoding(service):
    bomb = jpeg_declaring(30000, 30000)
    assert len(bomb) < 400 and images.jpeg_dimensions(bomb) == (30000, 30000)
    tally = Tally()
    for camera in CAMERAS:
        payload = pack_ours(replace_at(ours_tree(), ("images", camera), bomb))
        assert exercise(service, payload, tally) == "error"
    assert service.engine.calls == 0
    print(f"30000x30000 JPEG of {len(bomb)} bytes: refused, slowest {tally.slowest_ms:.1f} ms")


def test_jpeg_headers_declaring_any_dimensions(service):
    tally = Tally()
    base = tiny_jpeg()
    limit = service.config.max_image_side

    @settings(SETTINGS, max_examples=150)
    @given(width=st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 2048, 2049, 30000, 65535])),
           height=st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 2048, 2049, 30000, 65535])),
           camera=st.sampled_from(CAMERAS))
    def run(width, height, camera):
        if 0 < width <= limit and 0 < height <= limit and width * height > 512 * 512:
            width, height = min(width, 512), min(height, 512)  # keep legal garbage decodes cheap
        payload = pack_ours(replace_at(ours_tree(), ("images", camera), jpeg_declaring(width, height, base)))
        verdict = exercise(service, payload, tally)
        if width == 0 or height == 0 or width > limit or height > limit:
            assert verdict == "error", (width, height)

    run()
    print(tally.report("JPEG headers declaring arbitrary sizes"))
    assert tally.tried >= 100


def test_npy_object_dtypes_and_absurd_shapes(service):
    tally = Tally()
    TRIPWIRE_RAN.clear()
    pickled = pickled_tripwire_npy()
    np.load(io.BytesIO(pickled), allow_pickle=True)
    assert TRIPWIRE_RAN, "the tripwire must fire when unpickled, or this test proves nothing"
    TRIPWIRE_RAN.clear()
    descrs = ["'|O'", "'O'", "'<f4'", "'<f8'", "'|u1'", "'<i8'", "'|V8'", "\"[('a', '|O')]\"", "[('a', '<f4')]",
              "'<U5'", "'|b1'", "'<c8'", "'>f4'", "'<M8[s]'", "'<f4'"]
    shapes = st.one_of(
        st.lists(st.integers(-3, 2**63), max_size=6).map(lambda s: repr(tuple(s))),
        st.sampled_from(["(1, 1, 3)", "(1, 1, 6)", "(1000000000, 1000000000, 3)", "(2**40,)", "(-1,)", "()",
                         "[1, 1, 3]", "(1.5,)", "(1, 1, 14, 16, 3)", "(" + "1, " * 40 + ")"]),
    )

    @SETTINGS
    @given(descr=st.sampled_from(descrs), fortran=st.sampled_from(["False", "True", "0", "'no'"]), shape=shapes,
           data=st.one_of(st.binary(max_size=64), st.just(b"\0" * 12), st.just(b"\0" * 24)),
           version=st.sampled_from([1, 1, 2, 3, 9]), header_len=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
           raw_header=st.one_of(st.none(), st.text(max_size=40)), pickled_now=st.booleans(),
           where=st.sampled_from([("data", "observation", "state", "head"),
                                  ("data", "observation", "video", "left_wide"),
                                  ("data", "observation", "language", "task"), ("data", "options")]))
    def run(descr, fortran, shape, data, version, header_len, raw_header, pickled_now, where):
        blob = pickled if pickled_now else npy_file(descr, fortran, shape, data, version, header_len, raw_header)
        tree = replace_at(gr00t_tree(), where, {"__ndarray_class__": True, "as_npy": blob})
        verdict = exercise(service, pack_gr00t(tree), tally)
        if pickled_now or "O" in descr or "V" in descr:
            assert verdict == "error"
        assert TRIPWIRE_RAN == []

    run()
    print(tally.report("npy payloads (object dtypes, absurd shapes, bad headers)"))
    assert tally.tried >= 100 and tally.errors > 0


# ============================================================== hostile campaign over a real socket


def _reset_peak_rss() -> bool:
    try:  # Linux: "5" resets VmHWM (and so ru_maxrss) to the current RSS
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _random_tree(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice([None, True, 2**64 - 1, -(2**63), math.nan, math.inf, 1e39, b"\xff" * rng.randint(0, 9),
                           "x" * rng.randint(0, 9), rng.random(), rng.randint(-5, 5), rng.choice(KEYS)])
    if roll < 0.75:
        return [_random_tree(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): _random_tree(rng, depth + 1) for _ in range(rng.randint(0, 4))}


class Campaign:
    """Produces a seeded mix of hostile and valid payloads with what each must get back."""

    def __init__(self, seed: int, max_message_bytes: int):
        self.rng = random.Random(seed)
        self.max_bytes = max_message_bytes
        self.pickled = pickled_tripwire_npy()
        self.huge_jpeg = jpeg_declaring(30000, 30000)
        self.frame_id = 0

    def valid_ours(self):
        self.frame_id += 1
        state = [round(self.rng.uniform(-0.5, 0.5), 4) for _ in range(DIM)]
        return pack_ours(ours_tree(frame_id=self.frame_id, state=state)), ("ours", self.frame_id, state)

    def valid_gr00t(self):
        tree = gr00t_tree(batch=self.rng.randint(1, 3), width=8, height=6)
        return pack_gr00t(tree), ("gr00t", None, None)

    def hostile(self) -> bytes:
        rng = self.rng
        base = rng.choice(VALID_MESSAGES)
        kind = rng.randrange(16)
        if kind == 0:
            return rng.randbytes(rng.randint(0, 2000))
        if kind == 1:
            return base[:rng.randrange(len(base))]
        if kind == 2:
            flipped = bytearray(base)
            for _ in range(rng.randint(1, 6)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            return bytes(flipped)
        if kind == 3:
            return msgpack.packb(_random_tree(rng), use_bin_type=rng.random() < 0.5)
        if kind == 4:
            path = rng.choice(OURS_PATHS)
            return pack_ours(replace_at(ours_tree(raw_camera="right_center"), path, _random_tree(rng)))
        if kind == 5:
            return pack_gr00t(replace_at(gr00t_tree(), rng.choice(GR00T_PATHS), _random_tree(rng)))
        if kind == 6:
            where = rng.choice(["head", "left_arm"])
            return pack_gr00t(replace_at(gr00t_tree(), ("data", "observation", "state", where),
                                         {"__ndarray_class__": True, "as_npy": self.pickled}))
        if kind == 7:
            absurd = npy_file("'<f4'", "False", "(1000000000, 1000000000, 3)", b"\0" * 12)
            return pack_gr00t(replace_at(gr00t_tree(), ("data", "observation", "state", "head"),
                                         {"__ndarray_class__": True, "as_npy": absurd}))
        if kind == 8:
            return pack_ours(replace_at(ours_tree(), ("images", rng.choice(CAMERAS)), self.huge_jpeg))
        if kind == 9:
            raw = {"format": "rgb8", "width": 0, "height": rng.randint(0, 9), "data": b""}
            return pack_ours(replace_at(ours_tree(), ("images", rng.choice(CAMERAS)), raw))
        if kind == 10:  # a legal but large raw frame, at the image-side limit
            raw = {"format": "rgb8", "width": 2048, "height": 256, "data": b"\x10" * (2048 * 256 * 3)}
            return pack_ours(replace_at(ours_tree(), ("images", rng.choice(CAMERAS)), raw))
        if kind == 11:
            return rng.choice([b"\x91" * 5000 + b"\xc0", b"\xdd\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
                               b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff", b"", b"\xc1",
                               msgpack.packb(msgpack.ExtType(5, b"abc")), msgpack.packb(msgpack.Timestamp(1, 2))])
        if kind == 12:
            prefix = rng.choice(INVALID_UTF8_PREFIXES)
            encoded = PLACEHOLDER.encode()
            invalid = (prefix + b"a" * len(encoded))[:len(encoded)]
            return rng.choice(list(PLACEHOLDER_MESSAGES.values())).replace(encoded, invalid)
        if kind == 13:
            return pack_gr00t({"endpoint": rng.choice(["kill", "explode", "", "get_action"]),
                               "data": rng.choice([None, {}, {"observation": 1}])})
        if kind == 14:
            return pack_gr00t(gr00t_tree(batch=9, width=2, height=2))
        return pack_ours({**ours_tree(), "language": "x" * 1025})

    def oversize(self) -> bytes:
        return pack_ours({**ours_tree(), "pad": b"\0" * (self.max_bytes + 1)})


def test_hostile_campaign_over_ipc(ipc_path):
    max_bytes = 4 << 20
    service = make_service(transport="ipc", ipc_path=ipc_path, max_message_bytes=max_bytes)
    campaign = Campaign(seed=20240614, max_message_bytes=max_bytes)
    total, oversize_every, deadline_s = 3000, 600, 20.0
    TRIPWIRE_RAN.clear()
    counts = {"valid": 0, "hostile": 0, "oversize": 0, "ok": 0, "error": 0, "dropped": 0}
    samples: list[int] = []
    stop_sampling = threading.Event()

    def sample_rss():
        while not stop_sampling.is_set():
            samples.append(vm_rss_kb())
            stop_sampling.wait(0.02)

    with BackgroundServer(service):
        client = ReqClient(service.config.address, timeout_ms=5000, max_reply_bytes=max_bytes)
        blaster = ReqClient(service.config.address, timeout_ms=300)
        try:
            for _ in range(3):  # warm up allocator, codec pool and socket before the baseline
                payload, _expect = campaign.valid_ours()
                protocol.parse_action_response(client.request(payload), HORIZON, DIM)
            rss_before_kb = vm_rss_kb()
            peak_reset = _reset_peak_rss()
            maxrss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            sampler = threading.Thread(target=sample_rss, daemon=True)
            sampler.start()
            started = time.monotonic()
            for index in range(total):
                if time.monotonic() - started > deadline_s:
                    break
                if index % oversize_every == oversize_every // 2:
                    counts["oversize"] += 1
                    with pytest.raises(RequestTimeout):  # ZeroMQ drops it: no reply ever comes
                        blaster.request(campaign.oversize())
                    counts["dropped"] += 1
                    payload, (_kind, frame_id, state) = campaign.valid_ours()  # the blaster is served again
                    reply = protocol.parse_action_response(blaster.request(payload, timeout_ms=5000), HORIZON, DIM)
                    assert reply.frame_id == frame_id
                    counts["valid"] += 1
                    continue
                if index % 3 == 0:
                    payload, (kind, frame_id, state) = (campaign.valid_ours() if index % 6 == 0
                                                        else campaign.valid_gr00t())
                    counts["valid"] += 1
                    raw = client.request(payload)
                    if kind == "ours":
                        reply = protocol.parse_action_response(raw, HORIZON, DIM)
                        assert reply.frame_id == frame_id
                        np.testing.assert_allclose(reply.actions, mock_chunk(state)[0], rtol=1e-6, atol=1e-7)
                    else:
                        assert check_gr00t(bytes(raw), payload, msgpack.unpackb(payload)) == "ok"
                    counts["ok"] += 1
                    continue
                payload = campaign.hostile()
                counts["hostile"] += 1
                raw = bytes(client.request(payload))
                kind, request = request_kind(payload, max_bytes)
                verdict = check_gr00t(raw, payload, request) if kind == "gr00t" else check_ours(raw, request)
                counts[verdict] += 1
            elapsed = time.monotonic() - started
        finally:
            stop_sampling.set()
            client.close()
            blaster.close()
    rss_after_kb = vm_rss_kb()
    maxrss_after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_sampled_kb = max(samples + [rss_after_kb])
    peak_growth_mb = (maxrss_after_kb - (rss_before_kb if peak_reset else maxrss_before_kb)) / 1024
    sent = counts["valid"] + counts["hostile"] + counts["oversize"]
    print(f"hostile campaign: {sent} messages in {elapsed:.1f} s ({counts['hostile']} hostile, {counts['valid']} "
          f"valid, {counts['oversize']} oversize dropped by MAXMSGSIZE); replies ok={counts['ok']} "
          f"error={counts['error']}; server errors={service.errors}")
    print(f"RSS: VmRSS before {rss_before_kb / 1024:.1f} MB, after {rss_after_kb / 1024:.1f} MB, sampled peak "
          f"{peak_sampled_kb / 1024:.1f} MB; ru_maxrss before {maxrss_before_kb / 1024:.1f} MB, after "
          f"{maxrss_after_kb / 1024:.1f} MB (peak reset: {peak_reset}); peak growth {peak_growth_mb:.1f} MB")
    assert TRIPWIRE_RAN == []
    assert sent >= 500, "the campaign ran too few messages to mean anything"
    assert counts["dropped"] == counts["oversize"] >= 1
    assert service.total_requests == 3 + sent - counts["oversize"]  # every message but the oversize ones answered
    assert service.kill_requested is False
    assert peak_growth_mb < 200, f"peak RSS grew by {peak_growth_mb:.1f} MB"
    assert (peak_sampled_kb - rss_before_kb) / 1024 < 200
    assert (rss_after_kb - rss_before_kb) / 1024 < 200


# ============================================================== load test: 8 clients over TCP


def load_state(frame_id: int) -> list[float]:
    return [round(((frame_id * 7919 + j * 104729) % 2000) / 1000.0 - 1.0, 3) for j in range(DIM)]


def test_concurrent_clients_over_tcp_lose_and_misroute_nothing(free_tcp_port):
    clients, per_client = 8, 1000
    service = make_service(transport="tcp", bind_host="127.0.0.1", bind_port=free_tcp_port)
    jpegs = small_jpegs(32, 28)

    def ask(client, frame_id: int) -> bool:
        state = load_state(frame_id)
        payload = protocol.encode_observation(time.time(), frame_id, jpegs, state, f"client {frame_id // 100000}")
        reply = protocol.parse_action_response(client.request(payload), HORIZON, DIM)
        expected = mock_chunk(np.array(state, np.float64).astype(np.float32))[0]
        return reply.frame_id == frame_id and np.allclose(reply.actions, expected, rtol=1e-6, atol=1e-7)

    result = run_load(service, ask, clients=clients, per_client=per_client, deadline_s=60.0)
    print(f"load test over TCP, {per_client} requests each: {result.summary()}")
    assert result.lost == 0 and result.misrouted == 0
    assert result.ok == result.sent and result.ok >= clients * 100, "too few requests completed within the time bound"
    assert service.errors == 0 and service.total_requests == result.sent


@pytest.mark.parametrize("generation", ["n1.6", "n1.7"])
@pytest.mark.parametrize("where", ["language", "action_prefix"])
def test_empty_array_with_a_giant_shape_is_refused_without_expanding_it(service, generation, where):
    """A zero-size array may declare any shape with no data: (2e6, 0) is a few bytes on the wire, and
    turning it into Python lists (tolist) before checking its length built 2e6 lists."""
    empty = np.zeros((2_000_000, 0), "<U1" if where == "language" else "<f4")
    tree = gr00t_tree()
    if where == "language":
        tree = replace_at(tree, ("data", "observation", "language", "task"), empty)
    else:
        tree = replace_at(tree, ("data", "options"), {"action_prefix": empty, "inference_delay": 0})
    payload = gr00t_wire.to_bytes(tree, generation=generation)
    assert len(payload) < 64 << 10
    reply, peak = traced_peak(lambda: service.respond(payload))
    decoded = gr00t_wire.from_bytes(reply)
    assert set(decoded) == {"error"}, decoded
    assert service.engine.calls == 0
    assert peak < 16 << 20, f"{peak / 1e6:.1f} MB allocated for a {len(payload)}-byte request"
