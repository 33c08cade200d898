"""The client's commands as services that answer with what really happened.

`~/set_active` (std_srvs/SetBool), `~/stop` (std_srvs/Trigger: latches E_STOP) and `~/estop`
(std_srvs/SetBool: true latches, false releases), called from a real rclpy client node on the test
robot, against a real client node and a scripted ZeroMQ server (support/client_harness.py)."""

from __future__ import annotations

from std_srvs.srv import SetBool, Trigger

from alfie_gr00t.client.state_machine import ClientState

from support.ros_helpers import wait_for
from support.client_harness import (ARM_HEAD_NAMES, CLIENT_NS, CONNECT_S, POSTURE, ScriptedServer, assert_quiet,
                                  client_and_robot, is_hold, is_zero_twist, wait_state)

CALL_TIMEOUT_S = 10.0


class Services:
    """Service clients on the test robot's node (spun by the test's NodeSpinner)."""

    def __init__(self, node):
        self.set_active = node.create_client(SetBool, f"{CLIENT_NS}/set_active")
        self.stop = node.create_client(Trigger, f"{CLIENT_NS}/stop")
        self.estop = node.create_client(SetBool, f"{CLIENT_NS}/estop")
        for client in (self.set_active, self.stop, self.estop):
            assert client.wait_for_service(timeout_sec=CONNECT_S), f"{client.srv_name} never appeared"

    @staticmethod
    def call(client, request):
        future = client.call_async(request)
        assert wait_for(future.done, timeout=CALL_TIMEOUT_S), f"{client.srv_name}: no answer"
        response = future.result()
        return response.success, response.message

    def activate(self, on: bool):
        return self.call(self.set_active, SetBool.Request(data=on))

    def e_stop(self):
        return self.call(self.stop, Trigger.Request())

    def set_estop(self, on: bool):
        return self.call(self.estop, SetBool.Request(data=on))


def test_set_active_answers_activated_already_active_and_deactivated(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}"), client_and_robot(ros_context, ipc_path) as (client, robot):
        services = Services(robot.node)
        ok, message = services.activate(True)
        assert ok and message.startswith("activated"), message
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.policy_commands()) >= 5)

        assert services.activate(True) == (True, "already active (ACTIVE)")
        assert client.machine.state is ClientState.ACTIVE

        before = len(robot.joints.messages)
        ok, message = services.activate(False)
        assert ok and message.startswith("deactivated: IDLE (was ACTIVE)"), message
        assert client.machine.state is ClientState.IDLE, "answered after the transition, not before"
        assert_quiet(robot)
        assert is_hold(robot.commands(before)[-1]), "deactivation holds where the robot is"
        assert services.activate(False) == (True, "already IDLE")


def test_set_active_refusal_names_the_joints_never_measured(ros_context, ipc_path):
    def without_head(robot):  # the driver never reports head_yaw and head_pitch
        keep = [i for i, n in enumerate(ARM_HEAD_NAMES) if n not in ("head_yaw", "head_pitch")]
        robot.joint_names = [ARM_HEAD_NAMES[i] for i in keep]
        robot.posture = [POSTURE[i] for i in keep]

    with ScriptedServer(f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path, robot_setup=without_head) as (client, robot):
        assert wait_for(lambda: client.measured.reading().missing() == ["head_yaw", "head_pitch"],
                        timeout=CONNECT_S)
        services = Services(robot.node)
        ok, message = services.activate(True)
        assert not ok
        assert message == "refused: robot state not usable: never measured: head_yaw, head_pitch"
        assert client.machine.state is ClientState.ERROR
        assert not robot.commands(), "a refused activation publishes nothing"
        assert not server.requests

        # The driver starts reporting them: the same call now activates.
        robot.joint_names, robot.posture = list(ARM_HEAD_NAMES), list(POSTURE)
        assert wait_for(lambda: client.measured.reading().missing() == [], timeout=CONNECT_S)
        ok, message = services.activate(True)
        assert ok and message.startswith("activated"), message
        wait_state(client, ClientState.ACTIVE, CONNECT_S)


def test_stop_latches_estop_and_only_estop_false_releases_it(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}"), client_and_robot(ros_context, ipc_path) as (client, robot):
        services = Services(robot.node)
        assert services.activate(True)[0]
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.policy_commands()) >= 5)

        twists_before = len(robot.twists.messages)
        ok, message = services.e_stop()
        assert ok and message.startswith("E_STOP latched (was ACTIVE)"), message
        assert client.machine.state is ClientState.E_STOP
        assert wait_for(lambda: len(robot.twists.messages) > twists_before, timeout=5.0)
        assert_quiet(robot)
        assert is_zero_twist(robot.twists.messages[-1]), "e-stop: zero base velocity at once"

        assert services.e_stop() == (True, "already in E_STOP")
        assert services.set_estop(True) == (True, "already in E_STOP")
        ok, message = services.activate(True)
        assert not ok and message.startswith("refused: in E_STOP"), message
        ok, message = services.activate(False)
        assert ok and "E_STOP stays latched" in message, message
        assert client.machine.state is ClientState.E_STOP

        ok, message = services.set_estop(False)
        assert (ok, message) == (True, "E_STOP released: IDLE; activate again to move")
        assert client.machine.state is ClientState.IDLE
        assert services.set_estop(False) == (True, "not in E_STOP (IDLE): nothing to release")
        resumed_from = len(robot.joints.messages)
        assert services.activate(True)[0]
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.policy_commands(resumed_from)) >= 5), "policy motion resumes"


def test_documented_service_calls_name_real_services_and_requests(ros_context, ipc_path):
    """Every `ros2 service call` line in README.md and docs/*.md: the service exists on the real client
    with that type, and the YAML request fills that type's fields."""
    import os
    import re
    import shlex

    import yaml

    from support.ros_helpers import REPO

    calls = []
    for name in ["README.md"] + [f"docs/{n}" for n in sorted(os.listdir(os.path.join(REPO, "docs")))
                                 if n.endswith(".md")]:
        with open(os.path.join(REPO, name), encoding="utf-8") as f:
            for block in re.findall(r"```bash\n(.*?)```", f.read(), re.S):
                calls += [(name, shlex.split(line, comments=True)) for line in block.splitlines()
                          if line.startswith("ros2 service call")]
    assert len(calls) >= 3, "docs/robot-jetson.md shows the service calls"
    types = {"std_srvs/srv/SetBool": SetBool, "std_srvs/srv/Trigger": Trigger}
    with ScriptedServer(f"ipc://{ipc_path}"), client_and_robot(ros_context, ipc_path) as (client, _robot):
        offered = {}  # the client's own services and its stop path's (a node and participant of its own)
        for node in (client, client.stop_path.node):
            offered.update(node.get_service_names_and_types_by_node(node.get_name(), node.get_namespace()))
        for where, words in calls:
            service, type_name = words[3], words[4]
            assert service.startswith("/alfie/"), f"{where}: {service}: the launch file's namespace is alfie"
            service = service[len("/alfie"):]  # this test's client runs without the launch namespace
            assert type_name in offered.get(service, []), f"{where}: {service} ({type_name}) not offered: {offered}"
            values = yaml.safe_load(words[5]) if len(words) > 5 else {}
            request = types[type_name].Request()
            for key, value in (values or {}).items():
                setattr(request, key, value)  # rosidl setters check names and types
