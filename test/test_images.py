"""Image decoding: header checks before allocation, resize, ROS encodings, parallel codec."""

import struct

import numpy as np
import pytest

from alfie_gr00t.wire import images
from alfie_gr00t.wire.protocol import RawImage

from support.frames import make_frame


def jpeg_with_declared_size(width, height) -> bytes:
    """A ~300-byte file whose SOF0 header declares `width` x `height`."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 240 + b"\xff\xd9"


def test_header_dimensions_match_encoder():
    data = images.encode_jpeg(make_frame(320, 280), 90)
    assert images.jpeg_dimensions(data) == (320, 280)


def test_huge_declared_jpeg_refused_without_decoding():
    data = jpeg_with_declared_size(30000, 30000)
    assert len(data) < 400
    with pytest.raises(images.ImageError, match="30000x30000 exceeds"):
        images.decode_jpeg(data, max_side=2048)


@pytest.mark.parametrize("data", [b"", b"GIF89a", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\xff\xd8\x00\x00\x00\x00"])
def test_not_a_jpeg(data):
    with pytest.raises(images.ImageError):
        images.decode_jpeg(data, 2048)


def test_corrupt_body_is_an_image_error():
    data = bytearray(images.encode_jpeg(make_frame(), 90))
    body = jpeg_with_declared_size(64, 64)
    with pytest.raises(images.ImageError):
        images.decode_jpeg(bytes(body), 2048)
    assert images.decode_jpeg(bytes(data), 2048).shape == (280, 320, 3)


def test_decode_is_rgb():
    frame = np.zeros((280, 320, 3), np.uint8)
    frame[..., 0] = 250  # pure red in RGB
    decoded = images.decode_jpeg(images.encode_jpeg(frame, 95), 2048)
    assert decoded[..., 0].mean() > 240 and decoded[..., 2].mean() < 15


def test_resize_to_model_resolution():
    assert images.resize(make_frame(640, 480), 320, 280).shape == (280, 320, 3)
    assert images.resize(make_frame(160, 120), 320, 280).shape == (280, 320, 3)
    same = make_frame()
    assert images.resize(same, 320, 280) is same


@pytest.mark.parametrize("encoding, channels", [("rgb8", 3), ("bgr8", 3), ("mono8", 1), ("rgba8", 4), ("bgra8", 4)])
def test_ros_encodings_to_rgb(encoding, channels):
    rgb = make_frame(8, 4)
    if encoding == "rgb8":
        src = rgb
    elif encoding == "bgr8":
        src = rgb[..., ::-1]
    elif encoding == "mono8":
        src, rgb = rgb[..., :1], np.repeat(rgb[..., :1], 3, axis=-1)
    elif encoding == "rgba8":
        src = np.concatenate([rgb, np.full((4, 8, 1), 255, np.uint8)], axis=-1)
    else:
        src = np.concatenate([rgb[..., ::-1], np.full((4, 8, 1), 255, np.uint8)], axis=-1)
    padded = np.zeros((4, 8 * channels + 4), np.uint8)  # row padding exercises `step`
    padded[:, : 8 * channels] = np.ascontiguousarray(src).reshape(4, -1)
    out = images.to_rgb(padded.tobytes(), 4, 8, encoding, step=8 * channels + 4)
    np.testing.assert_array_equal(out, rgb)


def test_unsupported_and_short_images():
    with pytest.raises(images.ImageError, match="unsupported"):
        images.to_rgb(b"\x00" * 100, 2, 2, "yuv422")
    with pytest.raises(images.ImageError, match="too short"):
        images.to_rgb(b"\x00" * 5, 2, 2, "rgb8")


def test_raw_image_size_limit():
    with pytest.raises(images.ImageError, match="exceeds"):
        images.raw_to_array(RawImage(5000, 1, b"\x00" * 15000), 2048)


def test_parallel_codec_matches_sequential_and_names_failing_key():
    codec = images.ParallelCodec(4)
    frames = {f"cam{i}": make_frame(seed=i) for i in range(4)}
    encoded = codec.map(lambda f: images.encode_jpeg(f, 90), frames)
    decoded = codec.map(lambda d: images.decode_jpeg(d, 2048), encoded)
    for key in frames:
        np.testing.assert_array_equal(decoded[key], images.decode_jpeg(encoded[key], 2048))
    encoded["cam2"] = b"junk"
    with pytest.raises(images.ImageError, match="image 'cam2'"):
        codec.map(lambda d: images.decode_jpeg(d, 2048), encoded)
    codec.close()
