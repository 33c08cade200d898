"""Single-process bringup for machines without `ros2 launch` (launch/launch_ros are not on PyPI).

    python -m alfie_gr00t.tools.bringup mock_mode:=true use_sim_robot:=true duration:=10

Same configs and the same `name:=value` arguments as the launch file (checked and typed by
the same code: empty = from the YAML, unknown names rejected), every node in this one
process, optional auto-activation, a status line per second and a final summary.
Exit code 0 when the loop ran (requests served, chunks received, commands sent).

Each node spins its own single-threaded executor on its own thread (`NodeSpinner`).
"""

from __future__ import annotations

import json
import logging
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Bool, String

from alfie_gr00t.engines.base import EngineError
from alfie_gr00t.nodes.launch_args import ARGUMENTS, config_path, plan_from_arguments, to_bool
from alfie_gr00t.nodes.groot_client import GrootClient
from alfie_gr00t.nodes.groot_server import GrootServer
from alfie_gr00t.nodes.runner import NodeSpinner, close_nodes, ignore_signals, stop_on_signals
from alfie_gr00t.nodes.sim_robot import SimRobot
from alfie_gr00t.nodes.stop_path import use_client_dds_profile
from alfie_gr00t.wire.transport import AddressInUse

NAMESPACE = "alfie"
BRINGUP_ARGUMENTS = {"duration": "0", "auto_activate": "true"}
BRINGUP_HELP = {"duration": "seconds to run, then print the summary and exit (0 = until Ctrl-C)",
                "auto_activate": "activate the client once the nodes are up"}


def help_text() -> str:
    """The usage, then every name:=value argument with its default (the launch file's, plus bringup's own)."""
    lines = ["usage: python -m alfie_gr00t.tools.bringup [name:=value ...]", "", __doc__.strip(), "",
             "arguments (name:=value; the same as groot_inference.launch.py):"]
    width = max(len(n) for n in (*ARGUMENTS, *BRINGUP_ARGUMENTS))
    for name, arg in ARGUMENTS.items():
        choices = f" [{'|'.join(arg.choices)}]" if arg.choices else ""
        lines.append(f"  {name:<{width}}  default {arg.default!r}{choices}: {arg.description}")
    for name, default in BRINGUP_ARGUMENTS.items():
        lines.append(f"  {name:<{width}}  default {default!r}: {BRINGUP_HELP[name]} (bringup only)")
    return "\n".join(lines)


def parse_arguments(argv: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """`name:=value` words -> (launch arguments, bringup-only arguments)."""
    launch, own = {}, dict(BRINGUP_ARGUMENTS)
    for word in argv:
        name, sep, value = word.partition(":=")
        if not sep:
            raise ValueError(f"arguments look like name:=value, got {word!r}")
        (own if name in BRINGUP_ARGUMENTS else launch)[name] = value
    return launch, own


def _overrides(values: dict) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items()]


class StatusListener:
    """Counts and parses both status topics, as `ros2 topic echo` would show them."""

    def __init__(self, node):
        self.latest = {"server": None, "client": None}
        self.counts = {"server": 0, "client": 0}
        self.invalid = 0
        for key in self.latest:
            node.create_subscription(String, f"/{NAMESPACE}/groot_{key}/status",
                                     lambda msg, k=key: self._store(k, msg), 10)

    def _store(self, key, msg):
        try:
            self.latest[key] = json.loads(msg.data)
            self.counts[key] += 1
        except json.JSONDecodeError:
            self.invalid += 1


def status_line(elapsed: float, server, client) -> str:
    parts = [f"[{elapsed:5.1f}s]"]
    if server is not None:
        s = server.service.status()
        parts.append(f"server: {s['total_requests']} req, p50 {s['request_p50_ms']:.2f} ms, errors {s['errors']}")
    c = client.status()
    parts.append(f"client: {c['state']}, ok {c['requests_ok']}, fail {c['requests_failed']}, "
                 f"rtt p50 {c['round_trip_p50_ms']:.2f} ms, queue {c['queue_depth_steps']:.1f} steps, "
                 f"cmds {c['commands_published']}")
    return " | ".join(parts)


