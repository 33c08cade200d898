"""The one `main()` shape for every node: init, start, spin, clean up in `finally`.

rclpy turns SIGINT/SIGTERM into a context shutdown, so `spin` ends with
ExternalShutdownException (or an RCLError when the shutdown races the wait set);
either way the node's `close()` runs and removes what it owns.
"""

from __future__ import annotations

import logging

import rclpy
from rclpy.executors import ExternalShutdownException


def run_node(node_factory, args=None) -> int:
    """Create, start and spin one node until shutdown; exit code 1 on a startup or runtime error."""
    logging.basicConfig(level=logging.INFO)
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = node_factory()
        node.start()
        rclpy.spin(node)  # single-threaded: callbacks only store data; heavy work runs on our own threads
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        if rclpy.ok():  # a real failure, not a shutdown racing the executor
            name = node.get_name() if node else getattr(node_factory, "__name__", "node")
            logging.getLogger(name).error(f"{name} failed: {exc}")
            code = 1
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        rclpy.try_shutdown()
    return code
