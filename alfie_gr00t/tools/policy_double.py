"""A GR00T N1.6-shaped policy that really denoises, in real torch, for the desk (tests, benchmarks).

Not upstream code and never loaded by a robot: a DOUBLE of Isaac-GR00T's `Gr00tPolicy` with
upstream's signature, small enough to run on a CPU in milliseconds, so that the production
code (the DiT swap, the ONNX Runtime DiT, real-time chunking inside the denoising loop, the
server) runs on it unchanged.

What it mirrors of upstream (only what the deployment code touches):

* `policy.get_action(observation, options=None) -> (action_dict, info)`, observations as
  `Gr00tPolicy` takes them (video (B,1,H,W,3) uint8, state (B,1,D) float32 per key,
  language [[text]]), bare group keys in the reply;
* `policy.model.backbone`, `policy.model.action_head.{model (the DiT), action_encoder,
  action_decoder, action_dim, action_horizon, num_inference_timesteps, num_timestep_buckets,
  get_action}`; the head's `get_action` is the flow-matching Euler loop of N1.6's
  `get_action_with_features` (noise from torch.randn, timesteps discretized into buckets,
  the DiT called by keyword, the decoder's velocity, `actions + dt * velocity`), returning
  `{"action_pred": normalized actions}` padded to `action_dim` (upstream's max_action_dim);
* `policy.processor.state_action_processor` with `modality_configs`, `norm_params`,
  `use_relative_action`, `clip_outliers`, and `policy.processor.decode_action(action,
  embodiment_tag, state)`: min/max normalization to [-1, 1] (clipped when decoding, as
  upstream does), state-relative keys decoded as state + delta;
* `policy.embodiment_tag.value`.

`TinyDiT` is a DiT of our own with upstream's forward signature and I/O names
(`AlternateVLDiT.forward`: hidden_states, encoder_hidden_states, timestep,
encoder_attention_mask, return_all_hidden_states, image_mask, backbone_attention_mask);
`export_dit` writes it as `export_onnx_n1d6.py` would (inputs sa_embs, vl_embs, timestep,
image_mask, backbone_attention_mask; output `output`).

Public API:

    policy = Gr00tPolicyDouble(EngineConfig(mock_mode=False, device="cpu"), seed=0)
    train_double(policy, steps=400)          # a model of smooth motions (see below), 10-40 s on a CPU
    engine = make_engine(dit="onnxruntime", workdir=tmp)   # a ready Gr00tPolicyEngine (trained double)
    service = make_service(ServerConfig(...), dit="pytorch")  # a ready PolicyService on it
    with BackgroundServer(service): ...      # alfie_gr00t.server.service: serves ipc_path

`train_double` fits the whole action head by flow matching to chunks of smooth motions:
each group's normalized action moves along `a*s + b*s^2` (s = (i+1)/horizon, a and b random
per sample and dimension), so the future is many-valued given the observation (two requests
disagree at a seam, as a real policy's samples do) while a prefix determines its own
continuation (what real-time chunking must exploit). `make_engine` trains it (deterministic:
same seed, same weights on one torch build; once per process for a seed and layout, 10-60 s on
a busy 2-core CPU) unless `trained=False`.

Default layout and statistics (`default_statistics`): base_velocity absolute (min/max
-0.5..0.5), arms and head state-relative (relative_action min/max -0.5..0.5 rad), as a
fine-tuned N1.6 represents Alfie's arm and head actions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

SA_DIM, VL_DIM, HIDDEN, OUT_DIM = 64, 24, 64, 64
VL_TOKENS = 10
BUCKETS = 1000
EMBODIMENT = "new_embodiment"
RELATIVE_RANGE = 0.5  # default statistics: relative_action min/max, rad
ABSOLUTE_RANGE = 0.5  # default statistics: absolute base_velocity min/max


# ---------------------------------------------------------------- the DiT and the action head


class TinyDiT(nn.Module):
    def __init__(self):
        super().__init__()
        self.timestep_encoder = nn.Embedding(BUCKETS, HIDDEN)
        self.timestep_scale = nn.Embedding(BUCKETS, HIDDEN)  # adaptive (multiplicative) timestep conditioning
        nn.init.zeros_(self.timestep_scale.weight)
        self.proj_in = nn.Linear(SA_DIM, HIDDEN)
        self.q1, self.k1, self.v1 = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.q2, self.k2, self.v2 = nn.Linear(HIDDEN, HIDDEN), nn.Linear(VL_DIM, HIDDEN), nn.Linear(VL_DIM, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN)
        self.row_gain = nn.Parameter(torch.zeros(1, 64, HIDDEN))  # per-position output gain
        self.proj_out = nn.Linear(HIDDEN, OUT_DIM)

    @staticmethod
    def _attend(q, k, v, mask=None):
        scores = torch.matmul(q, k.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], -1e4)
        return torch.matmul(torch.softmax(scores, dim=-1), v)

    def forward(self, hidden_states, encoder_hidden_states, timestep=None, encoder_attention_mask=None,
                return_all_hidden_states=False, image_mask=None, backbone_attention_mask=None):
        temb = self.timestep_encoder(timestep)[:, None, :]
        x = self.proj_in(hidden_states) + temb
        h = self.norm(x)
        x = x + self._attend(self.q1(h), self.k1(h), self.v1(h))
        mask = image_mask & backbone_attention_mask
        x = x + self._attend(self.q2(x), self.k2(encoder_hidden_states), self.v2(encoder_hidden_states), mask)
        gain = (1.0 + self.timestep_scale(timestep)[:, None, :]) * (1.0 + self.row_gain[:, :x.shape[1]])
        out = self.proj_out(x * gain)
        return (out, [x]) if return_all_hidden_states else out


class ExportWrapper(nn.Module):
    """Positional inputs in export_onnx_n1d6.py's order, the masks passed by keyword."""

    def __init__(self, dit):
        super().__init__()
        self.dit = dit

    def forward(self, sa_embs, vl_embs, timestep, image_mask, backbone_attention_mask):
        return self.dit(sa_embs, vl_embs, timestep, image_mask=image_mask,
                        backbone_attention_mask=backbone_attention_mask)


