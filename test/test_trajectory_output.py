"""output_mode joint_trajectory: what a ros2_control joint_trajectory_controller gets from the real
client node: the 15 joint names, the remaining steps at 1/15 s spacing, within the gate's limits,
and a hold as a single point at the hold position."""

from __future__ import annotations

import numpy as np
from rclpy.qos import QoSProfile
from trajectory_msgs.msg import JointTrajectory

from alfie_gr00t import layout
from alfie_gr00t.client.state_machine import ClientState

from support.client_harness import (ARM_HEAD_NAMES, CLIENT_NS, CONNECT_S, LOWER, POSTURE, UPPER, ScriptedServer,
                                  client_and_robot, wait_state)
from support.ros_helpers import Collector, wait_for

DT = 1.0 / 15.0
JOINT_VEL = np.array(([1.5] * 5 + [3.0]) * 2 + [1.5] * 3)


def seconds(duration) -> float:
    return duration.sec + duration.nanosec * 1e-9


def test_joint_trajectory_mode_publishes_limited_steps_and_single_point_holds(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path, output_mode="joint_trajectory") as (client, robot):
        trajectories = Collector(robot.node, JointTrajectory, f"{CLIENT_NS}/joint_trajectory", QoSProfile(depth=100))
        assert wait_for(lambda: robot.node.count_publishers(f"{CLIENT_NS}/joint_trajectory") >= 1, timeout=CONNECT_S)
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(trajectories.messages) >= 10, timeout=CONNECT_S)
        assert robot.joints.messages == [], "joint_commands published in joint_trajectory mode"
        assert robot.twists.messages, "cmd_vel is published in every mode"
        for msg in list(trajectories.messages):
            assert list(msg.joint_names) == ARM_HEAD_NAMES
            times = [seconds(p.time_from_start) for p in msg.points]
            assert msg.points and np.allclose(times, DT * np.arange(1, len(times) + 1), atol=1e-6)
            positions = np.array([p.positions for p in msg.points])
            assert np.all(np.isfinite(positions))
            assert np.all(positions >= LOWER[layout.JOINT_DIMS] - 1e-9)
            assert np.all(positions <= UPPER[layout.JOINT_DIMS] + 1e-9)
            assert np.all(np.abs(np.diff(positions, axis=0)) <= JOINT_VEL * DT + 1e-9)
        policy_count = len(trajectories.messages)
        robot.activate(False)
        wait_state(client, ClientState.IDLE, 5.0)
        assert wait_for(lambda: len(trajectories.messages) > policy_count and np.allclose(
            trajectories.messages[-1].points[0].positions, POSTURE, atol=1e-6), timeout=5.0)
        last = trajectories.messages[-1]
        assert len(last.points) == 1  # a hold: one point, at the measured posture
