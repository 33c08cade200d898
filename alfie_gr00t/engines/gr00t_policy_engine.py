"""Isaac-GR00T adapter: run a fine-tuned checkpoint directory in-process via `Gr00tPolicy`.

The two conversion functions are pure (no gr00t import) so they are tested without
torch: the server's `ObservationBatch` becomes Gr00tPolicy's nested observation
(video (B,1,H,W,3) uint8, state (B,1,D) float32 per layout group, language [[text]]),
and its per-group action dict becomes one (B, horizon, 21) chunk. Camera -> video key
and layout group -> state/action key mappings come from the EngineConfig.

With use_tensorrt the DiT action head runs in a TensorRT engine (trt_dit.py), the way
NVIDIA deploys N1.6; the backbone stays in PyTorch bf16.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from alfie_gr00t.engines.base import (Engine, EngineConfig, EngineError, EngineOutput, ObservationBatch,
                                     stage_split)

log = logging.getLogger(__name__)


_INSTALL_GR00T = ("install Isaac-GR00T: git clone https://github.com/NVIDIA/Isaac-GR00T && pip install -e "
                  "Isaac-GR00T (needs torch with CUDA)")


def to_gr00t_observation(batch: ObservationBatch, config: EngineConfig) -> dict:
    """ObservationBatch -> {'video': ..., 'state': ..., 'language': ...} for Gr00tPolicy.get_action."""
    if len(config.video_keys) != len(config.camera_names):
        raise EngineError(f"video_keys {list(config.video_keys)} must name one video key per camera "
                          f"{list(config.camera_names)}")
    size = batch.batch_size
    video = {}
    for camera, key in zip(config.camera_names, config.video_keys):
        if camera not in batch.images:
            raise EngineError(f"observation has no image for camera '{camera}' (got {sorted(batch.images)})")
        frames = np.asarray(batch.images[camera])
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != size or frames.shape[3] != 3:
            raise EngineError(f"camera '{camera}' image is {frames.dtype.name} {frames.shape}, expected uint8 ({size}, H, W, 3)")
        video[key] = np.ascontiguousarray(frames[:, None])
    state = np.asarray(batch.state, dtype=np.float32)
    if state.shape != (size, config.action_dim):
        raise EngineError(f"state has shape {state.shape}, expected ({size}, {config.action_dim})")
    groups = {g.name: np.ascontiguousarray(state[:, None, g.start:g.stop]) for g in config.state_groups}
    if len(batch.language) != size:
        raise EngineError(f"{len(batch.language)} language strings for {size} observations")
    language = {config.language_key: [[str(text)] for text in batch.language]}
    return {"video": video, "state": groups, "language": language}


def _group_action(action: dict, name: str) -> np.ndarray:
    for key in (name, f"action.{name}"):
        if key in action:
            return np.asarray(action[key])
    raise EngineError(f"policy returned no action for group '{name}' (keys: {sorted(action)})")


def from_gr00t_action(action: dict, config: EngineConfig) -> np.ndarray:
    """Gr00tPolicy's {group: (B, H, D)} actions -> (B, action_horizon, action_dim) float32."""
    horizon = config.action_horizon
    parts, size = [], None
    for group in config.state_groups:
        part = _group_action(action, group.name)
        if part.ndim == 2:  # an unbatched (H, D) answer
            part = part[None]
        if part.ndim != 3 or part.shape[2] != group.size or part.shape[1] < horizon:
            raise EngineError(f"action '{group.name}' has shape {part.shape}, expected (B, >={horizon}, {group.size})")
        if size is not None and part.shape[0] != size:
            raise EngineError(f"action '{group.name}' has batch {part.shape[0]}, other groups have {size}")
        size = part.shape[0]
        parts.append(part[:, :horizon].astype(np.float32))
    if not parts:
        raise EngineError("state_groups is empty: no action groups to read")
    chunk = np.concatenate(parts, axis=2)
    if chunk.shape[2] != config.action_dim:
        raise EngineError(f"action groups add up to {chunk.shape[2]} dims, action_dim is {config.action_dim}")
    if not np.all(np.isfinite(chunk)):
        raise EngineError("policy returned non-finite actions (NaN or Inf); refusing to serve them")
    return chunk


def check_modality_keys(modality_configs: dict, config: EngineConfig) -> None:
    """Compare the checkpoint's modality keys with ours and say exactly what differs."""
    ours = {
        "video": list(config.video_keys),
        "state": [g.name for g in config.state_groups],
        "action": [g.name for g in config.state_groups],
        "language": [config.language_key],
    }
    problems = []
    for modality, expected in ours.items():
        entry = modality_configs.get(modality)
        if entry is None:
            problems.append(f"checkpoint has no '{modality}' modality")
            continue
        theirs = list(entry.modality_keys)
        if sorted(theirs) != sorted(expected):
            problems.append(f"{modality} keys: checkpoint {theirs}, ours {expected}")
        steps = len(getattr(entry, "delta_indices", [0]))
        if modality in ("video", "state") and steps != 1:
            problems.append(f"{modality} uses {steps} time steps; this server sends 1")
    if problems:
        raise EngineError("Isaac-GR00T checkpoint does not match the robot layout: " + "; ".join(problems)
                          + " (set video_keys / state groups / language_key to the checkpoint's modality config)")


