"""The client's ROS-free core: activation, stops, clock jumps, the deadman and the status.

`ClientCore` owns the pipeline (measured state, latest inputs, scheduler, the one
`MotionGate`, refill policy, inference worker) and the 100 Hz `CommandLoop`, and carries
every transition: activation and deactivation, e-stop and release, inference failures,
clock jumps, the deadman's hold and resume. Its methods return the answers the node's
services give, `(success, message)`. The node (nodes/groot_client.py) only wires topics,
services and timers to it and turns the gate's commands into messages.

The stop path is short. A stop request (e-stop, deactivation) first raises a flag that
the command tick reads before anything else (a tick that sees it sends no policy step,
only a hold), then moves the state machine and stops the gate under the transitions lock,
which only short transitions take: nothing slow (status, recording, logging of the data
path, sensor callbacks) ever holds a lock the stop path needs. The gate is disarmed by the
stop, so a policy step the tick computed just before it can no longer pass, and a chunk
queued or in flight at that moment is dropped (the worker queues only for the current,
running activation).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Callable

from alfie_gr00t.client.command_loop import CommandLoop
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.deadman import Deadman
from alfie_gr00t.client.inputs import LatestInputs
from alfie_gr00t.client.latency import RefillPolicy
from alfie_gr00t.client.normalization import Normalizer
from alfie_gr00t.client.robot_state import MeasuredState, describe_problems, required_dims
from alfie_gr00t.client.safety import ActivationRefused, Command, MotionGate
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig
from alfie_gr00t.client.state_machine import ClientState, ClientStateMachine
from alfie_gr00t.client.status import NOT_RECORDING, ClientStatus, budget_text
from alfie_gr00t.client.worker import InferenceWorker
from alfie_gr00t.stats import RollingStats

_RUNNING = (ClientState.CONNECTING, ClientState.ACTIVE)


class ClientCore:
    """The client without ROS. `output` receives every command the gate decides (the node publishes
    it); `clock` is the plan clock (the node's ROS clock, sim time included); `wall_clock` paces the
    command loop and ages heartbeats; `log(level, message)` with level info, warning (repeated,
    may be throttled), warning_now (once per event) or error."""

    def __init__(self, config: ClientConfig, output: Callable[[Command], None], clock=time.monotonic,
                 wall_clock=time.monotonic, log: Callable[[str, str], None] | None = None, frame_decoder=None):
        cfg = self.config = config
        self._clock, self._wall = clock, wall_clock
        self._log = log or (lambda level, message: None)
        self._frame_decoder = frame_decoder
        self.machine = ClientStateMachine(on_change=self._log_transition)
        self.measured = MeasuredState(cfg.joint_names, required_dims(cfg.state_msg_type), clock=clock)
        self.inputs = LatestInputs(cfg.camera_names, self.measured, cfg.task_description, clock=clock)
        self.scheduler = ActionScheduler(SchedulerConfig(
            action_step_hz=cfg.action_step_hz, action_horizon=cfg.action_horizon, crossfade_steps=cfg.crossfade_steps,
            ema_alpha=cfg.ema_alpha, watchdog_timeout_s=cfg.watchdog_timeout_s, action_dim=cfg.action_dim),
            clock=clock)
        self.gate = MotionGate(cfg.motion_limits(), self.measured, cfg.max_observation_age_ms / 1000.0,
                               output=output, clock=clock)
        self.refill = RefillPolicy(cfg.refill_config())
        self.deadman = Deadman(cfg.deadman_topic, cfg.deadman_timeout_ms / 1000.0, clock=wall_clock)
        self.loop = CommandLoop(1.0 / cfg.command_rate_hz, self.tick, cfg.command_thread_priority, log=self._log,
                                clock=wall_clock)
        self.worker: InferenceWorker | None = None
        self._closed = False
        self.command_period_ms = RollingStats(window=2000)
        self.activation_error = ""
        self.on_activated: Callable[[int], None] | None = None  # a user activation began (its epoch)
        self.on_tick: Callable | None = None  # (target, command) after every tick's gate step
        # Transitions that arm or disarm the gate come from the stop path, the command tick (deadman),
        # the inference thread (failures) and the clock: one at a time, so a late failure cannot disarm
        # a newer activation. Only short transitions take it.
        self._transitions = threading.RLock()
        self._pending_stops = 0  # stops on their way: the tick reads this first
        self._pending_estops = 0  # of which e-stops (the tick stops hard, not softly)
        self._pending_lock = threading.Lock()  # guards that counter only, never held for anything else
        self._deadman_holding = False
        self._tick_thread: int | None = None
        self._last_tick: float | None = None
        self._budget_warned = "ok"
        self._resume_refusal = ""
        self.stop_requests = 0
        self.last_stop = ""
        self.last_stop_handled_ms = 0.0

    # -- life cycle --------------------------------------------------------------------------
    def start(self, threads: bool = True) -> "ClientCore":
        """Build the inference worker; with `threads`, start it and the command loop (tests drive
        `worker.step()` and `tick()` by hand without them)."""
        cfg = self.config
        normalizer = Normalizer.from_stats_file(cfg.stats_file, cfg.action_dim) if cfg.stats_file \
            else Normalizer.identity(cfg.action_dim)
        self.worker = InferenceWorker(cfg, self.inputs, self.scheduler, self.machine, normalizer, self.refill,
                                      on_error=self.on_inference_error, clock=self._clock,
                                      frame_decoder=self._frame_decoder, log=self._log)
        if threads:
            self.start_threads()
        return self

    def start_threads(self) -> None:
        """The inference thread and the command loop."""
        self.worker.start()
        self.loop.start()

    def close(self, publish_stop: bool = True) -> str:
        """Shutdown: the loop ends, a stop (zero base velocity at once) when something was commanded and
        `publish_stop`, then the worker. Returns the worker's profile table ('' when nothing ran)."""
        if self._closed or self.worker is None:
            return ""
        self._closed = True
        self.loop.stop()
        if publish_stop and self.gate.engaged:
            self.gate.stop("shutdown")
        self.worker.stop()
        return self.worker.stages.format_table() if self.worker.stages.summary() else ""

    def now(self) -> float:
        return self._clock()

    # -- activation ----------------------------------------------------------------------------
    def activate(self, on: bool) -> tuple[bool, str]:
        """activate:true/false (topic or ~/set_active): (success, what happened)."""
        if not on:
            with self._stopping(estop=False), self._transitions:
                before = self.machine.state
                if self.machine.activate(False) or self.gate.armed:
                    self.gate.hold("activate:false")
                    self.scheduler.reset()
                self._deadman_holding = False
                outcome = activation_outcome(False, before, self.machine.state)
            return self._stopped("activate:false", outcome)
        with self._transitions:
            before = self.machine.state
            if before in (ClientState.IDLE, ClientState.ERROR):
                refused = self._arm()
                if refused is not None:
                    return refused
            self.machine.activate(True)
            after, epoch = self.machine.state, self.machine.epoch
        if before not in _RUNNING and after is ClientState.CONNECTING and self.on_activated is not None:
            self.on_activated(epoch)
        return activation_outcome(True, before, after)

    def _arm(self) -> tuple[bool, str] | None:
        """Arm the gate for a new activation, or the refusal to answer (transitions lock held)."""
        if not self.deadman.fresh():
            why = self.deadman.describe()
            self.activation_error = f"activation refused: {why}"
            self._log("error", self.activation_error)
            return False, f"refused: {why}; publish heartbeats first"
        try:
            self.gate.arm()
        except ActivationRefused as exc:
            self.activation_error = str(exc)
            if self.worker is not None:
                self.worker.last_error = str(exc)
            self._log("error", str(exc))
            self.machine.refuse("activation refused")
            return False, f"refused: robot state not usable: {describe_problems(exc.problems)}"
        self.activation_error = ""
        self._deadman_holding = False
        self.scheduler.reset()
        if self.worker is not None:
            self.worker.reset_failures()
        return None

    # -- the stop path ---------------------------------------------------------------------------
    def estop(self, on: bool) -> tuple[bool, str]:
        """estop:true/false (topic, ~/stop or ~/estop): (success, what happened)."""
        if not on:
            with self._transitions:
                before = self.machine.state
                self.machine.estop(False)
                after = self.machine.state
            if before is ClientState.E_STOP:
                return True, f"E_STOP released: {after.value}; activate again to move"
            return True, f"not in E_STOP ({before.value}): nothing to release"
        with self._stopping(estop=True), self._transitions:
            before = self.machine.state
            if self.machine.estop(True):
                self.gate.stop("estop")  # first: disarmed, no policy step passes any more
                self.scheduler.reset()
            self._deadman_holding = False
        if before is ClientState.E_STOP:
            return True, "already in E_STOP"
        return self._stopped("estop", (True, f"E_STOP latched (was {before.value}): zero base velocity "
                                             "published; release with ~/estop false"))

    @contextlib.contextmanager
    def _stopping(self, estop: bool):
        """Raise the stop flag for the duration of a stop request (the tick reads it first)."""
        started = self._wall()
        with self._pending_lock:
            self._pending_stops += 1
            self._pending_estops += estop
            self.stop_requests += 1
        try:
            yield
        finally:
            self.last_stop_handled_ms = round((self._wall() - started) * 1000.0, 3)
            with self._pending_lock:
                self._pending_stops -= 1
                self._pending_estops -= estop

    def _stopped(self, what: str, outcome: tuple[bool, str]) -> tuple[bool, str]:
        self.last_stop = f"{what}: {outcome[1]}"
        return outcome

    @property
    def stop_pending(self) -> bool:
        return self._pending_stops > 0

    # -- events from other threads ---------------------------------------------------------------
    def on_inference_error(self, left: ClientState, message: str, epoch: int) -> None:
        """From the inference thread, after it moved the client to ERROR for activation `epoch`."""
        with self._transitions:
            if self._closed or self.worker is None or self.machine.epoch != epoch:
                return  # shutting down, or a newer activation owns the gate now
            self.worker.last_error = message[:500]
            if left is ClientState.ACTIVE:
                self.scheduler.reset()
            self.gate.hold("inference failures")

    def clock_jumped(self, cause: str) -> None:
        """The plan clock went back or changed its source: the queued steps, the measured stamps and
        the latency figures belong to another time line. Stop policy motion softly; a fresh
        activation is needed."""
        self._log("warning_now", f"{cause}: holding; publish true on ~/activate to resume")
        with self._transitions:
            if self.machine.wants_inference and self.worker is not None:
                self.worker.last_error = cause  # before the state moves: whoever sees ERROR sees why
            self.machine.fail(None, cause)
            self.scheduler.reset()
            if self.gate.engaged:
                self.gate.hold(cause)

    def heartbeat(self) -> None:
        """One message on the deadman topic (any thread; one assignment)."""
        self.deadman.beat()

    # -- the 100 Hz tick ---------------------------------------------------------------------------
    def tick(self) -> None:
        """One command: a stop on its way first, then the deadman, then the scheduler's step through
        the gate."""
        now = self._wall()
        if self._last_tick is not None:
            self.command_period_ms.add((now - self._last_tick) * 1000.0)
        self._last_tick = now
        self._tick_thread = threading.get_ident()
        try:
            target, command = self._decide()
        finally:
            self._tick_thread = None
        hook = self.on_tick
        if hook is not None:
            hook(target, command)

    def _decide(self):
        if self._pending_stops:  # a stop is on its way: it starts now, never a policy step
            return None, self._stop_on_its_way()
        held = self._watch_deadman()
        if held is not None:  # the deadman's hold began this tick: its first command is this tick's
            return None, held
        active = self.machine.state is ClientState.ACTIVE and not self._deadman_holding
        target = self.scheduler.command() if active else None
        return target, self.gate.step(target)

    def _stop_on_its_way(self) -> Command | None:
        """The tick's part of a stop request that has not reached the gate yet: an e-stop's hard stop or
        a deactivation's hold (the request re-targets it when it arrives)."""
        if self._pending_estops and self.gate.engaged:
            return self.gate.stop("estop")
        if self.gate.armed:  # the one soft stop is a deactivation
            return self.gate.hold("activate:false")
        return self.gate.step(None)

    def in_tick(self) -> bool:
        """True on the thread inside the tick's gate step (its commands are reported by `on_tick`)."""
        return self._tick_thread == threading.get_ident()

    def plan_trajectory(self) -> None:
        """Trajectory outputs: the rest of the schedule, limited and emitted by the gate (while ACTIVE)."""
        if self.machine.state is not ClientState.ACTIVE or self._deadman_holding or self._pending_stops:
            return
        dt = 1.0 / self.config.action_step_hz
        now = self._clock()
        steps = int(math.ceil(self.scheduler.remaining_steps(now)))
        planned = self.scheduler.preview([now + (k + 1) * dt for k in range(steps)])
        if planned is not None:
            self.gate.plan(planned, dt)

    # -- the deadman -------------------------------------------------------------------------------
    def _watch_deadman(self) -> Command | None:
        """Hold on silence, resume when heartbeats return; the hold's first command when it began now."""
        if not self.deadman.enabled:
            return None
        if not self.machine.wants_inference:
            self._deadman_holding = False
            return None
        fresh = self.deadman.fresh()
        if not fresh and not self._deadman_holding:
            return self._deadman_hold()
        if fresh and self._deadman_holding:
            self._deadman_resume()
        return None

    def _deadman_hold(self) -> Command | None:
        why = self.deadman.describe()
        with self._transitions:
            if not self.machine.wants_inference or self._deadman_holding:
                return None
            self._deadman_holding = True
            command = self.gate.hold("deadman: no heartbeat")
            self.scheduler.reset()
        self._log("warning_now", f"{why}: holding; motion resumes with a fresh chunk once heartbeats return")
        return command

    def _deadman_resume(self) -> None:
        with self._transitions:
            if not self._deadman_holding or not self.machine.wants_inference:
                return
            try:
                self.gate.arm()
            except ActivationRefused as exc:  # still holding; retried at the next tick
                if str(exc) != self._resume_refusal:
                    self._resume_refusal = str(exc)
                    self._log("warning_now", f"heartbeats back, but {exc}; still holding")
                return
            self._resume_refusal = ""
            self._deadman_holding = False
            self.scheduler.reset()
            if self.worker is not None:
                self.worker.reset_failures()
            self.machine.restart("deadman: heartbeats back")

    # -- recording and warnings ------------------------------------------------------------------
    def session_should_end(self) -> bool:
        """An activation's recording ends once it is over and the gate is silent (the hold published)."""
        return not self.machine.wants_inference and not self.gate.engaged

    def check_budget(self) -> None:
        """Warn once each time the latency budget changes for the worse (call it at the status rate)."""
        budget = self.refill.budget()
        if budget != self._budget_warned:
            self._budget_warned = budget
            if budget != "ok":
                self._log("warning_now", self._budget_text(budget))

    def _budget_text(self, budget: str) -> str:
        return budget_text(budget, self.refill.expected_latency_s() * 1000.0, self.config.latency_margin_ms,
                           self.scheduler.chunk_duration_s * 1000.0)

    def _log_transition(self, old: ClientState, new: ClientState, cause: str) -> None:
        self._log("error" if new is ClientState.ERROR else "info", f"{old.value} -> {new.value} ({cause})")

    # -- status ------------------------------------------------------------------------------------
    def status(self, recording: dict | None = None) -> ClientStatus:
        w, gate, cfg = self.worker, self.gate, self.config
        if w is None:
            raise RuntimeError("status() before start()")
        rtt, latency = w.round_trip_ms.snapshot(), w.latency_ms.snapshot()
        period = self.command_period_ms.snapshot()
        problems = self.measured.reading().problems(self._clock(), cfg.max_observation_age_ms / 1000.0)
        budget = self.refill.budget()
        frame_age, frame_delay = self.inputs.frame_age_ms.snapshot(), self.inputs.frame_delay_ms.snapshot()
        heartbeat_age = self.deadman.age_s()
        return ClientStatus(
            state=self.machine.state.value, task=self.inputs.task, server_address=cfg.address,
            server_protocol=cfg.server_protocol, output_mode=cfg.output_mode,
            requests_ok=w.requests_ok, requests_failed=w.requests_failed, requests_late=w.requests_late,
            round_trip_p50_ms=rtt["p50"], round_trip_p95_ms=rtt["p95"],
            latency_p50_ms=latency["p50"], latency_p95_ms=latency["p95"],
            expected_latency_ms=round(self.refill.expected_latency_s() * 1000.0, 1),
            request_timeout_ms=round(self.refill.timeout_ms(), 1), latency_budget=budget,
            chunk_duration_ms=round(self.scheduler.chunk_duration_s * 1000.0, 1),
            plan_time_s=round(self.scheduler.plan_time(), 3), pings_ok=w.pings_ok,
            policy_too_slow=self._budget_text(budget) if budget == "too_slow" else False,
            server_inference_ms=round(w.server_inference_ms.last, 3),
            chunks_received=self.scheduler.chunks_received, chunks_rejected=w.chunks_rejected,
            steps_skipped_last_chunk=w.last_steps_skipped,
            queue_depth_steps=round(self.scheduler.remaining_steps(), 2),
            stale_observations_skipped=w.stale_skipped, stale_inputs=list(w.stale_inputs),
            missing_joints=problems.get("missing", []), invalid_joints=problems.get("invalid", []),
            stale_joints=problems.get("stale", []), unknown_joint_names=sorted(self.measured.unknown_names)[:21],
            consecutive_failures=w.consecutive_failures, last_error=w.last_error,
            activation_error=self.activation_error,
            commands_published=gate.policy_commands, holds_published=gate.holds_started,
            hold_commands=gate.hold_commands, last_hold_reason=gate.last_hold_reason,
            command_period_p50_ms=period["p50"], command_period_p99_ms=period["p99"],
            safety_rejected_nonfinite=gate.rejected_nonfinite, safety_limited_ticks=gate.limited_ticks,
            safety_waiting_for_state=gate.waiting_for_state, stages_ms=w.stages.summary(),
            recording=dict(recording if recording is not None else NOT_RECORDING),
            command_thread=self.loop.scheduling, command_deadlines_missed=self.loop.deadlines_missed,
            stop_requests=self.stop_requests, last_stop=self.last_stop,
            last_stop_handled_ms=self.last_stop_handled_ms,
            deadman_topic=self.deadman.topic, deadman_state=self.deadman.state(),
            deadman_age_ms=None if heartbeat_age is None else round(heartbeat_age * 1000.0, 1),
            deadman_holding=self._deadman_holding,
            frame_age_p50_ms=frame_age["p50"], frame_age_p99_ms=frame_age["p99"],
            frame_delay_p50_ms=frame_delay["p50"], frame_delay_p99_ms=frame_delay["p99"],
            rtc=w.rtc_status())


def activation_outcome(on: bool, before: ClientState, after: ClientState) -> tuple[bool, str]:
    """What an activate:true/false did, from the states before and after it (refusals are answered
    where they happen)."""
    if on:
        if before is ClientState.E_STOP:
            return False, "refused: in E_STOP (latched); release it first with ~/estop false"
        if before in _RUNNING:
            return True, f"already active ({before.value})"
        if after in _RUNNING:
            return True, f"activated: {after.value}, policy motion starts with the first chunk"
        return False, f"refused: state {after.value}"
    if before is ClientState.E_STOP:
        return True, "not active: E_STOP stays latched; release it with ~/estop false"
    if before is ClientState.IDLE:
        return True, "already IDLE"
    held = "; holding where the robot is" if before in _RUNNING else ""
    return True, f"deactivated: {after.value} (was {before.value}){held}"


def clock_jump_cause(source_changed: bool, delta_s: float) -> str | None:
    """Why a clock jump stops the robot, or None when it does not (a jump forward)."""
    if source_changed:
        return "the ROS time source changed"
    if delta_s < 0:
        return f"the ROS clock jumped back {-delta_s:.3f} s"
    return None
