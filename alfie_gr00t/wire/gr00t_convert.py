"""Conversions between Isaac-GR00T's dicts and ours (docs/design.md#isaac-gr00ts-protocol): observation and action maps <->
ObservationBatch / our (B, H, 21) chunk layout, and the ModalityConfig map both ways.

The codec (bytes <-> values, both wire generations) is :mod:`alfie_gr00t.wire.gr00t_codec`; this
module only sees decoded values and never touches bytes or sockets.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from alfie_gr00t.wire.gr00t_codec import (
    MODALITY_CONFIG_MARKER,
    MODALITY_CONFIG_MARKER_N17,
    N16,
    Gr00tLimits,
    Gr00tProtocolError,
    modality_markers,
)
from alfie_gr00t.wire.observation import ObservationBatch

__all__ = [
    "modality_config",
    "observation_batch",
    "action_dict",
    "observation_dict",
    "chunk_from_action_dict",
    "parse_modality_config",
]

_DEFAULT_LIMITS = Gr00tLimits()

# Upstream ModalityConfig fields, in dataclass order (what `asdict` emits).
_MODALITY_FIELDS = (
    "delta_indices",
    "modality_keys",
    "sin_cos_embedding_keys",
    "mean_std_embedding_keys",
    "action_configs",
)
# Upstream enums travel by member *name* (to_json_serializable writes Enum.name).
_ACTION_REPS = ("RELATIVE", "DELTA", "ABSOLUTE")
_ACTION_TYPES = ("EEF", "NON_EEF")
_ACTION_FORMATS = ("DEFAULT", "XYZ_ROT6D", "XYZ_ROTVEC")


# --------------------------------------------------------------------------- server side


def _enum_name(value: str, allowed: Sequence[str], what: str) -> str:
    name = str(value).upper()
    if name not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return name


def _modality(markers: tuple[str, ...], delta_indices: list[int], keys: list[str],
              action_configs: list[dict] | None = None) -> dict:
    return {
        **{marker: True for marker in markers},
        "as_json": {
            "delta_indices": list(delta_indices),
            "modality_keys": list(keys),
            "sin_cos_embedding_keys": None,
            "mean_std_embedding_keys": None,
            "action_configs": action_configs,
        },
    }


def modality_config(
    camera_names,
    groups,
    language_key: str = "task",
    action_horizon: int = 16,
    *,
    action_reps: Mapping[str, str] | None = None,
    generation: str | None = N16,
) -> dict:
    """The get_modality_config reply, keyed 'video', 'state', 'action', 'language'.

    Each value is upstream's ``ModalityConfig`` marker map with the marker of ``generation``
    (``__ModalityConfig_class__`` for N1.6, ``__ModalityConfig__`` for N1.7, both when None: a
    request without arrays does not tell the generation, and either upstream client reads a map
    that carries both). Actions carry one upstream
    ``ActionConfig`` per group (``rep``/``type``/``format`` by enum member name,
    ``state_key``): ``NON_EEF``, ``DEFAULT`` and ``ABSOLUTE`` unless ``action_reps`` names
    another representation (``RELATIVE``/``DELTA``) for a group — our engines return
    absolute targets, which is what upstream's decoded actions are too.
    """
    cameras = [str(name) for name in camera_names]
    names = [str(group.name) for group in groups]
    if not cameras or not names:
        raise ValueError("modality_config needs at least one camera and one layout group")
    if int(action_horizon) < 1:
        raise ValueError(f"action_horizon must be >= 1, got {action_horizon}")
    reps = dict(action_reps or {})
    unknown = set(reps) - set(names)
    if unknown:
        raise ValueError(f"action_reps names unknown groups: {sorted(unknown)}")
    action_configs = [
        {
            "rep": _enum_name(reps.get(name, "ABSOLUTE"), _ACTION_REPS, "action rep"),
            "type": "NON_EEF",
            "format": "DEFAULT",
            "state_key": None,
        }
        for name in names
    ]
    markers = modality_markers(generation)
    return {
        "video": _modality(markers, [0], cameras),
        "state": _modality(markers, [0], names),
        "action": _modality(markers, list(range(int(action_horizon))), names, action_configs),
        "language": _modality(markers, [0], [str(language_key)]),
    }


def _sub_dict(observation: Mapping, modality: str) -> Mapping:
    if modality not in observation:
        raise Gr00tProtocolError(f"observation: missing '{modality}' (expected a map)")
    value = observation[modality]
    if not isinstance(value, Mapping):
        raise Gr00tProtocolError(f"observation['{modality}']: expected a map, got {type(value).__name__}")
    return value


def _check_keys(modality: str, got: Mapping, expected: Sequence[str]) -> None:
    missing = [key for key in expected if key not in got]
    extra = [str(key) for key in got if key not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        raise Gr00tProtocolError(
            f"observation['{modality}']: {' and '.join(parts)}; expected keys {list(expected)}"
        )


class _BatchSize:
    """Tracks B across keys so the first disagreement names both keys."""

    def __init__(self, limits: Gr00tLimits):
        self.limits = limits
        self.value: int | None = None
        self.source = ""

    def check(self, where: str, size: int) -> None:
        if size == 0:
            raise Gr00tProtocolError(f"{where}: batch size B is 0, expected at least 1")
        if size > self.limits.max_batch_size:
            raise Gr00tProtocolError(
                f"{where}: batch size B={size} exceeds the limit of {self.limits.max_batch_size}"
            )
        if self.value is None:
            self.value, self.source = size, where
        elif size != self.value:
            raise Gr00tProtocolError(f"{where}: batch size B={size} differs from B={self.value} of {self.source}")


def _frames(where: str, value: Any, limits: Gr00tLimits) -> None:
    if value < 1:
        raise Gr00tProtocolError(f"{where}: T={value} frames, expected at least 1")
    if value > limits.max_frames:
        raise Gr00tProtocolError(f"{where}: T={value} frames exceeds the limit of {limits.max_frames}")


def _video(where: str, video: Any, image_size: tuple[int, int], batch: _BatchSize) -> np.ndarray:
    limits = batch.limits
    if not isinstance(video, np.ndarray):
        raise Gr00tProtocolError(f"{where}: expected a uint8 ndarray (B,T,H,W,3), got {type(video).__name__}")
    if video.dtype != np.uint8:
        raise Gr00tProtocolError(f"{where}: expected dtype uint8, got {video.dtype}")
    if video.ndim != 5 or video.shape[-1] != 3:
        raise Gr00tProtocolError(f"{where}: expected shape (B,T,H,W,3), got {video.shape}")
    b, t, h, w, _ = video.shape
    batch.check(where, b)
    _frames(where, t, limits)
    if not (1 <= h <= limits.max_image_side and 1 <= w <= limits.max_image_side):
        raise Gr00tProtocolError(
            f"{where}: frame size {w}x{h} (WxH) outside 1..{limits.max_image_side} per side"
        )
    last = video[:, -1]
    width, height = image_size
    if (w, h) == (width, height):
        return np.ascontiguousarray(last)
    out = np.empty((b, height, width, 3), dtype=np.uint8)
    for i in range(b):
        out[i] = cv2.resize(np.ascontiguousarray(last[i]), (width, height), interpolation=cv2.INTER_AREA)
    return out


def _state(where: str, value: Any, size: int, batch: _BatchSize) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise Gr00tProtocolError(f"{where}: expected a float ndarray (B,T,{size}), got {type(value).__name__}")
    if value.dtype.kind not in "fiu":
        raise Gr00tProtocolError(f"{where}: expected a float dtype (float32), got {value.dtype}")
    if value.ndim != 3 or value.shape[-1] != size:
        raise Gr00tProtocolError(f"{where}: expected shape (B,T,{size}), got {value.shape}")
    batch.check(where, value.shape[0])
    _frames(where, value.shape[1], batch.limits)
    with np.errstate(over="ignore", invalid="ignore"):
        last = value[:, -1].astype(np.float32)
    if not np.all(np.isfinite(last)):
        raise Gr00tProtocolError(f"{where}: state must be finite, got NaN or inf (or out of float32 range)")
    return last


def _language(where: str, value: Any, batch: _BatchSize) -> tuple[str, ...]:
    limits = batch.limits
    if isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.ndim in (1, 2):
        # sizes first: an empty array can declare any shape, and tolist() would build every list of it
        batch.check(where, value.shape[0])
        if value.ndim == 2 and not 1 <= value.shape[1] <= limits.max_frames:
            raise Gr00tProtocolError(f"{where}: expected 1..{limits.max_frames} strings per observation, "
                                     f"got {value.shape[1]}")
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise Gr00tProtocolError(
            f"{where}: expected a list of B lists of str ([[str]] * B), got {type(value).__name__}"
        )
    batch.check(where, len(value))
    texts = []
    for i, item in enumerate(value):
        if isinstance(item, (list, tuple)):
            if not 1 <= len(item) <= limits.max_frames:
                raise Gr00tProtocolError(
                    f"{where}[{i}]: expected 1..{limits.max_frames} strings, got {len(item)}"
                )
            item = item[-1]
        if not isinstance(item, str):
            raise Gr00tProtocolError(f"{where}[{i}]: expected str, got {type(item).__name__}")
        if len(item) > limits.max_language_chars:
            raise Gr00tProtocolError(
                f"{where}[{i}]: instruction of {len(item)} chars exceeds {limits.max_language_chars}"
            )
        texts.append(item)
    return tuple(texts)


def observation_batch(
    observation: dict,
    *,
    camera_names,
    groups,
    language_key: str,
    image_size: tuple[int, int],
    limits: Gr00tLimits = _DEFAULT_LIMITS,
    video_keys=None,
) -> ObservationBatch:
    """Validate and convert an upstream-format observation into an ObservationBatch.

    video[cam] (B,T,H,W,3) uint8 for every camera, state[group] (B,T,size) float for every
    group (cast to float32), language[language_key] ``[[str]] * B`` (a list of B str is also
    accepted). The last of T frames is used; frames are resized to ``image_size`` =
    (width, height) with INTER_AREA; state groups are concatenated in layout order.
    ``video_keys`` (same length as ``camera_names``) names the wire key of each camera when
    they differ; the batch's images stay keyed by camera name.
    """
    if not isinstance(observation, Mapping):
        raise Gr00tProtocolError(f"observation: expected a map, got {type(observation).__name__}")
    cameras = [str(name) for name in camera_names]
    wire_keys = cameras if video_keys is None else [str(key) for key in video_keys]
    if len(wire_keys) != len(cameras):
        raise ValueError(f"video_keys ({len(wire_keys)}) and camera_names ({len(cameras)}) differ in length")
    groups = tuple(groups)
    batch = _BatchSize(limits)

    video = _sub_dict(observation, "video")
    _check_keys("video", video, wire_keys)
    images = {
        name: _video(f"video['{key}']", video[key], image_size, batch) for name, key in zip(cameras, wire_keys)
    }

    state = _sub_dict(observation, "state")
    _check_keys("state", state, [group.name for group in groups])
    parts = [_state(f"state['{group.name}']", state[group.name], group.size, batch) for group in groups]

    language = _sub_dict(observation, "language")
    _check_keys("language", language, [language_key])
    texts = _language(f"language['{language_key}']", language[language_key], batch)

    return ObservationBatch(images=images, state=np.concatenate(parts, axis=1), language=texts)


def action_dict(actions: np.ndarray, groups) -> dict[str, np.ndarray]:
    """(B,H,21) -> {group.name: (B,H,group.size) float32} in layout order."""
    actions = np.asarray(actions)
    groups = tuple(groups)
    dim = max((group.stop for group in groups), default=0)
    if actions.ndim != 3 or actions.shape[-1] != dim:
        raise ValueError(f"actions: expected shape (B,H,{dim}), got {actions.shape}")
    return {
        group.name: np.ascontiguousarray(actions[:, :, group.start:group.stop], dtype=np.float32)
        for group in groups
    }


# --------------------------------------------------------------------------- client side


def observation_dict(
    frames: dict[str, np.ndarray],
    state: np.ndarray,
    language: str,
    *,
    state_keys: list[tuple[str, int]],
    language_key: str,
) -> dict:
    """One observation (B=1, T=1) in the upstream format.

    video {key: (1,1,H,W,3) uint8}, state {key: (1,1,D) float32} split from the flat state
    by the (name, size) list in order, language {language_key: [[language]]}.
    """
    video = {}
    for key, frame in frames.items():
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise Gr00tProtocolError(f"frame {key!r}: expected (H,W,3) uint8, got {frame.shape} {frame.dtype}")
        video[str(key)] = np.ascontiguousarray(frame[None, None])
    flat = np.asarray(state, dtype=np.float32).reshape(-1)
    total = sum(int(size) for _, size in state_keys)
    if total != flat.size:
        raise Gr00tProtocolError(f"state: {flat.size} values, but state keys {list(state_keys)} sum to {total}")
    split, start = {}, 0
    for name, size in state_keys:
        split[str(name)] = flat[start:start + int(size)].reshape(1, 1, int(size)).copy()
        start += int(size)
    if not isinstance(language, str):
        raise Gr00tProtocolError(f"language: expected str, got {type(language).__name__}")
    return {"video": video, "state": split, "language": {str(language_key): [[language]]}}


def chunk_from_action_dict(
    actions: Any,
    *,
    action_keys: list[tuple[str, int]],
    horizon: int,
    dim: int,
) -> np.ndarray:
    """Flatten an upstream action dict back to (horizon, dim) float32 in the order of action_keys.

    Accepts per-key arrays (1,H,D) or (H,D) with H >= horizon (the first ``horizon`` steps
    are kept). The whole ``[action_dict, info]`` get_action reply is accepted too.
    """
    if (
        isinstance(actions, (list, tuple))
        and len(actions) == 2
        and isinstance(actions[0], Mapping)
        and isinstance(actions[1], Mapping)
    ):
        actions = actions[0]
    if not isinstance(actions, Mapping):
        raise Gr00tProtocolError(f"actions: expected a map of key -> array, got {type(actions).__name__}")
    total = sum(int(size) for _, size in action_keys)
    if total != dim:
        raise Gr00tProtocolError(f"action keys {list(action_keys)} sum to {total}, expected action dim {dim}")
    parts = []
    for name, size in action_keys:
        where = f"actions['{name}']"
        if name not in actions:
            raise Gr00tProtocolError(f"{where}: missing; reply has keys {[str(k) for k in actions]}")
        value = actions[name]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            got = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise Gr00tProtocolError(f"{where}: expected a numeric ndarray, got {got}")
        if value.ndim == 3 and value.shape[0] == 1:
            value = value[0]
        if value.ndim != 2 or value.shape[1] != int(size):
            raise Gr00tProtocolError(f"{where}: expected shape (1,H,{size}) or (H,{size}), got {value.shape}")
        if value.shape[0] < horizon:
            raise Gr00tProtocolError(f"{where}: {value.shape[0]} steps, expected at least {horizon}")
        with np.errstate(over="ignore", invalid="ignore"):
            value = value[:horizon].astype(np.float32)
        if not np.all(np.isfinite(value)):
            raise Gr00tProtocolError(f"{where}: actions must be finite, got NaN or inf")
        parts.append(value)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def _config_fields(modality: str, value: Any) -> Mapping:
    if isinstance(value, Mapping):
        if MODALITY_CONFIG_MARKER in value or MODALITY_CONFIG_MARKER_N17 in value:
            value = value.get("as_json")
            if not isinstance(value, Mapping):
                raise Gr00tProtocolError(f"modality config '{modality}': marker without an 'as_json' map")
        return value
    if hasattr(value, "modality_keys"):  # a ModalityConfig-like object
        return {"modality_keys": value.modality_keys, "delta_indices": getattr(value, "delta_indices", None)}
    raise Gr00tProtocolError(f"modality config '{modality}': expected a ModalityConfig map, got {type(value).__name__}")


def _string_keys(modality: str, fields: Mapping) -> list[str]:
    keys = fields.get("modality_keys")
    if not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(key, str) for key in keys):
        raise Gr00tProtocolError(f"modality config '{modality}': 'modality_keys' must be a non-empty list of str, got {keys!r}")
    if len(set(keys)) != len(keys):
        raise Gr00tProtocolError(f"modality config '{modality}': duplicate keys in {list(keys)}")
    return list(keys)


def _check_single_frame(modality: str, delta_indices: Any) -> None:
    """This client sends one frame (T=1) per key: refuse a config that needs a history."""
    if delta_indices is None:
        return
    if not isinstance(delta_indices, (list, tuple)) or not delta_indices:
        raise Gr00tProtocolError(f"modality config '{modality}': 'delta_indices' must be a non-empty list, "
                                 f"got {delta_indices!r}")
    if len(delta_indices) != 1:
        raise Gr00tProtocolError(
            f"modality config '{modality}': the policy wants {len(delta_indices)} frames per key (delta_indices "
            f"{list(delta_indices)}) but this client sends only the current frame (T=1), so every request would "
            "fail; serve a checkpoint trained with a single frame (delta_indices [0])")


def parse_modality_config(decoded: Any, layout_groups) -> dict:
    """Read a get_modality_config reply into our key mapping.

    Returns ``{"video_keys": [...], "state_keys": [(name, size)...], "action_keys":
    [(name, size)...], "language_key": str}``. Upstream's config has no sizes: they come from
    ``layout_groups`` by name. Video and state must ask for one frame (``delta_indices`` of
    length 1): this client sends T=1. State and action keys must name exactly the layout groups (any
    unknown or missing key is an error, since the flat 21-D vector could not be split
    correctly otherwise) and are returned in layout order whatever order the server used.
    """
    if isinstance(decoded, Mapping) and "error" in decoded and "video" not in decoded:
        raise Gr00tProtocolError(f"server error: {decoded['error']}")
    if not isinstance(decoded, Mapping):
        raise Gr00tProtocolError(f"modality config: expected a map, got {type(decoded).__name__}")
    groups = tuple(layout_groups)
    sizes = {group.name: group.size for group in groups}
    keys = {}
    for modality in ("video", "state", "action", "language"):
        if modality not in decoded:
            raise Gr00tProtocolError(f"modality config: missing '{modality}'")
        fields = _config_fields(modality, decoded[modality])
        keys[modality] = _string_keys(modality, fields)
        if modality in ("video", "state"):
            _check_single_frame(modality, fields.get("delta_indices"))
    result: dict[str, Any] = {"video_keys": keys["video"]}
    for modality in ("state", "action"):
        unknown = [key for key in keys[modality] if key not in sizes]
        missing = [name for name in sizes if name not in keys[modality]]
        if unknown or missing:
            raise Gr00tProtocolError(
                f"modality config '{modality}': keys {keys[modality]} do not match the layout groups "
                f"{list(sizes)} (unknown {unknown}, missing {missing})"
            )
        result[f"{modality}_keys"] = [(group.name, group.size) for group in groups]
    if len(keys["language"]) != 1:
        raise Gr00tProtocolError(f"modality config 'language': expected exactly one key, got {keys['language']}")
    result["language_key"] = keys["language"][0]
    return result
