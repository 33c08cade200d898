"""Real-time chunking inside GR00T's denoising loop, on every DiT backend (docs/rtc.md).

A request may carry the steps of the chunk the robot is executing (`ChunkPrefix`: k steps
aligned to the new observation, d = `delay_steps` of them played before the reply lands).
Upstream's own loop (`action_head.get_action`) stays untouched: `RtcHook` wraps the action
encoder, which sees the running (noisy) actions x_n at step n, and the action decoder, which
gives the velocity v_n; upstream then takes `x_{n+1} = x_n + dt * v`. Because the DiT sits
between the two, the same code serves the eager PyTorch DiT, ONNX Runtime and TensorRT.

The schedule (`row_weights`): with the prefix y in the model's action space and t_n = n/N,

    v'_n = v_n + w * ((y - x_n) / (1 - t_n) - v_n)

per action row. `(y - x_n)/(1 - t_n)` is the velocity that lands exactly on y at t = 1 along
the straight path from the noise the row started at (flow matching's own interpolant), so:

* w = 1 on the d frozen rows: they travel noise -> y and come out equal to the prefix (to
  float rounding), while the DiT sees them at every step where the path says they are;
* 0 < w < 1 on rows d..k-1 (the rest of the prefix): a raised cosine, w = (1 - cos(pi c^r)) / 2
  with c = (k - i) / (k - d + 1) and r = `rtc_ramp_rate` (1 by default; larger lets go of the
  prefix sooner). It leaves 1 with zero slope, so the reply has no corner where the frozen
  steps end, and reaches 0 with zero slope at k. At the last step the output is exactly
  w * y + (1 - w) * (the model's own endpoint), so w is the weight of the prefix in the reply.
  Chosen over the RTC paper's soft mask (Black, Galliker, Levine 2025), a linear ramp, a hard
  mask and Isaac-GR00T N1.7's velocity-strength ramp by `tools/rtc_schedules.py` (docs/rtc.md);
* w = 0 from k on: the policy's own.

With a plan active, the Euler update runs in FP32 (the decoder's output is handed back as
FP32, the encoder gets the actions in its weights' dtype), as `dit_swap.accumulate_in_fp32`
does. Without a plan the wrappers pass everything through untouched: RTC off, or a request
without a prefix, gives upstream's output bit for bit.

`ActionSpace` converts the prefix into the model's action space exactly as upstream's
StateActionProcessor converts actions (`apply_action`): state-relative keys minus the
request's state (the key's `state_key`, else its own), then min/max to [-1, 1] with the
statistics upstream computed (`norm_params`: relative statistics for relative keys) or
mean/std for `mean_std_embedding_keys`; never clipped (upstream's `clip_outliers` would
break the continuation), padded with zeros to the model's action width. Upstream's decoding
clips min/max-normalized values to [-1, 1], so a frozen value outside the checkpoint's range
would come back clipped: the engine sets those back to the prefix after decoding
(`restore_clipped`) and the reply counts them (`clipped_values`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from alfie_gr00t.engines.base import EngineError

DEFAULT_RAMP_RATE = 1.0


class RtcUnavailable(Exception):
    """This policy's action space cannot take a prefix (the reason says why)."""


def _name(value) -> str:
    """An upstream enum (ActionRepresentation.RELATIVE) or a plain string, as its upper-case name."""
    return str(getattr(value, "name", value)).split(".")[-1].upper()


@dataclass(frozen=True)
class KeySpace:
    """One action key: its columns in the model's vector, its dims in the robot's vector, how it is
    normalized, and the state dims it is relative to (None: absolute)."""

    name: str
    columns: slice
    dims: slice
    state_dims: slice | None
    mean_std: bool
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    std: np.ndarray


