"""The client's status, typed: what `~/status` publishes as JSON and `/diagnostics` reads.

`ClientStatus.to_dict()` keeps the key names and order of the JSON documented in
docs/topics.md; tools and tests read them by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

NOT_RECORDING = {"recording": False, "path": "", "written": 0, "dropped": 0, "bytes": 0, "files": 0,
                 "last_error": ""}


@dataclass(frozen=True)
class ClientStatus:
    state: str
    task: str
    server_address: str
    server_protocol: str
    output_mode: str
    requests_ok: int
    requests_failed: int
    requests_late: int
    round_trip_p50_ms: float
    round_trip_p95_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    expected_latency_ms: float
    request_timeout_ms: float
    latency_budget: str
    chunk_duration_ms: float
    plan_time_s: float
    pings_ok: int
    policy_too_slow: str | bool  # the explanation when the policy is slower than its chunk, else False
    server_inference_ms: float
    chunks_received: int
    chunks_rejected: int
    steps_skipped_last_chunk: int
    queue_depth_steps: float
    stale_observations_skipped: int
    stale_inputs: list
    missing_joints: list
    invalid_joints: list
    stale_joints: list
    unknown_joint_names: list
    consecutive_failures: int
    last_error: str
    activation_error: str
    commands_published: int
    holds_published: int
    hold_commands: int
    last_hold_reason: str
    command_period_p50_ms: float
    command_period_p99_ms: float
    safety_rejected_nonfinite: int
    safety_limited_ticks: int
    safety_waiting_for_state: int
    stages_ms: dict
    recording: dict = field(default_factory=lambda: dict(NOT_RECORDING))
    # the command thread and the stop path
    command_thread: str = "not started"
    command_deadlines_missed: int = 0
    stop_requests: int = 0
    last_stop: str = ""
    last_stop_handled_ms: float = 0.0
    # the deadman (docs/safety.md)
    deadman_topic: str = ""
    deadman_state: str = "off"
    deadman_age_ms: float | None = None
    deadman_holding: bool = False
    # how old camera frames are when the inference thread reads them (0 until measured)
    frame_age_p50_ms: float = 0.0
    frame_age_p99_ms: float = 0.0
    frame_delay_p50_ms: float = 0.0  # ... and when their callback stored them (transport, the callback's wait)
    frame_delay_p99_ms: float = 0.0
    # real-time chunking: server capability, replanning, replans, splices, crossfades (docs/latency.md)
    rtc: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def budget_text(budget: str, expected_ms: float, margin_ms: float, chunk_ms: float) -> str:
    """The latency budget in words ('' when it is ok)."""
    if budget == "too_slow":
        return (f"policy slower than its chunk: expected latency {expected_ms:.0f} ms + margin "
                f"{margin_ms:.0f} ms >= chunk duration {chunk_ms:.0f} ms; running "
                f"synchronously: each chunk plays in full, then the robot holds about "
                f"{max(0.0, expected_ms - margin_ms):.0f} ms while the next is computed")
    if budget == "seams_hold":
        return (f"latency {expected_ms:.0f} ms >= half the chunk duration ({chunk_ms / 2:.0f} ms of {chunk_ms:.0f} "
                "ms): with one request in flight the queue runs dry at some seams, where the robot holds")
    return ""
