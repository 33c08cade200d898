"""Robot units <-> model units, from optional LeRobot-style dataset stats (identity without them).

A policy fine-tuned on normalized data expects normalized state and returns normalized
actions. When no stats file is given the mapping is the identity.

Each key (`observation.state`, `action`) holds either `mean`/`std` (z-score) or
`min`/`max` (scaled to [-1, 1]); mean/std wins when both are present. Both reduce to
`model = (robot - center) / scale`. A degenerate dim (std or max - min below 1e-8) keeps
scale 1, so model 0 still maps to the mean (or min) and the mapping stays invertible.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from alfie_gr00t import layout

STATE_KEY = "observation.state"
ACTION_KEY = "action"
_MIN_STD = 1e-8
# Looked up in this order when the stats path is a dataset directory.
_DIRECTORY_CANDIDATES = ("meta/stats.json", "stats.json", "meta/episodes_stats.jsonl")


@dataclass(frozen=True)
class _Affine:
    """model = (robot - center) / scale, per dim."""

    center: np.ndarray
    scale: np.ndarray

    def forward(self, values: np.ndarray) -> np.ndarray:
        return (values - self.center) / self.scale

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.scale + self.center


class Normalizer:
    """Maps robot units <-> model units. Identity when no stats file is given."""

    def __init__(self, state: _Affine, action: _Affine, source: str | None = None):
        self._state = state
        self._action = action
        self._dim = int(state.center.shape[0])
        self._source = source

    @classmethod
    def identity(cls, dim: int = layout.ACTION_DIM) -> "Normalizer":
        one = _Affine(np.zeros(dim), np.ones(dim))
        return cls(one, one, None)

    @classmethod
    def from_stats_file(cls, path: str, dim: int = layout.ACTION_DIM) -> "Normalizer":
        """Load a stats .json, an episodes_stats .jsonl, or a dataset directory holding one."""
        resolved = _resolve(path)
        if resolved.endswith(".jsonl"):
            stats = _aggregate_jsonl(resolved)
        else:
            stats = _load_json(resolved)
        state = _affine_for(stats, STATE_KEY, dim, resolved)
        action = _affine_for(stats, ACTION_KEY, dim, resolved)
        return cls(state, action, resolved)

    @property
    def is_identity(self) -> bool:
        return all(
            np.all(affine.center == 0.0) and np.all(affine.scale == 1.0) for affine in (self._state, self._action)
        )

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def source(self) -> str | None:
        """The stats file in use (None for the identity)."""
        return self._source

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """Robot state -> model units, before sending an observation."""
        return self._state.forward(self._checked(state, "state"))

    def denormalize_state(self, state: np.ndarray) -> np.ndarray:
        """Model units -> robot state (the inverse of normalize_state)."""
        return self._state.inverse(self._checked(state, "state"))

    def normalize_action(self, actions: np.ndarray) -> np.ndarray:
        """Robot actions -> model units (the inverse of denormalize_action)."""
        return self._action.forward(self._checked(actions, "actions"))

    def denormalize_action(self, actions: np.ndarray) -> np.ndarray:
        """Model actions (H, dim) -> robot units, after receiving a chunk."""
        return self._action.inverse(self._checked(actions, "actions"))

    def _checked(self, values: np.ndarray, name: str) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        if array.ndim == 0 or array.shape[-1] != self._dim:
            raise ValueError(f"{name} must end in a dimension of {self._dim}, got shape {array.shape}")
        return array


def _resolve(path: str) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        for candidate in _DIRECTORY_CANDIDATES:
            full = os.path.join(path, candidate)
            if os.path.isfile(full):
                return full
        raise FileNotFoundError(f"no stats file in directory {path!r} (looked for {', '.join(_DIRECTORY_CANDIDATES)})")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"stats file {path!r} does not exist")
    return path


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise ValueError(f"stats file {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"stats file {path!r} must hold a JSON object")
    return data


def _aggregate_jsonl(path: str) -> dict:
    """Pool per-episode stats into dataset stats (weighted by `count` when every episode has one)."""
    episodes = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"stats file {path!r} line {number} is not valid JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise ValueError(f"stats file {path!r} line {number} must hold a JSON object")
            episodes.append(record.get("stats", record))
    if not episodes:
        raise ValueError(f"stats file {path!r} holds no episodes")
    return {key: _pool(path, key, episodes) for key in (STATE_KEY, ACTION_KEY)}


def _pool(path: str, key: str, episodes: list) -> dict:
    entries = []
    for index, episode in enumerate(episodes):
        entry = episode.get(key) if isinstance(episode, dict) else None
        if not isinstance(entry, dict):
            raise ValueError(f"stats file {path!r}: episode {index} has no {key!r} stats")
        entries.append(entry)

    def stacked(name: str) -> np.ndarray:
        return np.stack([_vector(entry[name], path, key, name) for entry in entries])

    pooled: dict = {}
    if all("mean" in e and "std" in e for e in entries):
        if all("count" in e for e in entries):
            weights = np.array([float(np.ravel(e["count"])[0]) for e in entries])
        else:
            weights = np.ones(len(entries))
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
            raise ValueError(f"stats file {path!r}: {key!r} episode counts must be non-negative with a positive sum")
        weights = weights / weights.sum()
        means, stds = stacked("mean"), stacked("std")
        mean = weights @ means
        variance = weights @ (stds**2 + means**2) - mean**2
        pooled["mean"] = mean.tolist()
        pooled["std"] = np.sqrt(np.maximum(variance, 0.0)).tolist()
    if all("min" in e and "max" in e for e in entries):
        pooled["min"] = stacked("min").min(axis=0).tolist()
        pooled["max"] = stacked("max").max(axis=0).tolist()
    if not pooled:
        raise ValueError(f"stats file {path!r}: {key!r} needs mean/std or min/max in every episode")
    return pooled


def _vector(values, path: str, key: str, name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"stats file {path!r}: {key}.{name} is not a list of numbers") from exc
    if not np.all(np.isfinite(array)):
        raise ValueError(f"stats file {path!r}: {key}.{name} has non-finite values")
    return array


def _affine_for(stats: dict, key: str, dim: int, path: str) -> _Affine:
    entry = stats.get(key)
    if not isinstance(entry, dict):
        raise ValueError(f"stats file {path!r} has no {key!r} entry")

    def read(name: str) -> np.ndarray:
        array = _vector(entry[name], path, key, name)
        if array.shape[0] != dim:
            raise ValueError(f"stats file {path!r}: {key}.{name} has length {array.shape[0]}, expected {dim}")
        return array

    if "mean" in entry and "std" in entry:
        mean, std = read("mean"), read("std")
        if np.any(std < 0):
            raise ValueError(f"stats file {path!r}: {key}.std has negative values")
        return _Affine(mean, np.where(std < _MIN_STD, 1.0, std))
    if "min" in entry and "max" in entry:
        low, high = read("min"), read("max")
        if np.any(low > high):
            raise ValueError(f"stats file {path!r}: {key}.min is above {key}.max")
        degenerate = high - low < _MIN_STD
        return _Affine((high + low) / 2.0, np.where(degenerate, 1.0, (high - low) / 2.0))
    raise ValueError(f"stats file {path!r}: {key!r} needs mean/std or min/max")
