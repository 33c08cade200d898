"""The Alfie robot's 21-D state/action layout, cameras and model I/O sizes (docs/design.md#the-21-d-layout).

These are the *defaults*; nodes read the live values from `config/*.yaml` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTION_HORIZON = 16
ACTION_DIM = 21
IMAGE_WIDTH = 320
IMAGE_HEIGHT = 280
CAMERA_NAMES = ("left_wide", "right_wide", "left_center", "right_center")

_ARM_JOINTS = ("shoulder_yaw", "shoulder_pitch", "elbow_pitch", "wrist_pitch", "wrist_roll", "gripper")

JOINT_NAMES = (
    "base_linear_x", "base_linear_y", "base_linear_z",
    "base_angular_x", "base_angular_y", "base_angular_z",
    *(f"left_{j}" for j in _ARM_JOINTS),
    *(f"right_{j}" for j in _ARM_JOINTS),
    "head_yaw", "head_pitch", "head_roll",
)

LOWER_LIMITS = (
    -0.15, -0.15, -0.15, -0.5, -0.5, -0.5,
    -1.5, -1.0, -1.6, -1.6, -1.6, 0.0,
    -1.5, -1.5, -1.6, -1.6, -1.6, 0.0,
    -1.0, -1.1, -0.2,
)
UPPER_LIMITS = (
    0.15, 0.15, 0.15, 0.5, 0.5, 0.5,
    1.5, 1.5, 1.6, 1.6, 1.6, 0.8,
    1.5, 1.0, 1.6, 2.7, 0.8, 0.8,
    0.5, 0.2, 0.1,
)

# Rate limits in robot units (Alfie's hobby servos): rad/s per joint dim (6-20), grippers faster;
# base acceleration (and soft-hold deceleration) in m/s^2 (dims 0-2) and rad/s^2 (3-5).
_ARM_VELOCITY = (1.5, 1.5, 1.5, 1.5, 1.5, 3.0)
JOINT_VELOCITY_LIMITS = (*_ARM_VELOCITY, *_ARM_VELOCITY, 1.5, 1.5, 1.5)
BASE_ACCELERATION_LIMITS = (0.5, 0.5, 0.5, 1.5, 1.5, 1.5)

BASE_DIMS = slice(0, 6)
JOINT_DIMS = slice(6, 21)


@dataclass(frozen=True)
class LayoutGroup:
    """A named contiguous block of the 21-D vector (Isaac-GR00T calls these state/action keys)."""

    name: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


LAYOUT_GROUPS = (
    LayoutGroup("base_velocity", 0, 6),
    LayoutGroup("left_arm", 6, 12),
    LayoutGroup("right_arm", 12, 18),
    LayoutGroup("head", 18, 21),
)


def groups_from_sizes(names, sizes) -> tuple[LayoutGroup, ...]:
    """Build contiguous layout groups from config lists (names and sizes in layout order)."""
    if len(names) != len(sizes):
        raise ValueError(f"layout group names ({len(names)}) and sizes ({len(sizes)}) differ in length")
    groups, start = [], 0
    for name, size in zip(names, sizes):
        if int(size) <= 0:
            raise ValueError(f"layout group {name!r} has non-positive size {size}")
        groups.append(LayoutGroup(str(name), start, start + int(size)))
        start += int(size)
    return tuple(groups)


def default_limits() -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(LOWER_LIMITS, dtype=np.float64), np.asarray(UPPER_LIMITS, dtype=np.float64)
