"""A small GR00T N1.6-shaped policy in real torch, for the DiT swap tests (no Isaac-GR00T here).

`TinyDiT` is a DiT of our own with upstream's forward signature and I/O names
(gr00t/model/modules/dit.py `AlternateVLDiT.forward`: hidden_states, encoder_hidden_states,
timestep, encoder_attention_mask, return_all_hidden_states, image_mask,
backbone_attention_mask): a timestep embedding, one self-attention and one cross-attention
over the image & attended backbone tokens, an output projection.

`Gr00tPolicyDouble` is a DOUBLE of Isaac-GR00T's `Gr00tPolicy`: `get_action(observation,
options=None) -> (action_dict, info)` with bare group keys, and `model.backbone`,
`model.action_head.{model, action_encoder, action_decoder, num_inference_timesteps,
get_action}` as the deployment code touches them. The action head's `get_action` runs the
flow-matching Euler loop the way upstream's `Gr00tN1d6ActionHead.get_action_with_features`
does (noise from torch.randn, t_discretized buckets, DiT by keyword, decoder velocity,
`actions + dt * velocity`) and returns `{"action_pred": normalized actions}`; the policy
decodes them state-relative (state + a small clipped delta), as a fine-tuned N1.6 does
for arm and head keys.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

SA_DIM, VL_DIM, HIDDEN, OUT_DIM = 32, 24, 32, 32
VL_TOKENS = 10
BUCKETS = 1000
DELTA_SCALE, DELTA_CLIP = 0.02, 0.05  # decoded action = state + clip(DELTA_SCALE * pred, +-DELTA_CLIP)


class TinyDiT(nn.Module):
    def __init__(self):
        super().__init__()
        self.timestep_encoder = nn.Embedding(BUCKETS, HIDDEN)
        self.proj_in = nn.Linear(SA_DIM, HIDDEN)
        self.q1, self.k1, self.v1 = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)
        self.q2, self.k2, self.v2 = nn.Linear(HIDDEN, HIDDEN), nn.Linear(VL_DIM, HIDDEN), nn.Linear(VL_DIM, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN)
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
        x = x + self._attend(self.q1(x), self.k1(x), self.v1(x))
        mask = image_mask & backbone_attention_mask
        x = x + self._attend(self.q2(x), self.k2(encoder_hidden_states), self.v2(encoder_hidden_states), mask)
        out = self.proj_out(self.norm(x))
        return (out, [x]) if return_all_hidden_states else out


class ExportWrapper(nn.Module):
    """Positional inputs in export_onnx_n1d6.py's order, the masks passed by keyword."""

    def __init__(self, dit):
        super().__init__()
        self.dit = dit

    def forward(self, sa_embs, vl_embs, timestep, image_mask, backbone_attention_mask):
        return self.dit(sa_embs, vl_embs, timestep, image_mask=image_mask, backbone_attention_mask=backbone_attention_mask)


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

    def forward(self, actions, timesteps, embodiment_id):
        return self.proj(actions) + self.time(timesteps)[:, None, :]


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
            action_features = self.action_encoder(actions, timesteps_tensor, embodiment_id)
            sa_embs = torch.cat((state_features, action_features), dim=1)
            model_output = self.model(hidden_states=sa_embs, encoder_hidden_states=vl_embeds, timestep=timesteps_tensor,
                                      image_mask=backbone_output["image_mask"],
                                      backbone_attention_mask=backbone_output["backbone_attention_mask"])
            pred = self.action_decoder(model_output, embodiment_id)
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


class Gr00tPolicyDouble:
    """DOUBLE of Isaac-GR00T's Gr00tPolicy (see the module doc)."""

    def __init__(self, config, seed: int = 0, dtype=torch.float32):
        torch.manual_seed(seed)
        self.config = config
        self.model = ModelDouble(len(config.camera_names), config.action_horizon, config.action_dim).to(dtype).eval()
        self.dtype = dtype

    def get_action(self, observation: dict, options=None):
        cfg = self.config
        video = observation["video"]
        pixels = np.stack([video[key][:, 0].mean(axis=(1, 2, 3)) / 255.0 for key in cfg.video_keys], axis=1)
        state = np.concatenate([observation["state"][g.name][:, 0] for g in cfg.state_groups], axis=1)
        size = state.shape[0]
        image_mask = torch.zeros(size, VL_TOKENS, dtype=torch.bool)
        image_mask[:, : VL_TOKENS // 2] = True
        attention = torch.ones(size, VL_TOKENS, dtype=torch.bool)
        attention[:, -1] = False
        with torch.no_grad():
            backbone_output = self.model.backbone(torch.as_tensor(pixels, dtype=self.dtype))
            backbone_output.update(image_mask=image_mask, backbone_attention_mask=attention)
            action_input = {"state": torch.as_tensor(state, dtype=self.dtype)[:, None, :],
                            "embodiment_id": torch.zeros(size, dtype=torch.long)}
            out = self.model.action_head.get_action(backbone_output, action_input)
        pred = out["action_pred"].float().numpy()
        decoded = state[:, None, :] + np.clip(DELTA_SCALE * pred, -DELTA_CLIP, DELTA_CLIP)
        return {g.name: decoded[:, :, g.start:g.stop].astype(np.float32) for g in cfg.state_groups}, {}
