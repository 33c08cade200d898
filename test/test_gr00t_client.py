"""Our client node with `server_protocol:=gr00t` against an upstream-format policy server.

`FakePolicyServer` (test/support/gr00t_wire.py) speaks Isaac-GR00T's PolicyServer protocol
independently of `alfie_gr00t.wire.gr00t`. Its policy answers every key of the state
with half of it, repeated over 16 steps, so the commands the client must publish are known
exactly: the measured posture moving toward half of itself by at most one step limit per tick.
The robot side, spinners and helpers come from support/client_harness.py.
"""

from __future__ import annotations

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.client.state_machine import ClientState

from support.gr00t_wire import ActionConfig, ActionFormat, ActionRepresentation, ActionType, FakePolicyServer, \
    ModalityConfig
from support.client_harness import (CONNECT_S, ERROR_BOUND_S, HOLD_JOINTS, MEASURED, assert_quiet,
                                  assert_within_limits, client_and_robot, is_zero_twist, wait_state)
from support.ros_helpers import wait_for

GROUPS = [g.name for g in layout.LAYOUT_GROUPS]
LANGUAGE_KEY = "annotation.human.task_description"
WIDTH, HEIGHT = 64, 56  # the client's model image size in these tests
# client defaults per 10 ms command tick: 1.5 rad/s joints, 3 rad/s grippers, 0.5 m/s^2 and 1.5 rad/s^2 base
STEP = 0.01 * np.array([0.5] * 3 + [1.5] * 3 + ([1.5] * 5 + [3.0]) * 2 + [1.5] * 3)


class HalfStatePolicy:
    """get_action -> {key: (1, 16, D) = state[key] * 0.5}; keys listed in an order unlike the layout's."""

    def __init__(self):
        self.fail = False
        self.observations: list[dict] = []

    def get_modality_config(self) -> dict:
        absolute = ActionConfig(ActionRepresentation.ABSOLUTE, ActionType.NON_EEF, ActionFormat.DEFAULT)
        return {
            "video": ModalityConfig([0], list(reversed(layout.CAMERA_NAMES))),
            "state": ModalityConfig([0], list(reversed(GROUPS))),
            "action": ModalityConfig(list(range(layout.ACTION_HORIZON)), GROUPS, action_configs=[absolute] * 4),
            "language": ModalityConfig([0], [LANGUAGE_KEY]),
        }

    def get_action(self, observation, options=None):
        if self.fail:
            raise RuntimeError("policy exploded: CUDA out of memory")
        self.observations.append(observation)
        action = {key: np.repeat(value[:, -1:, :] * 0.5, layout.ACTION_HORIZON, axis=1).astype(np.float32)
                  for key, value in observation["state"].items()}
        return action, {"inference_time_ms": 1.0}

    def reset(self, options=None):
        return {}


def endpoints(server: FakePolicyServer) -> list[str]:
    return [r.get("endpoint") for r in list(server.requests)]


def command_vector(joints, twist) -> np.ndarray:
    base = [twist.linear.x, twist.linear.y, twist.linear.z, twist.angular.x, twist.angular.y, twist.angular.z]
    return np.array(base + list(joints.position))


def test_gr00t_protocol_client_plays_the_flattened_action(ros_context, ipc_path):
    policy = HalfStatePolicy()
    with FakePolicyServer(policy, f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path, server_protocol="gr00t", image_width=WIDTH,
                             image_height=HEIGHT) as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(policy.observations) >= 3 and len(robot.joints.messages) >= 30)

        # The modality config is fetched once, before the first observation.
        calls = [c for c in endpoints(server) if c != "ping"]  # the worker may ping first on activation
        assert calls[0] == "get_modality_config" and calls.count("get_modality_config") == 1
        assert set(calls[1:]) == {"get_action"}

        # Observations: raw npy frames at the model size, by camera name; the state split by key.
        for observation in policy.observations:
            assert set(observation) == {"video", "state", "language"}
            assert set(observation["video"]) == set(layout.CAMERA_NAMES)
            for i, name in enumerate(layout.CAMERA_NAMES):
                frame = observation["video"][name]
                assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8
                assert frame.shape == (1, 1, HEIGHT, WIDTH, 3)
                assert np.all(frame == 30 * (i + 1)), f"{name} carries another camera's frame"
            assert set(observation["state"]) == set(GROUPS)
            for group in layout.LAYOUT_GROUPS:
                value = observation["state"][group.name]
                assert value.dtype == np.float32 and value.shape == (1, 1, group.size)
                np.testing.assert_array_equal(value[0, 0], MEASURED[group.start:group.stop].astype(np.float32))
            assert observation["language"] == {LANGUAGE_KEY: [["find the can and pick it up"]]}

        # Commands: from the measured joints (and a base at rest) toward the flattened action (half the
        # measured state), by at most one tick's velocity/acceleration limit, then exactly it.
        target = MEASURED * 0.5
        start = MEASURED.copy()
        start[layout.BASE_DIMS] = 0.0
        step = STEP
        n = min(len(robot.joints.messages), len(robot.twists.messages))
        sent = [command_vector(j, t) for j, t in zip(robot.joints.messages[:n], robot.twists.messages[:n])]
        np.testing.assert_allclose(sent[0], start + np.clip(target - start, -step, step), atol=1e-6)
        for previous, current in zip(sent, sent[1:]):
            assert np.all(np.abs(current - previous) <= step + 1e-6)
        np.testing.assert_allclose(sent[-1], target, atol=1e-6)
        np.testing.assert_allclose(sent[25], target, atol=1e-6)  # 0.25 rad at 0.015 rad per tick: 17 ticks
        assert_within_limits(robot.commands())
        status = client.status()
        assert status["server_protocol"] == "gr00t" and status["requests_failed"] == 0
        assert status["chunks_received"] >= 3
        print(f"\ngr00t protocol: {len(policy.observations)} get_action, 1 get_modality_config, "
              f"{len(robot.joints.messages)} commands, final command = flattened action")


def test_gr00t_error_reply_is_counted_and_leads_to_error(ros_context, ipc_path):
    policy = HalfStatePolicy()
    policy.fail = True
    with FakePolicyServer(policy, f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path, server_protocol="gr00t", image_width=WIDTH,
                             image_height=HEIGHT, max_consecutive_failures=3) as (client, robot):
        robot.activate(True)
        time_to_error = wait_state(client, ClientState.ERROR, ERROR_BOUND_S)
        assert_quiet(robot)
        status = client.status()
        assert status["requests_failed"] == 3 and status["requests_ok"] == 0
        assert "policy exploded" in status["last_error"]
        assert endpoints(server).count("get_action") == 3
        # Held: no policy command reached the robot.
        assert all(np.allclose(m.position, HOLD_JOINTS, atol=1e-6) for m in robot.joints.messages)
        assert all(is_zero_twist(t) for t in robot.twists.messages)

        # The policy recovers; a fresh activation plays its actions (the config is not fetched again).
        policy.fail = False
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: client.worker.requests_ok >= 2)
        assert endpoints(server).count("get_modality_config") == 1
        assert client.worker.consecutive_failures == 0
        print(f"\ngr00t error reply: ERROR after {time_to_error:.2f} s and 3 failures, recovered on re-activation")
