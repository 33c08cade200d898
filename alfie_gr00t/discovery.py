"""DDS discovery confined to this machine, with the variable the ROS 2 distro understands.

Iron and later (Jazzy): `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`. Humble (and the older, end-of-life
Foxy and Galactic) have no such variable and confine discovery with `ROS_LOCALHOST_ONLY=1`, which
Jazzy still honours but deprecates with a warning; so each distro gets only its own variable.

For tests, the demo and the benchmarks only. The nodes never call this: a real robot may need its
network. Imports nothing of the package (a base module) and nothing of ROS: it must run before rclpy.
"""

from __future__ import annotations

import os
from typing import MutableMapping

RANGE_VARIABLE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
LOCALHOST_ONLY_VARIABLE = "ROS_LOCALHOST_ONLY"
# distros released before ROS_AUTOMATIC_DISCOVERY_RANGE existed (it came with Iron)
PRE_IRON = ("foxy", "galactic", "humble")
DEFAULT_DISTRO = "jazzy"  # what rclpy from PyPI is when ROS_DISTRO is unset (this repository's default)


def distro(env: MutableMapping[str, str] | None = None) -> str:
    """The ROS 2 distro named by $ROS_DISTRO (set by /opt/ros/<distro>/setup.bash), lower case;
    DEFAULT_DISTRO when unset."""
    env = os.environ if env is None else env
    return (env.get("ROS_DISTRO") or DEFAULT_DISTRO).strip().lower()


def localhost_only_env(ros_distro: str | None = None) -> dict[str, str]:
    """The one variable that keeps discovery on loopback for `ros_distro` (default: $ROS_DISTRO)."""
    name = distro() if ros_distro is None else ros_distro.strip().lower()
    if name in PRE_IRON:
        return {LOCALHOST_ONLY_VARIABLE: "1"}
    return {RANGE_VARIABLE: "LOCALHOST"}


def confine_to_localhost(env: MutableMapping[str, str] | None = None,
                         ros_distro: str | None = None) -> MutableMapping[str, str]:
    """Set that variable in `env` (default: os.environ, so call it before rclpy is imported) and
    remove the other distro's one. Returns `env`."""
    env = os.environ if env is None else env
    wanted = localhost_only_env(distro(env) if ros_distro is None else ros_distro)
    for name in (RANGE_VARIABLE, LOCALHOST_ONLY_VARIABLE):
        if name not in wanted:
            env.pop(name, None)
    env.update(wanted)
    return env


def is_confined(env: MutableMapping[str, str] | None = None, ros_distro: str | None = None) -> bool:
    """Whether `env` already keeps discovery on loopback for the distro."""
    env = os.environ if env is None else env
    wanted = localhost_only_env(distro(env) if ros_distro is None else ros_distro)
    return all(env.get(k) == v for k, v in wanted.items())
