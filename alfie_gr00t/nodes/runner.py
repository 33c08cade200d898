"""The one `main()` shape for every node: init, start, spin, clean up in `finally`.

SIGINT/SIGTERM end the spin loop while the ROS context is still valid, so each node's
`close()` can still publish (the client's stop) and log to /rosout before shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


class NodeSpinner:
    """Spins each node on its own single-threaded executor and thread (bringup, benchmark, tests).

    One rclpy MultiThreadedExecutor over all nodes was measured here (2 cores, sim robot at
    30 Hz) at 112 % CPU with a 1.2 s command-period p99; per-node executors: 21 % CPU, 10.7 ms.
    """

    def __init__(self, nodes, context=None):
        self._executors = []
        self._threads = []
        self._stopping = threading.Event()
        for node in nodes:
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            self._executors.append(executor)
            self._threads.append(threading.Thread(target=self._spin, args=(executor,), daemon=True,
                                                  name=f"spin-{node.get_name()}"))

    def _spin(self, executor) -> None:
        while not self._stopping.is_set() and executor.context.ok():
            executor.spin_once(timeout_sec=0.1)

    def start(self) -> "NodeSpinner":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Every spin loop ends after its callback in flight (all of them at once), then each executor
        is shut down with nothing left to wait for. Humble's Executor.shutdown(timeout_sec) waits for
        the callbacks in flight, one executor after the other (Jazzy's returns at once), and destroys
        the executor's guard condition while a spin thread may still be waiting on it."""
        self._stopping.set()
        for executor in self._executors:
            executor.wake()
        for thread in self._threads:
            thread.join(timeout=2.0)
        for executor in self._executors:
            executor.shutdown(timeout_sec=0)

    def __enter__(self) -> "NodeSpinner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def log_info(node, message: str) -> None:
    """Log through the node while its context is up; through Python logging once it is shut down.

    After SIGINT/SIGTERM the context is gone and rosout can no longer publish ("Failed to
    publish log message to rosout: publisher's context is invalid"); `close()` runs then.
    """
    if node.context.ok():
        node.get_logger().info(message)
    else:
        logging.getLogger(node.get_name()).info(message)


class RosLogBridge(logging.Handler):
    """Python logging from the ROS-free core (`alfie_gr00t.*`) -> the node's ROS logger, so it reaches
    /rosout. One call site per severity (rclpy refuses to change a call site's severity); once the
    context is down the records go to stderr instead."""

    def __init__(self, node):
        super().__init__()
        self._node = node

    def emit(self, record: logging.LogRecord) -> None:
        if not self._node.context.ok():
            logging.getLogger(self._node.get_name()).handle(record)
            return
        message = f"[{record.name}] {record.getMessage()}"
        logger = self._node.get_logger()
        if record.levelno >= logging.ERROR:
            logger.error(message)
        elif record.levelno >= logging.WARNING:
            logger.warning(message)
        else:
            logger.info(message)


def bridge_logging(node) -> RosLogBridge:
    """Send the package's Python log records through `node` (until `unbridge_logging`)."""
    bridge = RosLogBridge(node)
    package = logging.getLogger("alfie_gr00t")
    package.addHandler(bridge)
    package.propagate = False
    return bridge


def unbridge_logging(bridge: RosLogBridge) -> None:
    package = logging.getLogger("alfie_gr00t")
    package.removeHandler(bridge)
    package.propagate = not package.handlers


def close_nodes(nodes) -> None:
    """Release what each node owns (`close()`, newest first), then destroy it."""
    for node in reversed(nodes):
        if hasattr(node, "close"):
            node.close()
        node.destroy_node()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals() -> threading.Event:
    """SIGINT/SIGTERM set the returned event instead of shutting the ROS context down (rclpy must be
    initialised with SignalHandlerOptions.NO), so the caller's cleanup can still publish."""
    stop = threading.Event()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, lambda signum, frame: stop.set())
    return stop


def ignore_signals() -> None:
    """During cleanup: a late second signal must not interrupt it with a traceback."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def node_help(node_factory) -> str:
    """`--help` of a node executable: what it is (its module's summary) and how its parameters are set."""
    module = sys.modules.get(getattr(node_factory, "__module__", ""), None)
    summary = ((getattr(module, "__doc__", None) or node_factory.__doc__ or "").strip().split("\n\n")[0])
    name = os.path.basename(sys.argv[0]).removesuffix(".py") or getattr(node_factory, "__name__", "node")
    return "\n".join([
        f"usage: {name} [--ros-args -p name:=value ... --params-file FILE]", "", summary, "",
        "A ROS 2 node: its parameters are ROS parameters (the defaults and their meaning: config/*.yaml and",
        "docs/parameters.md). Usually started by `ros2 launch alfie_gr00t groot_inference.launch.py`",
        "(`--show-args` lists its name:=value arguments) or `python -m alfie_gr00t.tools.bringup --help`."])


def run_node(node_factory, args=None) -> int:
    """Create, start and spin one node until SIGINT/SIGTERM; exit code 1 on a startup or runtime error.

    rclpy's own signal handler would shut the context down the moment a signal lands, before
    `close()` could publish anything (the client's stop command, zero base velocity). So the
    signals are ours: they end the spin loop; `close()` runs with the context still valid; a
    second signal during cleanup is ignored instead of raising a traceback.
    """
    words = list(sys.argv[1:] if args is None else args[1:] if args and not str(args[0]).startswith("-") else args)
    own = words[:words.index("--ros-args")] if "--ros-args" in words else words
    if any(w in ("-h", "--help") for w in own):
        print(node_help(node_factory))
        return 0
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = stop_on_signals()
    node = None
    code = 0
    try:
        node = node_factory()
        bridge = bridge_logging(node)
        node.start()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)  # single-threaded: callbacks only store data
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        if rclpy.ok():  # a real failure, not a shutdown racing the executor
            name = node.get_name() if node else getattr(node_factory, "__name__", "node")
            logging.getLogger(name).error(f"{name} failed: {exc}")
            code = 1
    finally:
        ignore_signals()
        if node is not None:
            close_nodes([node])
            unbridge_logging(bridge)
        rclpy.try_shutdown()  # the handlers stay ignored: the process is on its way out
    return code
