"""groot_server: a ZeroMQ REP policy server inside a ROS 2 node.

A serving thread owns the REP socket: it sleeps in zmq_poll (GIL released) and drains
every queued request the moment it arrives, so the ROS executor never touches or waits
on the socket. (A 1 ms executor timer measured 26 % of a core while idle on a 2-core
machine and added up to a tick of latency.) `~/status` carries the statistics as JSON at 1 Hz;
`/diagnostics` carries the same figures with an OK/WARN/ERROR level (alfie_gr00t.nodes.diagnostics).
"""

from __future__ import annotations

import json
import statistics
import sys

import rclpy
from rclpy.node import Node
from std_msgs.msg import String

from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.nodes.diagnostics import ServerDiagnostics, attach_diagnostics
from alfie_gr00t.engines.base import warm_up
from alfie_gr00t.engines.registry import create_engine
from alfie_gr00t.nodes.params import declare_config
from alfie_gr00t.nodes.runner import log_info, run_node
from alfie_gr00t.server.service import BackgroundServer, PolicyService


class GrootServer(Node):
    def __init__(self, **node_kwargs):
        super().__init__("groot_server", **node_kwargs)
        self.config: ServerConfig = declare_config(self, ServerConfig)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.service: PolicyService | None = None
        self.server: BackgroundServer | None = None

    def start(self) -> None:
        """Load and warm up the engine, bind the socket, start the timers."""
        cfg = self.config
        engine = create_engine(cfg.engine_config())
        times = warm_up(engine, cfg.engine_config(), cfg.warmup_runs)
        if times:
            self.get_logger().info(
                f"engine '{engine.name}' warmed up: {len(times)} runs, first {times[0]:.1f} ms, "
                f"median {statistics.median(times):.1f} ms")
        self.service = PolicyService(engine, cfg)
        self.service.warmup_ms = list(times)
        warning = cfg.exposure_warning()
        if warning:
            self.get_logger().warning(warning)
        self.server = BackgroundServer(self.service, cfg.address, int(cfg.ipc_mode, 8)).start()
        curve = self.server.endpoint.curve
        security = (f", CurveZMQ: {len(curve.allowed_clients)} allowed client key(s) from {curve.allowed_dir}"
                    if curve is not None else "")
        self.get_logger().info(f"serving on {cfg.address} (engine: {engine.name}{security})")
        self.create_timer(1.0, self._publish_status)
        attach_diagnostics(self, self.diagnostic_status, ServerDiagnostics(self.get_name()))

    def diagnostic_status(self) -> dict:
        """The JSON status plus whether the serving thread still runs (for /diagnostics only)."""
        if self.service is None:
            return {"serving": False}
        return {**self.service.status(), "serving": self.server is not None and self.server.alive}

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.service.status())))
        if self.service.kill_requested:
            self.get_logger().warning("remote kill requested; shutting down")
            rclpy.try_shutdown(context=self.context)

    def close(self) -> None:
        """Stop serving, remove our socket file and release the engine (safe to call twice)."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.service is not None:
            if self.service.total_requests and self.service.stages.summary():
                log_info(self, f"served {self.service.total_requests} requests; server profile (ms):\n"
                         + self.service.stages.format_table())
            self.service.engine.close()
            self.service.close()
            self.service = None


def main(args=None) -> int:
    return run_node(GrootServer, args)


if __name__ == "__main__":
    sys.exit(main())
