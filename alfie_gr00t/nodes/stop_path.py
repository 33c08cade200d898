"""The client's stop path: its command topics and services on a node, thread and DDS participant of
their own.

A ROS node's callbacks all run on the one executor it is added to, so the client's stop
interfaces live on a small second node, `<client>_stop` (same namespace, same process),
spun by its own single-threaded executor thread. They are created on the client's own
resolved names (`/<ns>/groot_client/estop`, ...), so publishers and callers see no change;
`ros2 node info` lists them under the `_stop` node. Nothing else runs there: no sensor
callback, status, diagnostics or recording can delay a stop (docs/safety.md).

The node also has its own rclpy context, hence its own DDS participant with its own receive
resources (shared-memory port, UDP sockets, listener threads): four raw cameras arriving at the
client's participant cannot fill the buffers a stop request arrives through. A reliable sample
lost there is only repaired when its writer sends again, which for a one-shot publisher or a
single service request can be seconds later, or never.

Here: `~/estop` and `~/activate` (std_msgs/Bool), the services `~/set_active`, `~/stop`,
`~/estop`, the transient-local `~/estop` subscription that exists while a latched publisher
does, and the deadman's heartbeat subscription (any message type, taken from the graph).
"""

from __future__ import annotations

import importlib
import os

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from alfie_gr00t.nodes.launch_args import config_path
from alfie_gr00t.nodes.runner import NodeSpinner

PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")

# Reliable and volatile: matches plain (`ros2 topic pub`) and latched publishers alike, with no QoS
# warning; a depth of 10 keeps a burst of commands until the callback takes them.
COMMAND_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Best effort matches reliable and best-effort heartbeat publishers; volatile: a latched heartbeat
# from the past never counts.
HEARTBEAT_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
GRAPH_PERIOD_S = 0.5


class StopPath:
    """The stop interfaces of `client` (a started GrootClient), calling `client.core`."""

    def __init__(self, client):
        self._client, self._core = client, client.core
        self._logger = client.get_logger()
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=client.context.get_domain_id(),
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = Node(f"{client.get_name()}_stop", namespace=client.get_namespace(), context=self.context,
                         use_global_arguments=False, start_parameter_services=False)
        topic, service = client.resolve_topic_name, client.resolve_service_name
        self._estop_topic = topic("~/estop")
        self.node.create_subscription(Bool, topic("~/activate"), self._on_activate, COMMAND_QOS)
        self.node.create_subscription(Bool, self._estop_topic, self._on_estop, COMMAND_QOS)
        self.node.create_service(SetBool, service("~/set_active"), self._on_set_active)
        self.node.create_service(Trigger, service("~/stop"), self._on_stop)
        self.node.create_service(SetBool, service("~/estop"), self._on_estop_service)
        self.latched_estop = None
        deadman = client.config.deadman_topic
        self._deadman_topic = topic(deadman) if deadman else ""
        self._deadman_sub, self.deadman_type = None, ""
        self.node.create_timer(GRAPH_PERIOD_S, self._watch_graph)
        self._spinner = NodeSpinner([self.node], self.context)

    def start(self) -> "StopPath":
        self._watch_graph()
        self._spinner.start()
        return self

    def close(self) -> None:
        self._spinner.stop()
        self.node.destroy_node()
        self.context.try_shutdown()

    # -- commands ----------------------------------------------------------------------------
    def _on_activate(self, msg: Bool) -> None:
        ok, message = self._core.activate(msg.data)
        self._report(f"~/activate {str(msg.data).lower()}", ok, message)

    def _on_estop(self, msg: Bool) -> None:
        ok, message = self._core.estop(msg.data)
        self._report(f"~/estop {str(msg.data).lower()}", ok, message)

    def _on_set_active(self, request, response):
        response.success, response.message = self._core.activate(request.data)
        self._report(f"~/set_active {str(request.data).lower()}", response.success, response.message)
        return response

    def _on_stop(self, request, response):
        response.success, response.message = self._core.estop(True)
        self._report("~/stop", response.success, response.message)
        return response

    def _on_estop_service(self, request, response):
        response.success, response.message = self._core.estop(request.data)
        self._report(f"~/estop {str(request.data).lower()}", response.success, response.message)
        return response

    def _report(self, what: str, ok: bool, message: str) -> None:
        """After the stop took effect: the log line (a refusal by topic has nobody else to tell)."""
        if ok:
            self._logger.info(f"{what}: {message}")
        else:
            self._logger.warning(f"{what}: {message}")

    # -- the graph: a latched e-stop, the deadman's message type ---------------------------------
    def _watch_graph(self) -> None:
        self._watch_latched_estop()
        if self._deadman_topic:
            self._watch_deadman()

    def _watch_latched_estop(self) -> None:
        """Keep a transient-local ~/estop subscription exactly while a latched publisher exists, so an
        e-stop latched before the client started is fetched."""
        latched = any(info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                      for info in self.node.get_publishers_info_by_topic(self._estop_topic))
        if latched and self.latched_estop is None:
            self.latched_estop = self.node.create_subscription(Bool, self._estop_topic, self._on_estop, LATCHED_QOS)
        elif not latched and self.latched_estop is not None:
            self.node.destroy_subscription(self.latched_estop)
            self.latched_estop = None

    def _watch_deadman(self) -> None:
        """Subscribe to the heartbeat topic with the type its publishers use (raw: never deserialized)."""
        types = sorted({info.topic_type for info in self.node.get_publishers_info_by_topic(self._deadman_topic)})
        if not types or types[0] == self.deadman_type:
            return
        if len(types) > 1:
            self._logger.warning(f"deadman topic {self._deadman_topic} has publishers of several types "
                                 f"{types}; listening to {types[0]}")
        msg_type = message_class(types[0])
        if msg_type is None:
            self._logger.error(f"deadman topic {self._deadman_topic}: message type {types[0]} is not installed "
                               "here; no heartbeat can be received, so the robot will not move")
            self.deadman_type = types[0]
            return
        if self._deadman_sub is not None:
            self.node.destroy_subscription(self._deadman_sub)
        self._deadman_sub = self.node.create_subscription(msg_type, self._deadman_topic, self._on_heartbeat,
                                                          HEARTBEAT_QOS, raw=True)
        self.deadman_type = types[0]
        self._logger.info(f"deadman: listening to {self._deadman_topic} ({types[0]})")

    def _on_heartbeat(self, _data) -> None:
        self._core.heartbeat()


def message_class(type_name: str):
    """'std_msgs/msg/Empty' -> the message class, or None when it cannot be imported."""
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        return None
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        return None


def use_client_dds_profile(environ=os.environ) -> str:
    """Before rclpy starts: Fast DDS readers that ask for a missed stop after 1 ms, not 70 ms
    (config/fastdds_client.xml), unless another middleware runs or a Fast DDS profile file is already
    set (yours wins; add its reader setting to it). The file set, or "" when none."""
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return ""
    if any(environ.get(name) for name in PROFILE_VARIABLES):
        return ""
    path = config_path("fastdds_client.xml")
    if not os.path.isfile(path):
        return ""
    environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = path
    return path
