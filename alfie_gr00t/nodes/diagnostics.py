"""Node status dicts -> `diagnostic_msgs/DiagnosticStatus` entries for `/diagnostics`.

ROS-free core (the message types are imported only by `to_diagnostic_array`): each node's
JSON status becomes one `Diagnostic` with a level, a one-line message and the key figures
as key-values, in the convention `diagnostic_updater` uses and `rqt_robot_monitor`
(through `diagnostic_aggregator`), `rqt_runtime_monitor` and Foxglove's Diagnostics panel
read: name `alfie_gr00t: <node>`, `hardware_id`, values as strings.

Levels (docs/topics.md, "Diagnostics"):

- server: ERROR when the serving thread stopped or the engine failed on a recent request;
  WARN on other recent request errors or a request p95 above `latency_warn_ms`; else OK.
- client: ERROR in state ERROR; WARN in E_STOP (a deliberate, latched stop: the robot is
  held, nothing is broken), CONNECTING for longer than `connecting_warn_s`, stale inputs,
  holds or failures while running, a policy too slow for the chunk it plays, joints
  missing from or invalid in the robot's state, non-finite commands rejected, the deadman
  holding (heartbeats stopped) or refusing an activation, command deadlines missed while
  running (with the real-time priority refused, if it was); else OK. A refused priority alone is
  no WARN: the status says it (`command_thread`), and most desktops refuse it.

Missing keys are ignored, so statuses from older or newer nodes still map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}
PREFIX = "alfie_gr00t"

# A chunk of 16 steps plays for 16 / 15 Hz = 1.07 s: a policy whose p95 latency exceeds
# 1 s cannot keep the client's queue full.
SERVER_LATENCY_WARN_MS = 1000.0
CONNECTING_WARN_S = 5.0
RECENT_WINDOW_S = 10.0
# Counters whose increase within RECENT_WINDOW_S matters (the totals only ever grow).
SERVER_COUNTERS = ("errors",)
CLIENT_COUNTERS = ("holds_published", "requests_failed", "chunks_rejected", "safety_rejected_nonfinite",
                   "stale_observations_skipped", "command_deadlines_missed")


@dataclass(frozen=True)
class Diagnostic:
    level: int
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...]


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e9 else repr(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    return str(value)


def key_values(status: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Every entry as (key, text); nested dicts (e.g. `stages_ms`) flatten to dotted keys."""
    result = []
    for key, value in status.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            result.extend(key_values(value, name + "."))
        else:
            result.append((name, _text(value)))
    return result


def _num(status: dict, key: str, default=0.0) -> float:
    value = status.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _names(value) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [str(k) for k in value]
    return [str(v) for v in value]


def _diagnostic(level, node_name, message, hardware_id, status, extra=()) -> Diagnostic:
    return Diagnostic(level, f"{PREFIX}: {node_name}", message, hardware_id,
                      tuple([*extra, *key_values(status)]))


def server_diagnostics(status: dict, node_name: str = "groot_server", *, recent: dict | None = None,
                       latency_warn_ms: float = SERVER_LATENCY_WARN_MS, hardware_id: str | None = None) -> Diagnostic:
    """The server's status dict -> one Diagnostic.

    `recent` maps counters to their increase over the last few seconds (`StatusHistory`);
    without it, old errors do not raise the level (a single refused request an hour ago is
    not a warning now). A `serving: false` entry (the node adds it) is an ERROR.
    """
    recent = recent or {}
    errors = int(recent.get("errors", 0))
    last_error = str(status.get("last_error") or "")
    p95 = _num(status, "request_p95_ms")
    engine = status.get("engine", "?")
    problems, level = [], OK
    if status.get("serving") is False:
        level = ERROR
        problems.append("not serving: the server thread stopped")
    if errors and (last_error.startswith("Model inference failed") or status.get("engine_failed")):
        level = ERROR
        problems.append(f"engine '{engine}' failed: {last_error}")
    elif errors:
        level = max(level, WARN)
        problems.append(f"{errors} request error(s) in the last {RECENT_WINDOW_S:.0f} s: {last_error}")
    if p95 > latency_warn_ms:
        level = max(level, WARN)
        problems.append(f"request p95 {p95:.0f} ms > {latency_warn_ms:.0f} ms")
    if problems:
        message = "; ".join(problems)
    elif int(_num(status, "total_requests")) == 0:
        message = f"serving on {status.get('bind_address', '?')} (engine {engine}), no requests yet"
    else:
        message = f"serving (engine {engine}), request p50 {_num(status, 'request_p50_ms'):.1f} ms"
    extra = [("level", LEVEL_NAMES[level]), *((f"recent_{k}", _text(v)) for k, v in recent.items())]
    if isinstance(status.get("layout"), dict):
        extra.append(("layout", layout_summary(status["layout"])))
    return _diagnostic(level, node_name, message, hardware_id or str(status.get("bind_address", "")), status, extra)