def run(argv: list[str]) -> int:
    launch_values, own = parse_arguments(argv)
    plan = plan_from_arguments(launch_values, extra_known=BRINGUP_ARGUMENTS)
    duration = float(own["duration"])
    use_client_dds_profile()  # the client's readers, before rclpy starts its participants
    rclpy.init(args=["--ros-args", "--params-file", config_path("groot_server.yaml"),
                     "--params-file", config_path("groot_client.yaml")],
               signal_handler_options=SignalHandlerOptions.NO)
    stop = stop_on_signals()  # Ctrl-C / SIGTERM end the loop with the context alive: the client's stop goes out
    nodes, spinner, server, client = [], None, None, None
    try:
        if plan.launch_server:
            server = GrootServer(namespace=NAMESPACE, parameter_overrides=_overrides(plan.server_params))
            server.start()
            nodes.append(server)
        client = GrootClient(namespace=NAMESPACE, parameter_overrides=_overrides(plan.client_params))
        client.start()
        nodes.append(client)
        if plan.use_sim_robot:
            robot = SimRobot(namespace=NAMESPACE, parameter_overrides=_overrides(plan.sim_params))
            robot.start()
            nodes.append(robot)
        monitor = rclpy.create_node("groot_bringup", namespace=NAMESPACE)
        nodes.append(monitor)
        listener = StatusListener(monitor)
        activate = monitor.create_publisher(Bool, f"/{NAMESPACE}/groot_client/activate", 10)
        spinner = NodeSpinner(nodes).start()
        if to_bool("auto_activate", own["auto_activate"]):
            # Activation needs every joint measured: wait for the robot's state (bounded), then activate.
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and not stop.is_set() and (
                    client.measured.reading().missing() or activate.get_subscription_count() == 0):
                time.sleep(0.05)
            activate.publish(Bool(data=True))
        start = time.monotonic()
        while rclpy.ok() and not stop.is_set() and (duration <= 0 or time.monotonic() - start < duration):
            if stop.wait(1.0):
                break
            print(status_line(time.monotonic() - start, server, client), flush=True)
        return print_summary(server, client, listener)
    except (KeyboardInterrupt, ExternalShutdownException):
        return print_summary(server, client, None) if client else 0
    finally:
        ignore_signals()
        if spinner is not None:
            spinner.stop()
        close_nodes(nodes)
        rclpy.try_shutdown()


def print_summary(server, client, listener) -> int:
    c = client.status()
    lines = ["", "=== alfie_gr00t bringup summary ==="]
    if server is not None:
        s = server.service.status()
        lines.append(f"server : {s['total_requests']} requests served, {s['errors']} errors, engine {s['engine']}, "
                     f"request p50 {s['request_p50_ms']:.2f} ms / p95 {s['request_p95_ms']:.2f} ms")
    lines.append(f"client : state {c['state']}, {c['requests_ok']} ok / {c['requests_failed']} failed, "
                 f"{c['chunks_received']} chunks, {c['commands_published']} commands, "
                 f"round trip p50 {c['round_trip_p50_ms']:.2f} ms / p95 {c['round_trip_p95_ms']:.2f} ms, "
                 f"command period p99 {c['command_period_p99_ms']:.2f} ms")
    hold = f" (last: {c['last_hold_reason']})" if c["holds_published"] else ""
    lines.append(f"motion : {c['holds_published']} holds{hold}, latency budget {c['latency_budget']}, "
                 f"capture-to-queued p95 {c['latency_p95_ms']:.1f} ms, request timeout {c['request_timeout_ms']:.0f} ms, "
                 f"{c['safety_limited_ticks']} ticks limited by the gate")
    if listener is not None:
        lines.append(f"status : {listener.counts['server']} server and {listener.counts['client']} client "
                     f"status messages (valid JSON), {listener.invalid} invalid")
    print("\n".join(lines), flush=True)
    ran = c["chunks_received"] > 0 and c["commands_published"] > 0
    return 0 if ran else 1


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    if any(word in ("-h", "--help") for word in argv):
        print(help_text())
        return 0
    try:
        return run(argv)
    except ValueError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 2
    except (AddressInUse, EngineError) as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
