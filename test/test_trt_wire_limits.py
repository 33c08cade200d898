"""The Isaac-GR00T protocol edges found with the real upstream client.

* the default size limit fits the default batch of raw observations, with margin;
* a message ZeroMQ drops for size is logged (it would otherwise vanish silently);
* a modality config that wants a frame history is refused at the handshake.
"""

import logging
import threading

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.wire import gr00t as gr00t_protocol
from alfie_gr00t.wire import transport
from alfie_gr00t.server.config import ServerConfig


def test_default_limit_fits_the_default_batch_of_raw_frames():
    config = ServerConfig()
    frame = layout.IMAGE_WIDTH * layout.IMAGE_HEIGHT * 3
    npy_header = len(_npy(np.zeros((1, 1, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3), np.uint8))) - frame
    per_observation = len(layout.CAMERA_NAMES) * (frame + npy_header) + 4096  # state, language, keys
    batch = config.max_batch_size * per_observation
    assert batch > 8 << 20, "the old 8 MiB default was too small"
    assert config.max_message_bytes >= 1.5 * batch


def _npy(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_a_message_dropped_for_size_is_logged(ipc_path, caplog):
    rep = transport.RepEndpoint(f"ipc://{ipc_path}", max_message_bytes=1000)
    big = transport.ReqClient(f"ipc://{ipc_path}", timeout_ms=300)
    try:
        with caplog.at_level(logging.INFO, logger="alfie_gr00t.wire.transport"):
            with pytest.raises(transport.RequestTimeout):
                big.request(b"x" * 5000)
            assert rep.receive(300) is None
            for _ in range(20):
                if rep.dropped_connections:
                    break
                rep.receive(50)
        assert rep.dropped_connections >= 1
        assert "over max_message_bytes=1000" in caplog.text
        small = transport.ReqClient(f"ipc://{ipc_path}", timeout_ms=2000)
        t = threading.Thread(target=lambda: (rep.receive(2000), rep.send(b"ok")))
        t.start()
        assert bytes(small.request(b"y")) == b"ok"
        t.join(5)
        small.close()
    finally:
        big.close()
        rep.close()


def _config(video_delta=(0,), state_delta=(0,)):
    names = [g.name for g in layout.LAYOUT_GROUPS]
    return {"video": {"modality_keys": list(layout.CAMERA_NAMES), "delta_indices": list(video_delta)},
            "state": {"modality_keys": names, "delta_indices": list(state_delta)},
            "action": {"modality_keys": names, "delta_indices": list(range(16))},
            "language": {"modality_keys": ["task"], "delta_indices": [0]}}


def test_single_frame_config_is_accepted():
    parsed = gr00t_protocol.parse_modality_config(_config(), layout.LAYOUT_GROUPS)
    assert parsed["video_keys"] == list(layout.CAMERA_NAMES)


@pytest.mark.parametrize("modality", ["video", "state"])
def test_frame_history_is_refused_at_the_handshake(modality):
    kwargs = {f"{modality}_delta": (-15, 0)}
    with pytest.raises(gr00t_protocol.Gr00tProtocolError,
                       match=rf"'{modality}': the policy wants 2 frames per key \(delta_indices \[-15, 0\]\).*T=1"):
        gr00t_protocol.parse_modality_config(_config(**kwargs), layout.LAYOUT_GROUPS)


def test_frame_history_is_refused_for_modality_config_objects():
    from types import SimpleNamespace

    config = {k: SimpleNamespace(**v) for k, v in _config(video_delta=(-1, 0)).items()}
    with pytest.raises(gr00t_protocol.Gr00tProtocolError, match="wants 2 frames"):
        gr00t_protocol.parse_modality_config(config, layout.LAYOUT_GROUPS)
