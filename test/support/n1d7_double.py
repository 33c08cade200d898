"""A GR00T N1.7-shaped policy in real torch, and a stand-in Isaac-GR00T N1.7 install (no Isaac-GR00T here).

A DOUBLE of upstream N1.7 (Isaac-GR00T main, commit 626af89), reading a checkpoint directory written
by support/n1d7_checkpoint.py, mirroring what the deployment code touches, with upstream's names:

* `Gr00tPolicy(embodiment_tag, model_path, *, device, strict=True)`: drops `rl_info` from the
  modality configs, accepts several language keys and reads the first, checks (strict) that the
  observation carries every video, state and language key with the configured time steps;
  `get_modality_config()`, `get_action(observation, options=None)`, `processor.state_action_processor
  .statistics`, `embodiment_tag`;
* `model.action_head` (`Gr00tN1d7ActionHead`): `config` (a `Gr00tN1d7Config` with upstream's field
  names, among them `state_history_length`), `model` (the DiT), `action_encoder`, `action_decoder`,
  `state_encoder`, `position_embedding`, `num_inference_timesteps`, `num_timestep_buckets`,
  `_encode_features` (state (B, state_history_length, D) flattened to one token),
  `get_action_with_features` (the Euler loop with position embeddings and `vel_strength`, the DiT
  called by keyword with an int64 `timestep`) and `get_action(backbone_output, action_input, options)`.

The DiT is the N1.6 double's `TinyDiT` (N1.7 runs the same `AlternateVLDiT` with the same forward).
`export_dit_like_n1d7` exports it with N1.7's `dit_only` axes: only `vl_seq_len` dynamic, the batch
fixed (at 1 by default), in fp32 because ONNX Runtime's CPU provider has no bf16 Gemm.
"""

from __future__ import annotations

import copy
import enum
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alfie_gr00t.tools.policy_double import (SA_DIM, VL_DIM, VL_TOKENS, ActionDecoder, ActionEncoder, Backbone,
                                             ExportWrapper, TinyDiT, perturbed)  # noqa: F401

from support.n1d7_checkpoint import (LANGUAGE_KEYS, TAG, Gr00tN1d7Config, ModalityConfig,  # noqa: F401
                                     modality_configs, statistics, write_checkpoint)

DELTA_SCALE, DELTA_CLIP = 0.02, 0.05  # decoded action = last state + clip(DELTA_SCALE * pred, +-DELTA_CLIP)