def export_dit(dit: TinyDiT, path, batch: int = 1, sa_len: int = 17, dtype=torch.float32):
    """torch.onnx.export, legacy exporter, opset 19, dynamic batch and sequence axes (upstream's names)."""
    dit = copy.deepcopy(dit).to(dtype).eval()
    args = (torch.randn(batch, sa_len, SA_DIM, dtype=dtype), torch.randn(batch, VL_TOKENS, VL_DIM, dtype=dtype),
            torch.ones(batch, dtype=torch.int64), torch.ones(batch, VL_TOKENS, dtype=torch.bool),
            torch.ones(batch, VL_TOKENS, dtype=torch.bool))
    axes = {"sa_embs": {0: "batch_size", 1: "sa_seq_len"}, "vl_embs": {0: "batch_size", 1: "vl_seq_len"},
            "timestep": {0: "batch_size"}, "image_mask": {0: "batch_size", 1: "vl_seq_len"},
            "backbone_attention_mask": {0: "batch_size", 1: "vl_seq_len"}, "output": {0: "batch_size", 1: "sa_seq_len"}}
    with torch.no_grad():
        torch.onnx.export(ExportWrapper(dit), args, str(path), input_names=list(axes)[:5], output_names=["output"],
                          dynamic_axes=axes, opset_version=19, do_constant_folding=True, dynamo=False)
    return path


def perturbed(dit: TinyDiT, factor: float = 1.6) -> TinyDiT:
    """A wrong DiT: six weight matrices scaled by `factor`."""
    wrong = copy.deepcopy(dit)
    with torch.no_grad():
        for layer in (wrong.q1, wrong.k1, wrong.v1, wrong.q2, wrong.k2, wrong.v2):
            layer.weight.mul_(factor)
    return wrong