class ActionSpace:
    """The robot's 21-D actions -> the model's normalized action rows (see the module doc)."""

    def __init__(self, keys: tuple[KeySpace, ...], width: int):
        self.keys = keys
        self.width = width

    @classmethod
    def from_policy(cls, policy, config) -> "ActionSpace":
        """Read from a loaded Gr00tPolicy (`processor.state_action_processor`); RtcUnavailable names what is
        missing."""
        processor = getattr(getattr(policy, "processor", None), "state_action_processor", None)
        if processor is None or not hasattr(processor, "norm_params"):
            raise RtcUnavailable("the policy has no processor.state_action_processor.norm_params")
        tag = getattr(getattr(policy, "embodiment_tag", None), "value", None) or config.embodiment_tag
        try:
            action_config = processor.modality_configs[tag]["action"]
            params = processor.norm_params[tag]["action"]
        except (KeyError, TypeError) as exc:
            raise RtcUnavailable(f"no action statistics for embodiment '{tag}' ({exc})") from None
        groups = {g.name: g for g in config.state_groups}
        keys = list(action_config.modality_keys)
        configs = list(getattr(action_config, "action_configs", None) or [None] * len(keys))
        mean_std = set(getattr(action_config, "mean_std_embedding_keys", None) or ())
        relative_on = bool(getattr(processor, "use_relative_action", False))
        spaces, column = [], 0
        for key, key_config in zip(keys, configs):
            group = groups.get(key)
            if group is None or key not in params:
                raise RtcUnavailable(f"action key '{key}' is not a layout group with statistics")
            dim = int(np.asarray(params[key]["dim"]))
            relative = relative_on and key_config is not None and _name(key_config.rep) == "RELATIVE"
            state_dims = None
            if relative:
                if _name(getattr(key_config, "type", "NON_EEF")) != "NON_EEF":
                    raise RtcUnavailable(f"action key '{key}' is a relative end-effector pose (not a joint delta)")
                reference = groups.get(getattr(key_config, "state_key", None) or key)
                if reference is None or reference.size != group.size:
                    raise RtcUnavailable(f"action key '{key}' is relative to a state key this layout lacks")
                state_dims = slice(reference.start, reference.stop)
            p = {name: np.asarray(params[key][name], dtype=np.float64) for name in ("min", "max", "mean", "std")}
            spaces.append(KeySpace(key, slice(column, column + dim), slice(group.start, group.stop), state_dims,
                                   key in mean_std, p["min"], p["max"], p["mean"], p["std"]))
            column += dim
        head = policy.model.action_head
        width = int(getattr(head, "action_dim", column))
        if column > width:
            raise RtcUnavailable(f"action keys need {column} columns, the action head has {width}")
        return cls(tuple(spaces), width)

    def outside(self, model_rows: np.ndarray, dim: int) -> np.ndarray:
        """(k, dim) bool: robot values whose min/max-normalized value is outside [-1, 1], which upstream's
        decoding clips (it unnormalizes clip(x, -1, 1)): those cannot come back equal to the prefix."""
        mask = np.zeros((model_rows.shape[0], dim), dtype=bool)
        for key in self.keys:
            if not key.mean_std:
                mask[:, key.dims] = np.abs(model_rows[:, key.columns]) > 1.0 + 1e-6
        return mask

    def to_model(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """(k, 21) robot actions and the request's (21,) state -> (k, width) float32 model rows."""
        actions = np.asarray(actions, dtype=np.float64)
        state = np.asarray(state, dtype=np.float64)
        out = np.zeros((actions.shape[0], self.width), dtype=np.float64)
        for key in self.keys:
            values = actions[:, key.dims]
            if key.state_dims is not None:
                values = values - state[key.state_dims]
            out[:, key.columns] = normalize(values, key)
        return out.astype(np.float32)


def normalize(values: np.ndarray, key: KeySpace) -> np.ndarray:
    """Upstream's normalization of one key, without clipping: min/max to [-1, 1] (0 where max and min
    are close), or (x - mean) / std (x itself where std is 0)."""
    out = np.zeros_like(values)
    if key.mean_std:
        spread = key.std != 0
        out[:, spread] = (values[:, spread] - key.mean[spread]) / key.std[spread]
        out[:, ~spread] = values[:, ~spread]
        return out
    spread = ~np.isclose(key.high, key.low)
    out[:, spread] = 2.0 * (values[:, spread] - key.low[spread]) / (key.high[spread] - key.low[spread]) - 1.0
    return out


def row_weights(delay: int, overlap: int, horizon: int, ramp_rate: float = DEFAULT_RAMP_RATE) -> np.ndarray:
    """(horizon,) weights of the prefix: 1 on the `delay` frozen rows, a raised cosine from 1 down to 0
    over the rest of the `overlap`, 0 after (module doc). `ramp_rate` r bends it: c^r in place of c."""
    weights = np.zeros(horizon, dtype=np.float64)
    delay, overlap = min(delay, horizon), min(overlap, horizon)
    weights[:delay] = 1.0
    for i in range(delay, overlap):
        c = ((overlap - i) / (overlap - delay + 1)) ** ramp_rate
        weights[i] = 0.5 - 0.5 * math.cos(math.pi * c)
    return weights


@dataclass
class RowPlan:
    """What one batch row asked for and what was applied (the reply's "rtc" entry)."""

    applied: bool
    frozen_steps: int = 0
    overlap_steps: int = 0
    reason: str = ""
    clipped: np.ndarray | None = None  # (frozen_steps, dim) bool: prefix values outside the statistics' range

    def report(self) -> dict:
        out = {"applied": self.applied, "frozen_steps": self.frozen_steps, "overlap_steps": self.overlap_steps}
        if self.clipped is not None and self.clipped.any():
            out["clipped_values"] = int(self.clipped.sum())
        if self.reason:
            out["reason"] = self.reason
        return out


class Plan:
    """One policy call's targets (B, H, width) and weights (B, H, 1), as torch tensors; `rows` reports."""

    def __init__(self, torch, target: np.ndarray, weights: np.ndarray, rows: list[RowPlan], steps: int,
                 buckets: int | None):
        self.target = torch.from_numpy(target)
        self.weights = torch.from_numpy(weights.astype(np.float32))[:, :, None]
        self.rows = rows
        self.steps, self.buckets = steps, buckets
        self.step = 0
        self.actions = None

    def see(self, actions, timesteps) -> None:
        """The encoder's view of step n: the running actions, and a check that the loop is N1.6's."""
        if self.step >= self.steps:
            raise EngineError(f"real-time chunking: the action head ran more than {self.steps} denoising steps")
        if self.buckets and timesteps is not None and hasattr(timesteps, "reshape") and timesteps.numel():
            expected = int(self.step / float(self.steps) * self.buckets)
            if int(timesteps.reshape(-1)[0]) != expected:
                raise EngineError(f"real-time chunking: step {self.step} of {self.steps} came with timestep "
                                  f"{int(timesteps.reshape(-1)[0])}, expected {expected}: this action head's "
                                  "denoising loop is not the one RTC was written for; set rtc:=false")
        self.actions = actions

    def steer(self, pred):
        """The decoder's output with the prefix rows steered, in FP32."""
        pred = pred.float()
        horizon = self.target.shape[1]
        x = self.actions.float()[:, -horizon:]
        target, weights = self.target.to(pred.device), self.weights.to(pred.device)
        remaining = 1.0 - self.step / float(self.steps)
        velocity = pred[:, -horizon:]
        steered = velocity + weights * ((target - x) / remaining - velocity)
        self.step += 1
        out = pred.clone()
        out[:, -horizon:] = steered
        return out


class RtcHook:
    """Wraps a GR00T action head's encoder and decoder once; acts only while `active(plan)`."""

    def __init__(self, head):
        self.head = head
        self.plan: Plan | None = None
        encoder, decoder = head.action_encoder, head.action_decoder
        encode, decode = encoder.forward, decoder.forward

        def encoder_forward(actions, timesteps, *args, **kwargs):
            plan = self.plan
            if plan is None:
                return encode(actions, timesteps, *args, **kwargs)
            plan.see(actions, timesteps)
            weight_dtype = next(iter(encoder.parameters())).dtype  # now: the policy may be cast after install
            return encode(actions.to(weight_dtype), timesteps, *args, **kwargs)

        def decoder_forward(*args, **kwargs):
            out = decode(*args, **kwargs)
            return out if self.plan is None else self.plan.steer(out)

        encoder.forward, decoder.forward = encoder_forward, decoder_forward

    @contextmanager
    def active(self, plan: Plan | None):
        self.plan = plan
        try:
            yield plan
        finally:
            self.plan = None
        if plan is not None and plan.step != plan.steps:
            raise EngineError(f"real-time chunking: the action head ran {plan.step} of {plan.steps} steered "
                              "denoising steps; its loop is not the one RTC was written for (set rtc:=false)")


class Inpainter:
    """The engine's side: plans a batch's prefixes for one policy call (module doc)."""

    def __init__(self, policy, config, torch):
        self.torch = torch
        self.enabled = bool(getattr(config, "rtc", True))
        self.ramp_rate = float(getattr(config, "rtc_ramp_rate", DEFAULT_RAMP_RATE))
        self.head = policy.model.action_head
        self.space, self.unavailable = None, ""
        if self.enabled:
            try:
                self.space = ActionSpace.from_policy(policy, config)
            except RtcUnavailable as exc:
                self.unavailable = str(exc)
        self.hook = RtcHook(self.head) if self.space is not None else None

    @property
    def inpaints(self) -> bool:
        return self.space is not None

    def describe(self) -> dict:
        out = {"enabled": self.enabled, "inpaints": self.inpaints, "ramp_rate": self.ramp_rate}
        if self.unavailable:
            out["unavailable"] = self.unavailable
        return out

    def plan(self, batch) -> tuple[Plan | None, list[RowPlan]]:
        """A Plan for the rows that carry a prefix (None when none does or RTC is off), and each row's report."""
        size = batch.batch_size
        prefixes = list(batch.prefixes) + [None] * (size - len(batch.prefixes))
        if not any(p is not None for p in prefixes[:size]):
            return None, [RowPlan(False) for _ in range(size)]
        if not self.inpaints:
            reason = "rtc:=false on this server" if not self.enabled else f"unavailable: {self.unavailable}"
            return None, [RowPlan(False, reason=reason if p is not None else "") for p in prefixes[:size]]
        horizon, width = int(self.head.action_horizon), self.space.width
        target = np.zeros((size, horizon, width), dtype=np.float32)
        weights = np.zeros((size, horizon), dtype=np.float64)
        rows = []
        for b, prefix in enumerate(prefixes[:size]):
            if prefix is None:
                rows.append(RowPlan(False))
                continue
            k = min(len(prefix.actions), horizon)
            d = min(int(prefix.delay_steps), k)
            target[b, :k] = self.space.to_model(prefix.actions[:k], batch.state[b])
            weights[b] = row_weights(d, k, horizon, self.ramp_rate)
            rows.append(RowPlan(True, d, k, clipped=self.space.outside(target[b, :d], batch.state.shape[1])))
        steps = int(self.head.num_inference_timesteps)
        buckets = getattr(self.head, "num_timestep_buckets", None)
        return Plan(self.torch, target, weights, rows, steps, buckets), rows

    @staticmethod
    def restore_clipped(chunks: np.ndarray, batch, rows: list[RowPlan]) -> np.ndarray:
        """The decoded chunks with the frozen values that upstream's decoding clipped (the prefix left the
        checkpoint's statistics there) set back to the prefix: those steps are already playing when the reply
        lands, and the rest of the chunk was computed from the prefix itself. Counted in each row's report."""
        for b, row in enumerate(rows):
            if row.applied and row.clipped is not None and row.clipped.any():
                frozen = chunks[b, :row.frozen_steps]
                frozen[row.clipped] = batch.prefixes[b].actions[:row.frozen_steps][row.clipped]
        return chunks
