"""Compare real-time-chunking schedules on the trained policy double (the evidence behind docs/rtc.md).

    python -m alfie_gr00t.tools.rtc_schedules [--trials 40] [--train-steps 400] [--json]

The double (tools/policy_double.py, trained by flow matching on chunks that move at a constant
rate per joint) gets requests whose prefix is a chunk it produced itself, shifted by `shift`
executed steps, as a replanning client sends it. Each schedule runs the same requests with the
same noise through the production engine (eager DiT):

* `ours` (engines/rtc.py): frozen rows land exactly on the prefix, the prefix's weight falls
  from 1 to 0 over the rest of it along a raised cosine;
* `paper`, `linear`: the same velocity blend with the RTC paper's soft mask (c (e^c - 1)/(e - 1)),
  or a straight line, as the weights;
* `hard`: weight 1 over the whole prefix (all of it frozen);
* `n17`: Isaac-GR00T N1.7's action-head RTC: the prefix rows start from the prefix instead of
  noise, the frozen rows get zero velocity, the rest of the prefix an exponential ramp of
  velocity strength (`rtc_ramp_rate` 6, upstream's value);
* `off`: no prefix (today's replanning without inpainting).

Rows (robot units, rad; the arm and head joints): frozen error (max |reply - prefix| over the
frozen steps), seam excess (what the robot executes, the frozen steps of the chunk playing then
the reply: its jump at the splice minus the motion's own step there), kink (the largest second
difference of that executed sequence from the splice to past the prefix end), and continuation
error (max |reply - the motion the prefix came from| from the splice on).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import numpy as np

from alfie_gr00t.engines import rtc

SCHEDULES = ("ours", "paper", "linear", "hard", "n17", "off")
N17_RAMP_RATE = 6.0


def _linear(delay, overlap, horizon, ramp_rate=None):
    """1 on the frozen rows, then straight down to 0 at the end of the prefix."""
    weights = np.zeros(horizon)
    weights[:delay] = 1.0
    for i in range(delay, min(overlap, horizon)):
        weights[i] = (overlap - i) / (overlap - delay + 1)
    return weights


def _paper(delay, overlap, horizon, ramp_rate=None):
    """The RTC paper's soft mask: c (e^c - 1) / (e - 1), c = (k - i) / (k - d + 1)."""
    weights = np.zeros(horizon)
    weights[:delay] = 1.0
    for i in range(delay, min(overlap, horizon)):
        c = (overlap - i) / (overlap - delay + 1)
        weights[i] = c * math.expm1(c) / math.expm1(1.0)
    return weights


WEIGHTS = {"linear": _linear, "paper": _paper}


class N17Plan(rtc.Plan):
    """Isaac-GR00T N1.7's schedule on our hook: overlap rows start at the prefix, velocity scaled by
    strength (0 frozen, upstream's exponential ramp over the rest of the overlap, 1 after)."""

    def __init__(self, plan: rtc.Plan, delay: int, overlap: int, ramp_rate: float = N17_RAMP_RATE):
        self.__dict__.update(plan.__dict__)
        horizon = self.target.shape[1]
        strength = np.ones(horizon)
        strength[:delay] = 0.0
        middle = overlap - delay
        if middle > 0:
            t = np.linspace(0.0, 1.0, middle + 2)
            ramp = -np.expm1(-ramp_rate * t)
            strength[delay:overlap] = (ramp / max(ramp[-1], 1e-8))[1:-1]
        self.strength = strength
        self.overlap = overlap

    def see(self, actions, timesteps) -> None:
        if self.step == 0:
            actions[:, :self.overlap] = self.target[:, :self.overlap].to(actions.dtype)
        super().see(actions, timesteps)

    def steer(self, pred):
        pred = pred.float()
        horizon = self.target.shape[1]
        out = pred.clone()
        scale = pred.new_tensor(self.strength, dtype=pred.dtype)[None, :, None]
        out[:, -horizon:] = pred[:, -horizon:] * scale
        self.step += 1
        return out


