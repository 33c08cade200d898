"""The one benchmark rig: groot_server, groot_client and the sim robot as real ROS 2 nodes in this process.

Each node spins on its own executor thread (what the bringup does), a monitor node carries the
benchmark's own publishers and subscriptions, and `activate()` waits until the client is ACTIVE.
Every benchmark that needs the robot stack starts it here; what it measures is its own business:

    with NodeRig(domain_id, ipc_path, server={"mock_policy": "trajectory"}) as rig:
        rig.subscribe(JointState, "/alfie/groot_client/joint_commands", on_command)
        rig.spin()
        if rig.activate(timeout_s=10.0):
            ...

`with_server=False` leaves the server out (the benchmark serves `ipc_path` itself, e.g. from a process);
`with_robot=False` leaves the sim robot out. `server`, `client` and `robot` are parameter overrides.
"""

from __future__ import annotations

import time

ACTIVATE_TOPIC = "/alfie/groot_client/activate"


def activate_until_active(client, publisher, deadline: float) -> bool:
    """Publish activate:true until the client is ACTIVE (discovery matched, its state measured; an
    activation is refused before the state arrives) or the monotonic `deadline` passes."""
    from std_msgs.msg import Bool

    from alfie_gr00t.client.state_machine import ClientState

    while time.monotonic() < deadline:
        current = client.machine.state
        if current is ClientState.ACTIVE:
            return True
        fresh = not client.measured.reading().problems(client.now(), client.config.max_observation_age_ms / 1000.0)
        if current in (ClientState.IDLE, ClientState.ERROR) and fresh:
            publisher.publish(Bool(data=True))
        time.sleep(0.1)
    return client.machine.state is ClientState.ACTIVE


class NodeRig:
    """Server (mock by default), client and sim robot in one rclpy context of their own."""

    def __init__(self, domain_id: int, ipc_path: str, *, server: dict | None = None, client: dict | None = None,
                 robot: dict | None = None, with_server: bool = True, with_robot: bool = True,
                 log_level: str = "error", name: str = "groot_bench"):
        import rclpy
        from rclpy.parameter import Parameter
        from std_msgs.msg import Bool

        from alfie_gr00t.nodes.groot_client import GrootClient
        from alfie_gr00t.nodes.groot_server import GrootServer
        from alfie_gr00t.nodes.sim_robot import SimRobot

        def params(values: dict) -> list:
            return [Parameter(k, value=v) for k, v in values.items()]

        self.context = rclpy.Context()
        rclpy.init(args=["--ros-args", "--log-level", log_level], context=self.context, domain_id=domain_id)
        self.nodes, self._spinner = [], None
        self.server = self.robot = None
        try:
            if with_server:
                values = {"mock_mode": True, "ipc_path": ipc_path, **(server or {})}
                self.server = GrootServer(namespace="alfie", context=self.context, parameter_overrides=params(values))
                self.server.start()
                self.nodes.append(self.server)
            self.client = GrootClient(namespace="alfie", context=self.context,
                                      parameter_overrides=params({"ipc_path": ipc_path, **(client or {})}))
            self.client.start()
            self.nodes.append(self.client)
            if with_robot:
                self.robot = SimRobot(namespace="alfie", context=self.context,
                                      parameter_overrides=params(robot or {}))
                self.robot.start()
                self.nodes.append(self.robot)
            self.monitor = rclpy.create_node(name, namespace="alfie", context=self.context)
            self.nodes.append(self.monitor)
            self._activate = self.monitor.create_publisher(Bool, ACTIVATE_TOPIC, 10)
        except BaseException:
            self.close()
            raise

    def subscribe(self, msg_type, topic: str, callback, depth: int = 10):
        """A subscription on the monitor node (create them before spin())."""
        return self.monitor.create_subscription(msg_type, topic, callback, depth)

    def stamp(self) -> float:
        """The monitor's ROS clock now, in seconds."""
        return self.monitor.get_clock().now().nanoseconds * 1e-9

    def spin(self) -> "NodeRig":
        from alfie_gr00t.nodes.runner import NodeSpinner

        self._spinner = NodeSpinner(self.nodes, self.context).start()
        return self

    def activate(self, timeout_s: float) -> bool:
        """Activate the client; True once it is ACTIVE within `timeout_s`."""
        return activate_until_active(self.client, self._activate, time.monotonic() + timeout_s)

    def close(self) -> None:
        from alfie_gr00t.nodes.runner import close_nodes

        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None
        close_nodes(self.nodes)
        self.nodes = []
        self.context.try_shutdown()

    def __enter__(self) -> "NodeRig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