def layout_summary(served: dict) -> str:
    """The status's "layout" entry in one value: where it came from, language key, groups with sizes."""
    groups = served.get("groups") or {}
    groups = ", ".join(f"{name} {size}" for name, size in groups.items()) if isinstance(groups, dict) else _text(groups)
    return f"{served.get('source', '?')}: language key '{served.get('language_key', '?')}'; groups {groups}"


def client_diagnostics(status: dict, node_name: str = "groot_client", *, recent: dict | None = None,
                       connecting_warn_s: float = CONNECTING_WARN_S, hardware_id: str | None = None) -> Diagnostic:
    """The client's status dict -> one Diagnostic (see the module docstring for the levels).

    Time in the current state comes from `state_age_s` when the status has it (else
    `StatusHistory` adds it); counter increases come from `recent`.
    """
    recent = recent or {}
    state = str(status.get("state", "UNKNOWN"))
    running = state in ("ACTIVE", "CONNECTING")
    problems, level = [], OK
    if state == "ERROR":
        level = ERROR
        problems.append(f"ERROR: {status.get('last_error') or 'too many failures'}; publish true on ~/activate "
                        "to retry")
    elif state == "E_STOP":
        level = WARN
        problems.append("E_STOP latched; publish false on ~/estop to release")
    elif state == "CONNECTING" and _num(status, "state_age_s") > connecting_warn_s:
        level = WARN
        problems.append(f"CONNECTING for {_num(status, 'state_age_s'):.0f} s: is the server at "
                        f"{status.get('server_address', '?')} running?")
    elif state not in ("ACTIVE", "IDLE", "CONNECTING"):
        level = WARN
        problems.append(f"unknown state {state}")

    def warn(message: str) -> None:
        nonlocal level
        level = max(level, WARN)
        problems.append(message)

    missing = _names(status.get("missing_joints"))
    if missing:
        warn(f"joints missing from the robot's state: {', '.join(missing)}")
    invalid = _names(status.get("invalid_joints"))
    if invalid:
        warn(f"invalid joint values: {', '.join(invalid)}")
    stale = _names(status.get("stale_inputs"))
    if stale and state != "IDLE":
        warn(f"stale inputs: {', '.join(stale)}")
    too_slow = bool(status.get("policy_too_slow")) or status.get("latency_budget") == "too_slow"
    if too_slow:
        detail = status["policy_too_slow"] if isinstance(status.get("policy_too_slow"), str) else \
            (f"expected latency {_num(status, 'expected_latency_ms'):.0f} ms, chunk duration "
             f"{_num(status, 'chunk_duration_ms'):.0f} ms")
        warn(f"policy too slow for the action horizon ({detail})")
    if running and int(_num(status, "consecutive_failures")):
        warn(f"{int(_num(status, 'consecutive_failures'))} consecutive request failures: "
             f"{status.get('last_error') or ''}".rstrip(": "))
    if state == "ACTIVE" and int(recent.get("holds_published", 0)):
        warn(f"{int(recent['holds_published'])} hold(s) while ACTIVE "
             + ("(between chunks: the policy runs synchronously)" if too_slow else "(queue ran dry or watchdog)"))
    if int(recent.get("safety_rejected_nonfinite", 0)):
        warn(f"{int(recent['safety_rejected_nonfinite'])} non-finite command(s) rejected")
    if running and int(recent.get("chunks_rejected", 0)):
        warn(f"{int(recent['chunks_rejected'])} chunk(s) rejected (beyond joint limits)")
    _stop_path_problems(status, recent, running, warn)
    if problems:
        message = "; ".join(problems)
    elif state == "ACTIVE":
        message = (f"ACTIVE, round trip p50 {_num(status, 'round_trip_p50_ms'):.1f} ms, "
                   f"queue {_num(status, 'queue_depth_steps'):.1f} steps")
    else:
        message = state
    extra = [("level", LEVEL_NAMES[level]), *((f"recent_{k}", _text(v)) for k, v in recent.items())]
    return _diagnostic(level, node_name, message, hardware_id or str(status.get("server_address", "")),
                       status, extra)


