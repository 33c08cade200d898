"""Pixels: JPEG header checks, decode/encode, resize, ROS encodings -> RGB, and a parallel codec.

JPEG goes through simplejpeg (libjpeg-turbo, RGB in and out) when it is installed: measured here
it encodes and decodes the four 320x280 camera frames faster than OpenCV (`make bench-motion`
prints the table). Without it, or for a file it refuses, OpenCV does the work. The header checks
below run first either way. OpenCV releases the GIL inside imdecode/imencode/resize, so a small
thread pool runs the four cameras side by side.
"""

from __future__ import annotations

import re
import struct
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from alfie_gr00t.wire.protocol import RawImage

try:  # libjpeg-turbo without OpenCV's BGR round trip; optional (requirements.txt pins it)
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the machine
    simplejpeg = None

JPEG_CODEC = "simplejpeg" if simplejpeg is not None else "cv2"

_IMREAD_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_RAW_FORMAT = re.compile(r"rgb8; raw (\d+)x(\d+)")
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Progressive JPEGs hold ~10 scans; thousands of tiny repeated scans cost seconds to decode.
MAX_JPEG_SCANS = 64


class ImageError(ValueError):
    """An image that cannot be used; the message names the camera when known."""


def raw_format(width: int, height: int) -> str:
    """How a recorded or debug CompressedImage names the raw rgb8 frames sent (image_encoding raw)."""
    return f"rgb8; raw {width}x{height}"


def parse_raw_format(fmt: str) -> tuple[int, int] | None:
    """(width, height) of a `raw_format` string, None for anything else (e.g. "jpeg")."""
    match = _RAW_FORMAT.fullmatch(fmt or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def jpeg_dimensions(data) -> tuple[int, int]:
    """(width, height) from a JPEG header without decoding it; ImageError if there is none."""
    view = memoryview(data)
    if len(view) < 4 or view[0] != 0xFF or view[1] != 0xD8:
        raise ImageError("not a JPEG (missing SOI marker)")
    pos = 2
    end = len(view)
    while pos + 4 <= end:
        if view[pos] != 0xFF:
            raise ImageError(f"corrupt JPEG header at byte {pos}")
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", view, pos + 2)
        if length < 2:
            raise ImageError("corrupt JPEG segment length")
        if marker in _SOF_MARKERS:
            if pos + 9 > end:
                break
            height, width = struct.unpack_from(">HH", view, pos + 5)
            if width == 0 or height == 0:
                raise ImageError(f"JPEG declares zero size {width}x{height}")
            return width, height
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        pos += 2 + length
    raise ImageError("JPEG has no frame header (truncated or corrupt)")


def check_size(width: int, height: int, max_side: int) -> None:
    if width > max_side or height > max_side:
        raise ImageError(f"declared size {width}x{height} exceeds the {max_side}-pixel limit")


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to the model resolution; no-op when already there.

    Bilinear up to 2x shrink (640x480 -> 320x280: 0.25 ms a frame, 46+ dB from the area filter,
    which takes OpenCV's slow path at non-integer scales: 1.05 ms); area filter beyond 2x.
    """
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    area = w > 2 * width or h > 2 * height
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)


def decode_jpeg(data, max_side: int) -> np.ndarray:
    """JPEG -> (H, W, 3) uint8 RGB, refusing oversize headers before any pixel is allocated."""
    width, height = jpeg_dimensions(data)
    check_size(width, height, max_side)
    raw = bytes(data)
    scans = raw.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise ImageError(f"JPEG has {scans} scans, limit is {MAX_JPEG_SCANS}")
    if simplejpeg is not None:
        try:
            return simplejpeg.decode_jpeg(raw, colorspace="RGB")
        except ValueError:
            pass  # strict libjpeg-turbo refused it (a warning, an odd variant): OpenCV decides
    buf = np.frombuffer(raw, dtype=np.uint8)
    if _IMREAD_RGB is not None:
        rgb = cv2.imdecode(buf, _IMREAD_RGB)
    else:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        rgb = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if rgb is None:
        raise ImageError("JPEG could not be decoded")
    return rgb


def raw_to_array(image: RawImage, max_side: int) -> np.ndarray:
    check_size(image.width, image.height, max_side)
    return np.frombuffer(image.data, dtype=np.uint8).reshape(image.height, image.width, 3)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes, 4:2:0 chroma (OpenCV's default too)."""
    if simplejpeg is not None:
        try:
            return simplejpeg.encode_jpeg(np.ascontiguousarray(rgb, dtype=np.uint8), quality=int(quality),
                                          colorspace="RGB", colorsubsampling="420")
        except ValueError as exc:
            raise ImageError(f"JPEG encoding failed: {exc}") from None
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (cv2.IMWRITE_JPEG_QUALITY, int(quality)))
    if not ok:
        raise ImageError("JPEG encoding failed")
    return buf.tobytes()


def to_rgb(data, height: int, width: int, encoding: str, step: int = 0) -> np.ndarray:
    """A sensor_msgs/Image payload -> (H, W, 3) uint8 RGB, without cv_bridge."""
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4, "bgra8": 4}.get(encoding)
    if channels is None:
        raise ImageError(f"unsupported image encoding {encoding!r} (rgb8, bgr8, mono8, rgba8, bgra8)")
    row = width * channels
    step = step or row
    buf = np.frombuffer(data, dtype=np.uint8)
    if step < row or buf.size < step * height:
        raise ImageError(f"image data of {buf.size} bytes is too short for {width}x{height} {encoding}")
    pixels = buf[: step * height].reshape(height, step)[:, :row].reshape(height, width, channels)
    if encoding == "rgb8":
        return pixels
    code = {"bgr8": cv2.COLOR_BGR2RGB, "mono8": cv2.COLOR_GRAY2RGB,
            "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB}[encoding]
    return cv2.cvtColor(pixels, code)


class ParallelCodec:
    """Runs one image job per camera on a small thread pool (OpenCV drops the GIL)."""

    def __init__(self, threads: int = 4):
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="codec") if threads > 1 else None

    def map(self, fn, items: dict) -> dict:
        """{key: fn(value)} with each call on a worker; re-raises the first error with its key."""
        if self._pool is None or len(items) < 2:
            return {key: _keyed(fn, key, value) for key, value in items.items()}
        futures = {key: self._pool.submit(_keyed, fn, key, value) for key, value in items.items()}
        return {key: future.result() for key, future in futures.items()}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _keyed(fn, key, value):
    try:
        return fn(value)
    except ImageError as exc:
        raise ImageError(f"image '{key}': {exc}") from None
    except cv2.error as exc:
        raise ImageError(f"image '{key}': OpenCV error {str(exc).strip()[:200]}") from None