class ActionEncoder(nn.Module):
    def __init__(self, action_dim):
        super().__init__()
        self.proj = nn.Linear(action_dim, SA_DIM)
        self.time = nn.Embedding(BUCKETS, SA_DIM)
        self.position = nn.Parameter(torch.zeros(1, 64, SA_DIM))

    def forward(self, actions, timesteps, embodiment_id):
        return self.proj(actions) + self.time(timesteps)[:, None, :] + self.position[:, :actions.shape[1]]


class ActionDecoder(nn.Module):
    def __init__(self, action_dim):
        super().__init__()
        self.proj = nn.Linear(OUT_DIM, action_dim)

    def forward(self, model_output, embodiment_id):
        return self.proj(model_output)


class ActionHeadDouble(nn.Module):
    def __init__(self, horizon, action_dim):
        super().__init__()
        self.action_horizon, self.action_dim = horizon, action_dim
        self.num_inference_timesteps, self.num_timestep_buckets = 4, BUCKETS
        self.model = TinyDiT()
        self.action_encoder = ActionEncoder(action_dim)
        self.action_decoder = ActionDecoder(action_dim)
        self.state_encoder = nn.Linear(action_dim, SA_DIM)

    def velocity(self, actions, timesteps, state_features, backbone_output, embodiment_id):
        """One DiT evaluation: the decoder's velocity for the action rows."""
        action_features = self.action_encoder(actions, timesteps, embodiment_id)
        sa_embs = torch.cat((state_features, action_features), dim=1)
        model_output = self.model(hidden_states=sa_embs, encoder_hidden_states=backbone_output["backbone_features"],
                                  timestep=timesteps, image_mask=backbone_output["image_mask"],
                                  backbone_attention_mask=backbone_output["backbone_attention_mask"])
        return self.action_decoder(model_output, embodiment_id)

    @torch.no_grad()
    def get_action(self, backbone_output: dict, action_input: dict) -> dict:
        vl_embeds = backbone_output["backbone_features"]
        embodiment_id = action_input["embodiment_id"]
        state_features = self.state_encoder(action_input["state"])
        batch_size, device = vl_embeds.shape[0], vl_embeds.device
        actions = torch.randn(size=(batch_size, self.action_horizon, self.action_dim), dtype=vl_embeds.dtype,
                              device=device)
        dt = 1.0 / self.num_inference_timesteps
        for t in range(self.num_inference_timesteps):
            t_discretized = int(t / float(self.num_inference_timesteps) * self.num_timestep_buckets)
            timesteps_tensor = torch.full(size=(batch_size,), fill_value=t_discretized, device=device)
            pred = self.velocity(actions, timesteps_tensor, state_features, backbone_output, embodiment_id)
            actions = actions + dt * pred[:, -self.action_horizon:]
        return {"action_pred": actions, "backbone_features": vl_embeds, "state_features": state_features}


class Backbone(nn.Module):
    def __init__(self, cameras):
        super().__init__()
        self.proj = nn.Linear(cameras, VL_TOKENS * VL_DIM)

    def forward(self, pixels):
        return {"backbone_features": self.proj(pixels).reshape(pixels.shape[0], VL_TOKENS, VL_DIM)}


class ModelDouble(nn.Module):
    def __init__(self, cameras, horizon, action_dim):
        super().__init__()
        self.backbone = Backbone(cameras)
        self.action_head = ActionHeadDouble(horizon, action_dim)


# ---------------------------------------------------------------- the processor (statistics, relative keys)


@dataclass(frozen=True)
class ActionConfigDouble:
    """Upstream's ActionConfig fields the deployment code reads: rep, type, format, state_key."""

    rep: str = "ABSOLUTE"  # ABSOLUTE | RELATIVE (upstream: ActionRepresentation, compared by name)
    type: str = "NON_EEF"
    format: str = "DEFAULT"
    state_key: str | None = None


@dataclass(frozen=True)
class ModalityConfigDouble:
    modality_keys: list
    delta_indices: list = field(default_factory=lambda: [0])
    action_configs: list | None = None
    mean_std_embedding_keys: list | None = None