class Gr00tN1d7ActionHead(nn.Module):
    """Gr00tN1d7ActionHead's inference path (see the module doc)."""

    def __init__(self, config: Gr00tN1d7Config):
        super().__init__()
        self.config = config
        self.model = TinyDiT()
        self.action_dim, self.action_horizon = config.max_action_dim, config.action_horizon
        self.num_inference_timesteps = config.num_inference_timesteps
        self.num_timestep_buckets = config.num_timestep_buckets
        self.state_encoder = nn.Linear(config.max_state_dim * config.state_history_length, SA_DIM)
        self.action_encoder = ActionEncoder(self.action_dim)
        self.action_decoder = ActionDecoder(self.action_dim)
        self.position_embedding = nn.Embedding(config.max_seq_len, SA_DIM)

    def _encode_features(self, backbone_output: dict, action_input: dict) -> dict:
        state = action_input["state"]
        assert state.shape[1] == self.config.state_history_length, "current_T != state_history_length"
        state = state.view(state.shape[0], 1, -1)
        return {"backbone_features": backbone_output["backbone_features"], "state_features": self.state_encoder(state)}

    @torch.no_grad()
    def get_action_with_features(self, backbone_features, state_features, embodiment_id, backbone_output,
                                 action_input, options=None) -> dict:
        batch_size, device = backbone_features.shape[0], backbone_features.device
        actions = torch.randn(size=(batch_size, self.config.action_horizon, self.action_dim),
                              dtype=backbone_features.dtype, device=device)
        dt = 1.0 / self.num_inference_timesteps
        vel_strength = torch.ones_like(actions)
        for t in range(self.num_inference_timesteps):
            t_discretized = int(t / float(self.num_inference_timesteps) * self.num_timestep_buckets)
            timesteps_tensor = torch.full(size=(batch_size,), fill_value=t_discretized, device=device)
            action_features = self.action_encoder(actions, timesteps_tensor, embodiment_id)
            if self.config.add_pos_embed:
                pos_ids = torch.arange(action_features.shape[1], dtype=torch.long, device=device)
                action_features = action_features + self.position_embedding(pos_ids).unsqueeze(0)
            sa_embs = torch.cat((state_features, action_features), dim=1)
            model_output = self.model(hidden_states=sa_embs, encoder_hidden_states=backbone_features,
                                      timestep=timesteps_tensor, image_mask=backbone_output["image_mask"],
                                      backbone_attention_mask=backbone_output["backbone_attention_mask"])
            pred = self.action_decoder(model_output, embodiment_id)
            actions = actions + dt * pred[:, -self.action_horizon:] * vel_strength
        return {"action_pred": actions, "backbone_features": backbone_features, "state_features": state_features}

    @torch.no_grad()
    def get_action(self, backbone_output: dict, action_input: dict, options=None) -> dict:
        features = self._encode_features(backbone_output, action_input)
        return self.get_action_with_features(features["backbone_features"], features["state_features"],
                                             action_input["embodiment_id"], backbone_output, action_input, options)


class Gr00tN1d7(nn.Module):
    def __init__(self, config: Gr00tN1d7Config, cameras: int):
        super().__init__()
        self.config = config
        self.backbone = Backbone(cameras)
        self.action_head = Gr00tN1d7ActionHead(config)