def _request(engine, torch, batch, prefix, schedule: str, seed: int, ramp_rate: float):
    """One reply (horizon, dim) for `prefix` under `schedule`, noise seeded."""
    from alfie_gr00t.engines.base import ChunkPrefix

    torch.manual_seed(seed)
    if schedule == "off":
        return engine.infer(batch).actions[0]
    actions, delay = prefix
    if schedule == "hard":
        delay = len(actions)
    hinted = dataclasses.replace(batch, prefixes=(ChunkPrefix(actions, delay),))
    inpainter = engine._rtc
    saved_rate, saved_plan, saved_weights = inpainter.ramp_rate, inpainter.plan, rtc.row_weights
    inpainter.ramp_rate = ramp_rate
    rtc.row_weights = WEIGHTS.get(schedule, saved_weights)
    if schedule == "n17":
        def n17_plan(b):
            plan, rows = saved_plan(b)
            return N17Plan(plan, prefix[1], len(actions)), rows
        inpainter.plan = n17_plan
    try:
        return engine.infer(hinted).actions[0]
    finally:
        inpainter.ramp_rate, inpainter.plan, rtc.row_weights = saved_rate, saved_plan, saved_weights


def measure(trials: int = 40, train_steps: int = 400, overlap: int = 8, delay: int = 3, shift: int = 4,
            ramp_rate: float = rtc.DEFAULT_RAMP_RATE, seed: int = 0) -> dict:
    """Per schedule: mean and max of each row over `trials` replans (module doc)."""
    import torch

    from alfie_gr00t.engines.base import dummy_batch
    from alfie_gr00t.tools import policy_double

    engine = policy_double.make_engine(seed=seed, train_steps=train_steps)
    config = engine._config
    batch = dummy_batch(config)
    joints = slice(6, config.action_dim)  # the state-relative keys (arms and head)
    rows = {name: {"frozen_error": [], "seam_excess": [], "kink": [], "continuation_error": []}
            for name in SCHEDULES}
    for trial in range(trials):
        torch.manual_seed(10_000 + trial)
        previous = engine.infer(batch).actions[0]
        # the executing chunk's motion, re-expressed from the new observation (shift steps later): the robot is
        # where the chunk put it, so the new request's state is previous[shift - 1]
        state = previous[shift - 1].copy()
        hinted_batch = dataclasses.replace(batch, state=state[None].astype(np.float32))
        motion = previous[shift:]
        rate = (previous[-1] - previous[0]) / (len(previous) - 1)
        expected = np.concatenate([motion, motion[-1] + rate * np.arange(1, shift + 1)[:, None]])
        prefix = (motion[:overlap].astype(np.float32), delay)
        for name in SCHEDULES:
            reply = _request(engine, torch, hinted_batch, prefix, name, 20_000 + trial, ramp_rate)
            # what the robot executes: the frozen steps of the chunk playing, then the reply
            executed = np.concatenate([expected[:delay], reply[delay:]])[:, joints]
            r, e = reply[:, joints], expected[:, joints]
            own = np.abs(e[delay] - e[delay - 1])
            rows[name]["frozen_error"].append(float(np.abs(r[:delay] - e[:delay]).max()))
            rows[name]["seam_excess"].append(float((np.abs(executed[delay] - executed[delay - 1]) - own).max()))
            second = np.abs(np.diff(executed[max(0, delay - 2):overlap + 3], n=2, axis=0))
            rows[name]["kink"].append(float(second.max()))
            rows[name]["continuation_error"].append(float(np.abs(r[delay:] - e[delay:]).max()))
    summary = {name: {metric: {"mean": float(np.mean(v)), "max": float(np.max(v))} for metric, v in table.items()}
               for name, table in rows.items()}
    return {"trials": trials, "train_steps": train_steps, "overlap": overlap, "delay": delay, "shift": shift,
            "ramp_rate": ramp_rate, "schedules": summary}


def format_table(result: dict) -> str:
    lines = [f"{result['trials']} replans, prefix {result['overlap']} steps, {result['delay']} frozen, "
             f"shift {result['shift']} (rad, mean / max over trials)",
             f"{'schedule':>9} {'frozen error':>17} {'seam excess':>17} {'kink':>17} {'continuation':>17}"]
    for name, row in result["schedules"].items():
        cells = [f"{row[m]['mean']:8.4f}/{row[m]['max']:8.4f}"
                 for m in ("frozen_error", "seam_excess", "kink", "continuation_error")]
        lines.append(f"{name:>9} " + " ".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--ramp-rate", type=float, default=rtc.DEFAULT_RAMP_RATE)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.trials <= 0 or args.train_steps < 0 or not math.isfinite(args.ramp_rate) or args.ramp_rate <= 0:
        parser.error("--trials > 0, --train-steps >= 0 and --ramp-rate > 0")
    result = measure(args.trials, args.train_steps, ramp_rate=args.ramp_rate)
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