def default_statistics(groups, relative=("left_arm", "right_arm", "head"),
                       relative_range: float = RELATIVE_RANGE) -> dict:
    """{"state", "action", "relative_action"} statistics for `groups`: relative keys -r..r rad around the
    state (r = `relative_range`), absolute keys -0.5..0.5."""
    table = {"state": {}, "action": {}, "relative_action": {}}
    for g in groups:
        low, high = [-ABSOLUTE_RANGE] * g.size, [ABSOLUTE_RANGE] * g.size
        entry = {"min": low, "max": high, "mean": [0.0] * g.size, "std": [0.25] * g.size,
                 "q01": low, "q99": high}
        table["state"][g.name] = dict(entry)
        table["action"][g.name] = dict(entry)
        if g.name in relative:
            rlow, rhigh = [-relative_range] * g.size, [relative_range] * g.size
            table["relative_action"][g.name] = {**entry, "min": rlow, "max": rhigh, "q01": rlow, "q99": rhigh}
    return table


class StateActionProcessorDouble:
    """Upstream StateActionProcessor's attributes and its action normalization (min/max, mean/std)."""

    def __init__(self, modality_configs: dict, statistics: dict, use_relative_action: bool = True,
                 clip_outliers: bool = True):
        self.modality_configs = modality_configs
        self.statistics = statistics
        self.use_relative_action = use_relative_action
        self.clip_outliers = clip_outliers
        self.norm_params = {tag: {"action": self._action_params(tag)} for tag in statistics}

    def _action_params(self, tag: str) -> dict:
        stats, config = self.statistics[tag], self.modality_configs[tag]["action"]
        params = {}
        for key, action_config in zip(config.modality_keys, config.action_configs):
            use = stats["action"][key]
            if action_config.rep == "RELATIVE" and self.use_relative_action:
                use = stats["relative_action"][key]
            params[key] = {name: np.asarray(use[name], dtype=np.float64) for name in ("min", "max", "mean", "std")}
            params[key]["dim"] = np.array(len(use["min"]))
        return params

    def unapply_action(self, action: dict, embodiment_tag: str, state: dict) -> dict:
        config = self.modality_configs[embodiment_tag]["action"]
        out = {}
        for key, action_config in zip(config.modality_keys, config.action_configs):
            params = self.norm_params[embodiment_tag]["action"][key]
            low, high = params["min"], params["max"]
            values = (np.clip(action[key], -1.0, 1.0) + 1.0) / 2.0 * (high - low) + low
            if action_config.rep == "RELATIVE" and self.use_relative_action:
                reference = state[action_config.state_key or key][:, -1:, :]  # (B, 1, D): the last state
                values = values + reference
            out[key] = values
        return out


class ProcessorDouble:
    def __init__(self, modality_configs: dict, statistics: dict, horizon: int):
        self.modality_configs = modality_configs
        self.state_action_processor = StateActionProcessorDouble(modality_configs, statistics)
        self.horizon = horizon

    def decode_action(self, action: np.ndarray, embodiment_tag, state: dict) -> dict:
        """Upstream's split of the concatenated prediction into keys, then unapply_action."""
        tag = embodiment_tag.value
        out, start = {}, 0
        for key in self.modality_configs[tag]["action"].modality_keys:
            dim = int(self.state_action_processor.norm_params[tag]["action"][key]["dim"])
            out[key] = action[..., :self.horizon, start:start + dim]
            start += dim
        return self.state_action_processor.unapply_action(out, tag, state)


@dataclass(frozen=True)
class EmbodimentTagDouble:
    value: str = EMBODIMENT


# ---------------------------------------------------------------- the policy