class Gr00tPolicyN1d7:
    """DOUBLE of N1.7's Gr00tPolicy, reading a checkpoint written by `write_checkpoint` (module doc)."""

    seed = 0
    instances: list = []

    def __init__(self, embodiment_tag, model_path, *, device, strict=True):
        path = Path(model_path)
        saved = json.loads((path / "config.json").read_text())
        config = Gr00tN1d7Config(**{k: v for k, v in saved.items() if k in Gr00tN1d7Config.__dataclass_fields__})
        processor = json.loads((path / "processor_config.json").read_text())["processor_kwargs"]
        self.embodiment_tag, self.strict, self.seen = embodiment_tag, strict, None
        self.modality_configs = {k: ModalityConfig(**v) for k, v in
                                 processor["modality_configs"][embodiment_tag.value].items() if k != "rl_info"}
        keys = self.modality_configs["language"].modality_keys
        assert len(keys) >= 1, "At least one language key is required"
        self.language_key = keys[0]
        self.processor = types.SimpleNamespace(state_action_processor=types.SimpleNamespace(
            statistics=json.loads((path / "statistics.json").read_text())))
        torch.manual_seed(type(self).seed)
        self.model = Gr00tN1d7(config, len(self.modality_configs["video"].modality_keys)).eval()
        type(self).instances.append(self)

    def get_modality_config(self) -> dict:
        return self.modality_configs

    def check_observation(self, observation: dict) -> None:
        configs = self.modality_configs
        for modality in ("video", "state"):
            for key in configs[modality].modality_keys:
                assert key in observation[modality], f"{modality} key '{key}' must be in observation"
                assert observation[modality][key].shape[1] == len(configs[modality].delta_indices), key
        for key in configs["language"].modality_keys:
            assert key in observation["language"], f"Language key '{key}' must be in observation"

    def get_action(self, observation: dict, options=None):
        if self.strict:
            self.check_observation(observation)
        self.seen = observation
        video = observation["video"]
        keys = self.modality_configs["video"].modality_keys
        pixels = np.stack([video[key][:, -1].mean(axis=(1, 2, 3)) / 255.0 for key in keys], axis=1)
        states = [observation["state"][k] for k in self.modality_configs["state"].modality_keys]
        state = np.concatenate(states, axis=2)  # (B, T, D)
        size = state.shape[0]
        image_mask = torch.zeros(size, VL_TOKENS, dtype=torch.bool)
        image_mask[:, : VL_TOKENS // 2] = True
        attention = torch.ones(size, VL_TOKENS, dtype=torch.bool)
        attention[:, -1] = False
        with torch.inference_mode():
            backbone_output = self.model.backbone(torch.as_tensor(pixels, dtype=torch.float32))
            backbone_output.update(image_mask=image_mask, backbone_attention_mask=attention)
            action_input = {"state": torch.as_tensor(state, dtype=torch.float32),
                            "embodiment_id": torch.full((size,), 10, dtype=torch.long)}
            out = self.model.action_head.get_action(backbone_output, action_input, options)
        pred = out["action_pred"].float().numpy()
        decoded = state[:, -1:, :] + np.clip(DELTA_SCALE * pred, -DELTA_CLIP, DELTA_CLIP)
        groups, start = {}, 0
        for key, part in zip(self.modality_configs["state"].modality_keys, states):
            groups[key] = decoded[:, :, start:start + part.shape[2]].astype(np.float32)
            start += part.shape[2]
        return groups, {}


class EmbodimentTag(enum.Enum):
    NEW_EMBODIMENT = TAG
    GR1 = "gr1"


def install_gr00t(monkeypatch, root: Path, module: str = "gr00t_n1d7", policy=Gr00tPolicyN1d7) -> Path:
    """A stand-in installed Isaac-GR00T: package `gr00t` at root/gr00t holding gr00t/model/<module>/
    (what tells the generation), its Gr00tPolicy the double. Undone by monkeypatch."""
    package = Path(root) / "gr00t"
    (package / "model" / module).mkdir(parents=True, exist_ok=True)
    modules = {name: types.ModuleType(name) for name in ("gr00t", "gr00t.data", "gr00t.data.embodiment_tags",
                                                         "gr00t.policy", "gr00t.policy.gr00t_policy")}
    modules["gr00t"].__path__ = [str(package)]
    modules["gr00t.data.embodiment_tags"].EmbodimentTag = EmbodimentTag
    modules["gr00t.policy.gr00t_policy"].Gr00tPolicy = policy
    for name, value in modules.items():
        monkeypatch.setitem(sys.modules, name, value)
    monkeypatch.setattr(Gr00tPolicyN1d7, "instances", [])
    return package


def export_dit_like_n1d7(dit: nn.Module, path, config: Gr00tN1d7Config | None = None, batch: int = 1):
    """export_onnx_n1d7.py's export_dit_to_onnx, fp32: its positional inputs (the masks passed on by keyword),
    legacy exporter, opset 19, only vl_seq_len dynamic, the batch fixed."""
    config = config or Gr00tN1d7Config()
    dit = copy.deepcopy(dit).float().eval()
    sa_len = 1 + config.action_horizon
    args = (torch.randn(batch, sa_len, SA_DIM), torch.randn(batch, VL_TOKENS, VL_DIM),
            torch.ones(batch, dtype=torch.int64), torch.ones(batch, VL_TOKENS, dtype=torch.bool),
            torch.ones(batch, VL_TOKENS, dtype=torch.bool))
    names = ["sa_embs", "vl_embs", "timestep", "image_mask", "backbone_attention_mask"]
    axes = {"vl_embs": {1: "vl_seq_len"}, "image_mask": {1: "vl_seq_len"}, "backbone_attention_mask": {1: "vl_seq_len"}}
    with torch.inference_mode():
        torch.onnx.export(ExportWrapper(dit), args, str(path), input_names=names, output_names=["output"],
                          dynamic_axes=axes, opset_version=19, do_constant_folding=True, dynamo=False)
    return Path(path)
