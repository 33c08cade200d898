"""The client's inference path on a fake clock, against a real server over real ZeroMQ.

A real `InferenceWorker`, `ActionScheduler` and `RefillPolicy` (and the node's own inputs, state and
state machine objects) run on a clock the test advances in 10 ms ticks; the worker's thread is not
started: the loop asks it the question its thread asks (`_due`) and calls `step()`. The server is a
real `PolicyService` on a `BackgroundServer` thread, reached over IPC; its real latency does not
count, the latency the test chooses does: the link's exchange advances the fake clock by it, ticking
the scheduler meanwhile, so every command the robot would have got is recorded, on the plan clock the
scheduler really keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.inputs import LatestInputs
from alfie_gr00t.client.latency import RefillPolicy
from alfie_gr00t.client.normalization import Normalizer
from alfie_gr00t.client.robot_state import MeasuredState, required_dims
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig
from alfie_gr00t.client.state_machine import ClientStateMachine
from alfie_gr00t.client.worker import InferenceWorker
from alfie_gr00t.wire import images

from support.frames import make_frame

TICK = 0.01


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Request:
    sent: float  # fake clock
    plan: float  # plan time when it left
    prefix_rows: int  # 0: no prefix
    frozen_steps: int
    splices_before: int


@dataclass
class SimRecord:
    commands: list = field(default_factory=list)  # (t, command or None)
    requests: list = field(default_factory=list)  # Request
    arrivals: list = field(default_factory=list)  # (t, old schedule at t + TICK before the chunk, splice?)


class ClientSim:
    """One activation of the client's inference path; `run(seconds)` ticks it."""

    def __init__(self, address_config: ClientConfig, latency_s: float, jitter_s: float = 0.0, seed: int = 0):
        cfg = address_config
        self.clock = FakeClock()
        self.config = cfg
        self.latency_s, self.jitter_s = latency_s, jitter_s
        self._rng = np.random.default_rng(seed)
        self.measured = MeasuredState(cfg.joint_names, required_dims(cfg.state_msg_type, cfg.action_dim), self.clock)
        self.inputs = LatestInputs(cfg.camera_names, self.measured, cfg.task_description, self.clock)
        jpeg = images.encode_jpeg(make_frame(cfg.image_width, cfg.image_height), 90)
        self._frame = SimpleNamespace(format="jpeg", data=jpeg)  # a CompressedImage at the model size
        self.scheduler = ActionScheduler(SchedulerConfig(
            action_step_hz=cfg.action_step_hz, action_horizon=cfg.action_horizon,
            crossfade_steps=cfg.crossfade_steps, watchdog_timeout_s=cfg.watchdog_timeout_s), clock=self.clock)
        self.refill = RefillPolicy(cfg.refill_config())
        self.machine = ClientStateMachine()
        self.worker = InferenceWorker(cfg, self.inputs, self.scheduler, self.machine, Normalizer.identity(cfg.action_dim),
                                      self.refill, clock=self.clock)
        self.record = SimRecord()
        self._wrap_link()
        self._wrap_scheduler()
        self._feed()

    def _feed(self) -> None:
        """The robot's inputs, fresh at the fake clock's now (its measured joints: a still posture)."""
        self.measured.update({i: 0.0 for i in range(self.config.action_dim)})
        for name in self.config.camera_names:
            self.inputs.store_frame(name, self._frame)

    def _tick(self) -> None:
        self.clock.t = round(self.clock.t + TICK, 9)
        self._feed()
        self.record.commands.append((self.clock.t, self.scheduler.command()))

    def _wrap_link(self) -> None:
        link = self.worker._link
        exchange = link.exchange

        def slow_exchange(snap, state, timer, prefix, timeout_ms):
            now = self.clock()
            self.record.requests.append(Request(now, self.scheduler.plan_time(now),
                                                0 if prefix is None else len(prefix.actions),
                                                0 if prefix is None else int(prefix.delay_steps),
                                                self.scheduler.splices))
            reply = exchange(snap, state, timer, prefix, timeout_ms)
            jitter = self._rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0
            for _ in range(max(0, int(round((self.latency_s + jitter) / TICK)))):
                self._tick()
            return reply

        link.exchange = slow_exchange

    def _wrap_scheduler(self) -> None:
        scheduler = self.scheduler
        add = scheduler.add_chunk

        def recorded_add(actions, observation_time, frozen_steps=0):
            after = self.clock() + TICK
            before = scheduler.preview([after])
            splices = scheduler.splices
            dropped = add(actions, observation_time, frozen_steps)
            old = None if before is None or len(before) == 0 else before[0]
            self.record.arrivals.append((after, old, scheduler.splices > splices))
            return dropped

        scheduler.add_chunk = recorded_add

    def run(self, seconds: float) -> "ClientSim":
        """Activate, then tick for `seconds` of fake time, sending a request whenever the worker's thread would."""
        self.machine.activate(True)
        period = 1.0 / self.config.target_fps
        next_allowed = -math.inf
        end = self.clock() + seconds
        while self.clock() < end:
            now = self.clock()
            if self.machine.wants_inference and now >= next_allowed and self.worker._due(now):
                next_allowed = now + period
                self.worker.step()
            self._tick()
        return self

    def close(self) -> None:
        self.worker._client.close()
        self.worker._codec.close()