class Gr00tPolicyDouble:
    """DOUBLE of Isaac-GR00T's Gr00tPolicy (see the module doc). `max_action_dim`: the model's padded
    action width (upstream's max_action_dim); default the layout's width + 11."""

    def __init__(self, config, seed: int = 0, dtype=torch.float32, statistics: dict | None = None,
                 max_action_dim: int | None = None, relative=("left_arm", "right_arm", "head")):
        torch.manual_seed(seed)
        self.config = config
        width = max_action_dim or config.action_dim + 11
        self.model = ModelDouble(len(config.camera_names), config.action_horizon, width).to(dtype).eval()
        self.dtype = dtype
        self.embodiment_tag = EmbodimentTagDouble()
        names = [g.name for g in config.state_groups]
        action = ModalityConfigDouble(names, list(range(config.action_horizon)),
                                      [ActionConfigDouble("RELATIVE" if n in relative else "ABSOLUTE") for n in names])
        self.modality_configs = {"video": ModalityConfigDouble(list(config.video_keys)),
                                 "state": ModalityConfigDouble(names), "action": action,
                                 "language": ModalityConfigDouble([config.language_key])}
        statistics = statistics or default_statistics(config.state_groups, relative)
        self.processor = ProcessorDouble({EMBODIMENT: self.modality_configs}, {EMBODIMENT: statistics},
                                         config.action_horizon)

    def get_modality_config(self) -> dict:
        return self.modality_configs

    def _inputs(self, observation: dict):
        cfg = self.config
        video = observation["video"]
        pixels = np.stack([video[key][:, 0].mean(axis=(1, 2, 3)) / 255.0 for key in cfg.video_keys], axis=1)
        state = np.concatenate([observation["state"][g.name][:, 0] for g in cfg.state_groups], axis=1)
        size = state.shape[0]
        image_mask = torch.zeros(size, VL_TOKENS, dtype=torch.bool)
        image_mask[:, : VL_TOKENS // 2] = True
        attention = torch.ones(size, VL_TOKENS, dtype=torch.bool)
        attention[:, -1] = False
        backbone_output = self.model.backbone(torch.as_tensor(pixels, dtype=self.dtype))
        backbone_output.update(image_mask=image_mask, backbone_attention_mask=attention)
        width = self.model.action_head.action_dim
        padded = np.zeros((size, width), dtype=np.float32)  # upstream pads the normalized state to max_state_dim
        padded[:, :state.shape[1]] = np.clip(state / ABSOLUTE_RANGE, -1.0, 1.0)
        action_input = {"state": torch.as_tensor(padded, dtype=self.dtype)[:, None, :],
                        "embodiment_id": torch.zeros(size, dtype=torch.long)}
        return backbone_output, action_input

    def get_action(self, observation: dict, options=None):
        with torch.inference_mode():
            backbone_output, action_input = self._inputs(observation)
            out = self.model.action_head.get_action(backbone_output, action_input)
        normalized = out["action_pred"].float().numpy()
        states = {k: np.asarray(v, dtype=np.float32) for k, v in observation["state"].items()}
        decoded = self.processor.decode_action(normalized, self.embodiment_tag, states)
        return {k: v.astype(np.float32) for k, v in decoded.items()}, {}


# ---------------------------------------------------------------- training, engines


def smooth_chunks(count: int, horizon: int, width: int, used: int, generator) -> torch.Tensor:
    """Normalized chunks moving at a constant rate per dimension, a * s (s = (i+1)/horizon, a uniform in
    -0.8..0.8); padding columns zero."""
    s = (torch.arange(1, horizon + 1, dtype=torch.float32) / horizon)[None, :, None]
    a = (torch.rand(count, 1, used, generator=generator) * 2 - 1) * 0.8
    chunks = torch.zeros(count, horizon, width)
    chunks[:, :, :used] = a * s
    return chunks


def train_double(policy: Gr00tPolicyDouble, steps: int = 400, seed: int = 0, batch: int = 128,
                 denoising_steps: tuple[int, ...] = (4,)) -> list[float]:
    """Fit the action head by flow matching (x_t = (1-t) noise + t x, target velocity x - noise) to
    `smooth_chunks`, at the discrete times the inference loop visits (`denoising_steps`); returns the losses."""
    head = policy.model.action_head
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    times = sorted({n / k for k in denoising_steps for n in range(k)})
    times_t = torch.tensor(times)
    cfg = policy.config
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-3)
    head.train()
    losses = []
    for _ in range(steps):
        # any grey level and any state, so that whatever frames and state a benchmark sends are familiar
        backbone_output, action_input = policy._inputs(_grey_observation(cfg, batch, rng))
        backbone_output = {k: v.detach() for k, v in backbone_output.items()}
        target = smooth_chunks(batch, head.action_horizon, head.action_dim, cfg.action_dim, generator)
        noise = torch.randn(target.shape, generator=generator)
        t = times_t[torch.randint(len(times), (batch,), generator=generator)][:, None, None]
        noisy = (1 - t) * noise + t * target
        buckets = (t[:, 0, 0] * head.num_timestep_buckets).round().long()
        state_features = head.state_encoder(action_input["state"])
        pred = head.velocity(noisy, buckets, state_features, backbone_output, action_input["embodiment_id"])
        loss = ((pred[:, -head.action_horizon:] - (target - noise)) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    head.eval()
    return losses


def _grey_observation(config, batch: int, rng) -> dict:
    """Uniform frames of a random grey level each (the double's backbone reads only their mean) and random
    states."""
    levels = rng.integers(0, 256, (batch, 1, 1, 1, 1), dtype=np.uint8)
    shape = (batch, 1, 2, 2, 3)
    return {"video": {key: np.broadcast_to(levels, shape) for key in config.video_keys},
            "state": {g.name: rng.uniform(-0.5, 0.5, (batch, 1, g.size)).astype(np.float32)
                      for g in config.state_groups},
            "language": {config.language_key: [["go"]] * batch}}


_TRAINED: dict = {}  # (seed, steps, layout) -> trained weights, for this process


def make_engine(config=None, *, seed: int = 0, dit: str = "pytorch", workdir: str | Path | None = None,
                trained: bool = True, train_steps: int = 400):
    """A ready `Gr00tPolicyEngine` (the production engine) on a `Gr00tPolicyDouble`.

    `config`: an EngineConfig (default: CPU, the Alfie layout; its `rtc`/`rtc_ramp_rate` apply);
    `dit`: "pytorch" (eager) or "onnxruntime" (the DiT exported to `workdir`/dit_model_fp32.onnx and
    swapped in by the production code, as `dit_engine_path` does)."""
    from alfie_gr00t.engines.base import EngineConfig
    from alfie_gr00t.engines.gr00t_policy_engine import Gr00tPolicyEngine

    config = config or EngineConfig(mock_mode=False, device="cpu")
    policy = Gr00tPolicyDouble(config, seed=seed)
    if trained:
        key = (seed, train_steps, config.action_horizon, tuple(config.state_groups), tuple(config.video_keys))
        if key not in _TRAINED:  # one training per process and shape: a benchmark builds several engines
            train_double(policy, steps=train_steps, seed=seed)
            _TRAINED[key] = copy.deepcopy(policy.model.state_dict())
        policy.model.load_state_dict(_TRAINED[key])
    if dit == "onnxruntime":
        if workdir is None:
            raise ValueError("dit='onnxruntime' needs a workdir for the exported DiT")
        path = export_dit(policy.model.action_head.model, Path(workdir) / "dit_model_fp32.onnx")
        config = _replace(config, dit_engine_path=str(path))
    elif dit != "pytorch":
        raise ValueError(f"dit must be 'pytorch' or 'onnxruntime', got {dit!r}")
    return Gr00tPolicyEngine.from_policy(policy, config)


def make_service(server_config=None, **engine_kwargs):
    """A ready `PolicyService` (the production service) on `make_engine(**engine_kwargs)`, its engine
    config taken from `server_config` (default: ServerConfig(device="cpu"))."""
    from alfie_gr00t.server.config import ServerConfig
    from alfie_gr00t.server.service import PolicyService

    server_config = server_config or ServerConfig(device="cpu")
    engine = make_engine(_replace(server_config.engine_config(), mock_mode=False), **engine_kwargs)
    return PolicyService(engine, server_config)


def _replace(config, **values):
    import dataclasses

    return dataclasses.replace(config, **values)