def _stop_path_problems(status: dict, recent: dict, running: bool, warn) -> None:
    """The deadman, the command thread's deadlines and its priority."""
    topic = status.get("deadman_topic") or "the deadman topic"
    if running and status.get("deadman_holding"):
        age = status.get("deadman_age_ms")
        since = "no heartbeat yet" if age is None else f"last heartbeat {_num(status, 'deadman_age_ms'):.0f} ms ago"
        warn(f"deadman: holding, {since} on {topic}; motion resumes when heartbeats return")
    error = str(status.get("activation_error") or "")
    if not running and "(deadman)" in error:
        warn(error)
    if running and int(recent.get("command_deadlines_missed", 0)):
        thread = str(status.get("command_thread", ""))
        refused = f" at {thread}" if "refused" in thread else ""
        warn(f"{int(recent['command_deadlines_missed'])} command deadline(s) missed: the 100 Hz thread was "
             f"starved{refused} (docs/robot-jetson.md, real-time priority)")


class StatusHistory:
    """Remembers successive statuses of one node: counter increases over a window, time in state.

    Call it once per status (1 Hz); it returns the `recent` dict for the builders and adds
    `state_age_s` to the status when the node does not report it.
    """

    def __init__(self, counters, window_s: float = RECENT_WINDOW_S, clock=time.monotonic):
        self.counters = tuple(counters)
        self.window_s = window_s
        self.clock = clock
        self._samples: list[tuple[float, dict]] = []
        self._state: str | None = None
        self._state_since = 0.0

    def update(self, status: dict) -> tuple[dict, dict]:
        now = self.clock()
        totals = {k: _num(status, k) for k in self.counters if k in status}
        self._samples.append((now, totals))
        while len(self._samples) > 1 and now - self._samples[0][0] > self.window_s:
            self._samples.pop(0)
        oldest = self._samples[0][1]
        recent = {k: int(v - oldest.get(k, v)) for k, v in totals.items() if v - oldest.get(k, v) > 0}
        state = status.get("state")
        if state != self._state:
            self._state, self._state_since = state, now
        if state is not None and "state_age_s" not in status:
            status = {**status, "state_age_s": round(now - self._state_since, 1)}
        return status, recent


class _NodeDiagnostics:
    """Stateful wrapper for a node's timer: status dict -> Diagnostic, with the counter increases
    over the recent window and the time in the current state (`StatusHistory`)."""

    build = staticmethod(server_diagnostics)  # subclasses pick the builder and its counters
    counters: tuple[str, ...] = ()

    def __init__(self, node_name: str, **kwargs):
        self.node_name, self.kwargs = node_name, kwargs
        self.history = StatusHistory(self.counters)

    def __call__(self, status: dict) -> Diagnostic:
        status, recent = self.history.update(status)
        return self.build(status, self.node_name, recent=recent, **self.kwargs)


class ServerDiagnostics(_NodeDiagnostics):
    build = staticmethod(server_diagnostics)
    counters = SERVER_COUNTERS


class ClientDiagnostics(_NodeDiagnostics):
    build = staticmethod(client_diagnostics)
    counters = CLIENT_COUNTERS


def to_diagnostic_array(diagnostics, stamp=None):
    """Diagnostic(s) -> `diagnostic_msgs/DiagnosticArray` (stamp: a builtin_interfaces Time)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    if isinstance(diagnostics, Diagnostic):
        diagnostics = [diagnostics]
    array = DiagnosticArray()
    if stamp is not None:
        array.header.stamp = stamp
    for d in diagnostics:
        array.status.append(DiagnosticStatus(
            level=bytes([d.level]), name=d.name, message=d.message, hardware_id=d.hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in d.values]))
    return array


def attach_diagnostics(node, status_fn, builder, period_s: float = 1.0, topic: str = "/diagnostics",
                       on_publish=None):
    """Publish `builder(status_fn())` on `/diagnostics` every `period_s` (returns the publisher).

    `builder` is a `ServerDiagnostics`/`ClientDiagnostics` (or any status -> Diagnostic);
    `on_publish(topic_name, msg)`, when given, sees every array published (the client records them).
    """
    from diagnostic_msgs.msg import DiagnosticArray

    publisher = node.create_publisher(DiagnosticArray, topic, 10)

    def publish():
        msg = to_diagnostic_array(builder(status_fn()), node.get_clock().now().to_msg())
        publisher.publish(msg)
        if on_publish is not None:
            on_publish(publisher.topic_name, msg)

    node.create_timer(period_s, publish)
    return publisher