def _import_gr00t():
    try:
        import torch
    except ImportError as exc:
        raise EngineError(f"torch is not installed ({exc}): pip install torch, then {_INSTALL_GR00T}") from exc
    try:
        from gr00t.data.embodiment_tags import EmbodimentTag
        from gr00t.policy.gr00t_policy import Gr00tPolicy
    except ImportError as exc:
        raise EngineError(f"Isaac-GR00T (package 'gr00t') is not importable ({exc}): {_INSTALL_GR00T}") from exc
    return torch, Gr00tPolicy, EmbodimentTag


def _embodiment(EmbodimentTag, tag: str):
    try:
        return EmbodimentTag(tag)
    except ValueError:
        try:
            return EmbodimentTag[tag.upper()]
        except KeyError:
            valid = [t.value for t in EmbodimentTag]
            raise EngineError(f"embodiment_tag '{tag}' is unknown to this Isaac-GR00T; valid: {valid}") from None


def _set_denoising_steps(policy, steps: int) -> int | None:
    """N1.6 keeps the flow-matching step count on model.action_head.num_inference_timesteps."""
    head = getattr(getattr(policy, "model", None), "action_head", None)
    if head is None or not hasattr(head, "num_inference_timesteps"):
        log.warning("this Gr00tPolicy exposes no action_head.num_inference_timesteps; denoising_steps=%d ignored", steps)
        return None
    if steps > 0:
        head.num_inference_timesteps = int(steps)
    return int(head.num_inference_timesteps)


def load_policy(config: EngineConfig, model_path: str | os.PathLike | None = None):
    """(torch, Gr00tPolicy instance) with denoising steps applied, modality keys checked."""
    torch, Gr00tPolicy, EmbodimentTag = _import_gr00t()
    path = Path(model_path or config.model_checkpoint)
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device '{config.device}' requested but torch sees no CUDA GPU: fix the NVIDIA "
                          "driver / install a CUDA build of torch, or set device:=cpu (slow)")
    try:
        policy = Gr00tPolicy(embodiment_tag=_embodiment(EmbodimentTag, config.embodiment_tag),
                             model_path=str(path), device=config.device)
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"Isaac-GR00T could not load {path}: {type(exc).__name__}: {exc}") from exc
    check_modality_keys(policy.get_modality_config(), config)
    return torch, policy


def open_dit_engine(config: EngineConfig, checkpoint: Path):
    """The TensorRT DiT engine for `checkpoint` (EngineError naming the missing piece)."""
    from alfie_gr00t.engines import trt_dit

    if not config.device.startswith("cuda"):
        raise EngineError(f"use_tensorrt needs an NVIDIA GPU but device is '{config.device}': set device:=cuda:0 "
                          "or use_tensorrt:=false")
    path = trt_dit.find_dit_engine(checkpoint, config.tensorrt_engine_path)
    return trt_dit.DiTEngine(path, config.device, torch=trt_dit.import_torch())


class Gr00tPolicyEngine(Engine):
    name = "gr00t_policy"
    max_batch_size = 8

    def __init__(self, config: EngineConfig, model_path: str | os.PathLike | None = None):
        from alfie_gr00t.engines import trt_dit

        _import_gr00t()  # say what is missing before looking for engines
        self._config = config
        self._path = Path(model_path or config.model_checkpoint)
        dit = open_dit_engine(config, self._path) if config.use_tensorrt else None  # fail fast, before the slow load
        torch, self._policy = load_policy(config, self._path)
        self.denoising_steps = _set_denoising_steps(self._policy, config.denoising_steps)
        self.tensorrt = {}
        if dit is not None:
            self.tensorrt = trt_dit.install_dit_engine(self._policy, dit)
            trt_dit.free_pytorch_dit(self._policy, torch)
            # larger batches would fall outside the engine's profile; run_batched splits them
            self.max_batch_size = max(1, min(type(self).max_batch_size, dit.max_batch))
        log.info("Isaac-GR00T policy %s on %s (embodiment %s, denoising steps %s, DiT in %s)",
                 self._path, config.device, config.embodiment_tag, self.denoising_steps,
                 "TensorRT" if dit is not None else "PyTorch")

    def infer(self, batch: ObservationBatch) -> EngineOutput:
        start = time.perf_counter()
        observation = to_gr00t_observation(batch, self._config)
        prepared = time.perf_counter()
        try:
            action, _info = self._policy.get_action(observation, None)
        except Exception as exc:
            raise EngineError(f"Gr00tPolicy.get_action failed: {type(exc).__name__}: {exc}") from exc
        ran = time.perf_counter()
        chunk = from_gr00t_action(action, self._config)
        done = time.perf_counter()
        return EngineOutput(chunk, stage_split(start, prepared, ran, done))

    def close(self) -> None:
        self._policy = None

    def describe(self) -> dict:
        return {"backend": "gr00t_policy", "tensorrt": bool(self.tensorrt), "model": str(self._path),
                "device": self._config.device, "embodiment_tag": self._config.embodiment_tag,
                "denoising_steps": self.denoising_steps, "max_batch_size": self.max_batch_size, **self.tensorrt}
