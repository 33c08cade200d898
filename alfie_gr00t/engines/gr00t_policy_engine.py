"""Isaac-GR00T adapter: run a fine-tuned checkpoint directory in-process via `Gr00tPolicy`.

The two conversion functions are pure (no gr00t import) so they are tested without
torch: the server's `ObservationBatch` becomes Gr00tPolicy's nested observation
(video (B,1,H,W,3) uint8, state (B,1,D) float32 per layout group, language [[text]]),
and its per-group action dict becomes one (B, horizon, 21) chunk. Camera -> video key
and layout group -> state/action key mappings come from the EngineConfig.

The checkpoint is the truth (`adopt_layout`): at load the engine reads the checkpoint's
modality config and statistics, adopts whatever the parameters leave at their defaults
(language key, video keys by camera name, state/action groups with sizes) and
refuses, naming both sides, what contradicts it. `engine.layout` is what it serves.

With use_tensorrt (or dit_engine_path) the DiT action head runs in an engine (dit_swap.py: TensorRT in
trt_dit.py, ONNX Runtime in ort_dit.py), the way
NVIDIA deploys N1.6; the backbone stays in PyTorch bf16.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.engines import gr00t_generation
from alfie_gr00t.engines.base import (Engine, EngineConfig, EngineError, EngineOutput, ObservationBatch,
                                     stage_split)

log = logging.getLogger(__name__)


_INSTALL_GR00T = ("install Isaac-GR00T: git clone https://github.com/NVIDIA/Isaac-GR00T && pip install -e "
                  "Isaac-GR00T (needs torch with CUDA)")


def to_gr00t_observation(batch: ObservationBatch, config: EngineConfig, language_keys=()) -> dict:
    """ObservationBatch -> {'video': ..., 'state': ..., 'language': ...} for Gr00tPolicy.get_action.

    The text goes under `config.language_key` and under each of `language_keys` (a checkpoint with
    several: N1.7's Gr00tPolicy checks that every one is present and reads the first)."""
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
    language = {key: [[str(text)] for text in batch.language]
                for key in dict.fromkeys((config.language_key, *language_keys))}
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


@dataclass(frozen=True)
class ModelLayout:
    """The layout an engine serves: language key, one video key per camera (camera order), the
    state/action groups in the order the 21-D vector is read, where it came from ("checkpoint" or
    "parameters"), which parameters were adopted from the checkpoint, and all the checkpoint's
    language keys (the first is `language_key`; the text is sent under each)."""

    language_key: str
    video_keys: tuple[str, ...]
    groups: tuple[layout.LayoutGroup, ...]
    source: str = "parameters"
    adopted: tuple[str, ...] = ()
    language_keys: tuple[str, ...] = ()


_DEFAULTS = EngineConfig()
_FIX_STEPS = "this server sends one frame per camera and one state per request: fine-tune with delta_indices [0]"
# Modalities a checkpoint may carry that serving never reads (N1.7's Gr00tPolicy drops rl_info too).
IGNORED_MODALITIES = ("rl_info",)
_SERVED_MODALITIES = ("video", "state", "action", "language")


def _keys(modality_configs: dict, modality: str) -> list[str]:
    entry = modality_configs.get(modality)
    if entry is None:
        raise EngineError(f"the checkpoint's modality config has no '{modality}' modality "
                          f"(it has {sorted(modality_configs)}); is it an Isaac-GR00T N1.6 or N1.7 checkpoint?")
    return [str(k) for k in entry.modality_keys]


def _steps(modality_configs: dict, modality: str) -> int:
    return len(getattr(modality_configs[modality], "delta_indices", None) or [0])


def _stat_dim(stats) -> int | None:
    """A group's size from its statistics entry ({"min": [...], "max": [...], "mean": ..., ...})."""
    if not isinstance(stats, dict):
        return None
    for name in ("max", "min", "mean", "std", "q99", "q01"):
        if name in stats:
            return int(np.asarray(stats[name]).reshape(-1).shape[0])
    return None


def _checkpoint_groups(keys: list[str], statistics: dict | None, modality: str) -> dict[str, int | None]:
    table = (statistics or {}).get(modality) or {}
    return {key: _stat_dim(table.get(key)) for key in keys}


def _fmt_groups(groups) -> str:
    return "[" + ", ".join(f"{name} {size if size is not None else '?'}" for name, size in groups) + "]"


def adopt_layout(modality_configs: dict, statistics: dict | None, config: EngineConfig,
                 state_history_length: int = 1) -> tuple[EngineConfig, ModelLayout]:
    """The checkpoint's layout applied to `config` (pure: no gr00t import, nothing loaded).

    `modality_configs` is `Gr00tPolicy.get_modality_config()` (per modality an object with
    `.modality_keys` and `.delta_indices`; an `rl_info` entry is ignored); `statistics` is this
    embodiment's entry of the checkpoint's statistics.json ({"state": {group: {"min": [...], ...}},
    "action": {...}}), or None when the checkpoint has none (sizes then cannot be checked);
    `state_history_length` is N1.7's `action_head.config.state_history_length` (states the action
    head takes per observation; N1.6 has none: 1).

    Several language keys are accepted as N1.7's Gr00tPolicy accepts them: it reads the first
    (the others are paraphrase keys for training), so the first is the one adopted or checked.

    A parameter still at its default (language_key "task"; video_keys equal to camera_names,
    i.e. each camera feeds the video key of its own name; the Alfie state groups) takes the
    checkpoint's value; one set to anything else must agree with the checkpoint. Every refusal
    is one EngineError naming both sides and the fix. Groups: another robot's groups are adopted
    with their sizes and order (that order is then the 21-D vector's); the Alfie groups listed in
    another order keep the parameters' order, since Gr00tPolicy takes state and action by group
    name and the robot's vector (the client's joint_names) must not be re-wired by a list order.
    """
    problems: list[str] = []
    adopted: list[str] = []
    keys = {m: _keys(modality_configs, m) for m in _SERVED_MODALITIES}
    unread = [m for m in modality_configs if m not in _SERVED_MODALITIES + IGNORED_MODALITIES]
    if unread:
        log.warning("the checkpoint's modality config also has %s, which this server never sends", unread)
    for modality in ("video", "state"):
        steps = _steps(modality_configs, modality)
        if steps != 1:
            problems.append(f"checkpoint's {modality} uses {steps} time steps "
                            f"(delta_indices {list(modality_configs[modality].delta_indices)}); {_FIX_STEPS}")
    if int(state_history_length) > 1:
        problems.append(f"checkpoint's action head takes {int(state_history_length)} states per observation "
                        f"(state_history_length {int(state_history_length)}); this server sends one state per "
                        "request: fine-tune with state_history_length 1")
    horizon = len(getattr(modality_configs["action"], "delta_indices", None) or [])
    if horizon and horizon < config.action_horizon:
        problems.append(f"checkpoint predicts {horizon} action steps, action_horizon is {config.action_horizon}: "
                        f"set action_horizon:={horizon} (server and client)")

    # language
    language_key = config.language_key
    theirs = keys["language"]
    if len(theirs) > 1:
        log.info("the checkpoint has %d language keys %s; Gr00tPolicy reads the first, '%s' (the task text is "
                 "sent under each)", len(theirs), theirs, theirs[0])
    if not theirs:
        problems.append("checkpoint's language modality has no keys; Gr00tPolicy needs at least one")
    elif config.language_key == _DEFAULTS.language_key:
        if theirs[0] != language_key:
            adopted.append("language_key")
        language_key = theirs[0]
    elif config.language_key != theirs[0]:
        first = f" (the first of {theirs}, the one Gr00tPolicy reads)" if len(theirs) > 1 else ""
        problems.append(f"language_key: parameter '{config.language_key}', checkpoint '{theirs[0]}'{first} "
                        f"(set language_key:={theirs[0]}, or leave it at its default '{_DEFAULTS.language_key}' "
                        "to adopt the checkpoint's)")

    # video: by camera name unless video_keys maps cameras explicitly
    cameras = list(config.camera_names)
    video_keys = list(config.video_keys)
    if video_keys == cameras:
        missing = [c for c in cameras if c not in keys["video"]]
        unused = [k for k in keys["video"] if k not in cameras]
        if missing:
            problems.append(f"camera(s) {missing} have no video key in the checkpoint (its video keys: "
                            f"{keys['video']}): remove them from camera_names (server and client) or map each "
                            "camera to a checkpoint key with video_keys (one per camera, same order)")
        if unused and not missing:
            problems.append(f"checkpoint video key(s) {unused} have no camera (camera_names {cameras}): add a camera "
                            "of that name, or map the cameras with video_keys")
    elif sorted(video_keys) != sorted(keys["video"]):
        problems.append(f"video_keys: parameter {video_keys} (for cameras {cameras}), checkpoint {keys['video']} "
                        "(list one checkpoint key per camera, or set video_keys equal to camera_names to map "
                        "cameras by name)")

    # state / action groups and their sizes
    state = _checkpoint_groups(keys["state"], statistics, "state")
    action = _checkpoint_groups(keys["action"], statistics, "action")
    groups = tuple(config.state_groups)
    if set(state) != set(action):
        problems.append(f"checkpoint's state keys {keys['state']} and action keys {keys['action']} differ; this "
                        "server reads one 21-D layout for state and action")
    else:
        for name in state:
            if state[name] is not None and action[name] is not None and state[name] != action[name]:
                problems.append(f"checkpoint's group '{name}' has state size {state[name]} but action size "
                                f"{action[name]} (statistics.json); this server needs equal sizes")
        sizes = {name: state[name] if state[name] is not None else action[name] for name in state}
        ours = [(g.name, g.size) for g in groups]
        ckpt = [(name, sizes[name]) for name in keys["state"]]
        if tuple(groups) == tuple(_DEFAULTS.state_groups):
            if any(size is None for _, size in ckpt):
                by_name = dict(ours)
                if set(sizes) == set(by_name):  # the same names: our sizes where the checkpoint has none
                    ckpt = [(name, by_name[name] if size is None else size) for name, size in ckpt]
                    log.warning("the checkpoint has no statistics for %s: state/action sizes are not checked",
                                [n for n, s in sizes.items() if s is None])
                else:
                    problems.append(f"checkpoint groups {_fmt_groups(ckpt)} have no sizes in its statistics.json: "
                                    "set state_group_names and state_group_sizes")
            if all(size is not None for _, size in ckpt):
                total = sum(size for _, size in ckpt)
                if total != config.action_dim:
                    problems.append(f"checkpoint groups {_fmt_groups(ckpt)} add up to {total} dims, action_dim is "
                                    f"{config.action_dim}: set action_dim:={total} (server and client, with "
                                    f"{total} joint_names and limits) or use a checkpoint for this robot")
                elif sorted(ckpt) == sorted(ours):
                    # The same groups in another order: Gr00tPolicy takes them by name, so the model sees the
                    # same inputs either way; the robot's 21-D order (the client's joint_names) stays.
                    if ckpt != ours:
                        log.info("the checkpoint lists the groups %s; served in the parameters' order %s (the "
                                 "policy takes them by name)", [n for n, _ in ckpt], [n for n, _ in ours])
                else:
                    groups = layout.groups_from_sizes([n for n, _ in ckpt], [s for _, s in ckpt])
                    adopted.append("state_groups")
        else:
            if sorted(name for name, _ in ours) != sorted(sizes):
                problems.append(f"state groups: parameters {_fmt_groups(ours)}, checkpoint {_fmt_groups(ckpt)} "
                                "(set state_group_names/state_group_sizes to the checkpoint's groups, or leave both "
                                "at their defaults to adopt them)")
            else:
                wrong = [(name, size, sizes[name]) for name, size in ours
                         if sizes[name] is not None and sizes[name] != size]
                for name, size, theirs_size in wrong:
                    problems.append(f"state group '{name}': parameter size {size}, checkpoint size {theirs_size} "
                                    f"(statistics.json): set its entry of state_group_sizes to {theirs_size}")
    if problems:
        raise EngineError("the Isaac-GR00T checkpoint does not fit the server's parameters: " + "; ".join(problems))
    cameras_keys = tuple(video_keys)
    adopted_config = dataclasses.replace(config, language_key=language_key, video_keys=cameras_keys, state_groups=groups)
    return adopted_config, ModelLayout(language_key, cameras_keys, groups, "checkpoint", tuple(adopted), tuple(theirs))


def checkpoint_statistics(policy, embodiment_tag: str, checkpoint: Path) -> dict | None:
    """This embodiment's statistics as Gr00tPolicy holds them (processor.state_action_processor.statistics,
    read from the checkpoint's statistics.json), else that file itself; None when neither exists."""
    processor = getattr(getattr(policy, "processor", None), "state_action_processor", None)
    table = getattr(processor, "statistics", None)
    if not isinstance(table, dict) or not table:
        path = Path(checkpoint) / "statistics.json"
        if not path.is_file():
            return None
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot read {path}: {exc}") from exc
    entry = table.get(embodiment_tag)
    if entry is None:
        raise EngineError(f"the checkpoint's statistics have no embodiment '{embodiment_tag}' (they have "
                          f"{sorted(table)}): set embodiment_tag to the one it was fine-tuned with")
    return entry


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


def set_denoising_steps(policy, steps: int) -> int | None:
    """Set the flow-matching step count (N1.6 and N1.7 keep it on model.action_head.num_inference_timesteps;
    steps <= 0 keeps the checkpoint's) and return the count that runs, None when the policy has none."""
    head = getattr(getattr(policy, "model", None), "action_head", None)
    if head is None or not hasattr(head, "num_inference_timesteps"):
        log.warning("this Gr00tPolicy exposes no action_head.num_inference_timesteps; denoising_steps=%d ignored", steps)
        return None
    if steps > 0:
        head.num_inference_timesteps = int(steps)
    return int(head.num_inference_timesteps)


def load_adopted(config: EngineConfig, model_path: str | os.PathLike | None = None):
    """(torch, Gr00tPolicy, the config with the checkpoint's layout adopted, ModelLayout)."""
    torch, Gr00tPolicy, EmbodimentTag = _import_gr00t()
    path = Path(model_path or config.model_checkpoint)
    generation = gr00t_generation.require_match(path)  # before upstream fails deep inside transformers
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device '{config.device}' requested but torch sees no CUDA GPU: fix the NVIDIA "
                          "driver / install a CUDA build of torch, or set device:=cpu (slow)")
    try:
        policy = Gr00tPolicy(embodiment_tag=_embodiment(EmbodimentTag, config.embodiment_tag),
                             model_path=str(path), device=config.device)
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"Isaac-GR00T could not load {path}: {type(exc).__name__}: {exc}"
                          f"{_backbone_hint(generation, path, exc)}") from exc
    tag = getattr(getattr(policy, "embodiment_tag", None), "value", None) or config.embodiment_tag
    statistics = checkpoint_statistics(policy, str(tag), path)
    adopted, model_layout = adopt_layout(policy.get_modality_config(), statistics, config,
                                         state_history_length(policy))
    return torch, policy, adopted, model_layout


def state_history_length(policy) -> int:
    """States per observation the action head takes: N1.7's `action_head.config.state_history_length`
    (upstream's spelling), 1 where the policy has none (N1.6)."""
    head_config = getattr(getattr(getattr(policy, "model", None), "action_head", None), "config", None)
    return int(getattr(head_config, "state_history_length", 1) or 1)


def _backbone_hint(generation, checkpoint: Path, exc: Exception) -> str:
    """What to do when an N1.7 checkpoint's hub backbone could not be had (upstream loads it with
    from_pretrained each time; offline, or the hub unreachable, that is an OSError)."""
    if generation is None or not generation.backbone or not isinstance(exc, OSError):
        return ""
    names = ", ".join(dict.fromkeys(gr00t_generation.backbone_names(checkpoint).values()))
    return (f". An Isaac-GR00T {generation.name} checkpoint loads its backbone {names} with from_pretrained at "
            "every start: download it once where there is network (hf download <name>) into the Hugging Face "
            "cache this machine uses, then run with HF_HUB_OFFLINE=1; groot_doctor --checkpoint says whether it is "
            "found (docs/checkpoint.md)")


def open_dit_engine(config: EngineConfig, checkpoint: Path):
    """The DiT engine for `checkpoint` -- TensorRT or ONNX Runtime, chosen by dit_swap.select_dit_file --
    or None for eager PyTorch (EngineError naming the missing piece)."""
    from alfie_gr00t.engines import dit_swap

    on_gpu = config.device.startswith("cuda")
    if not on_gpu and not config.dit_engine_path and (config.use_tensorrt or config.tensorrt_engine_path):
        raise EngineError(f"use_tensorrt needs an NVIDIA GPU but device is '{config.device}': set device:=cuda:0 "
                          "or use_tensorrt:=false (an ONNX DiT runs on CPU: dit_engine_path:=<dit_model_fp32.onnx>)")
    chosen = dit_swap.select_dit_file(checkpoint, dit_engine_path=config.dit_engine_path,
                                      tensorrt_engine_path=config.tensorrt_engine_path,
                                      use_tensorrt=config.use_tensorrt)
    if chosen is None:
        return None
    path, backend = chosen
    if backend == "onnxruntime":
        from alfie_gr00t.engines import ort_dit

        return ort_dit.OrtDiT(path, config.device)
    from alfie_gr00t.engines import trt_dit

    if not on_gpu:
        raise EngineError(f"dit_engine_path {path} is a TensorRT engine, which needs an NVIDIA GPU, but device is "
                          f"'{config.device}': set device:=cuda:0, or name an ONNX DiT (.onnx) for ONNX Runtime")
    return trt_dit.DiTEngine(path, config.device, torch=trt_dit.import_torch())


class Gr00tPolicyEngine(Engine):
    name = "gr00t_policy"
    max_batch_size = 8

    def __init__(self, config: EngineConfig, model_path: str | os.PathLike | None = None):
        _import_gr00t()  # say what is missing before looking for engines
        self._config = config
        self._path = Path(model_path or config.model_checkpoint)
        gr00t_generation.require_match(self._path)  # an N1.7 checkpoint on an N1.6 install, or the reverse
        dit = open_dit_engine(config, self._path)  # None: eager PyTorch; fail fast, before the slow load
        torch, self._policy, self._config, self.layout = load_adopted(config, self._path)
        self._install(torch, dit)

    @classmethod
    def from_policy(cls, policy, config: EngineConfig, model_path: str | os.PathLike | None = None):
        """An engine on an already loaded Gr00tPolicy (or a double with its API, tools/policy_double.py):
        the layout adopted from the policy's modality config and statistics, the DiT as `config` says."""
        from alfie_gr00t.engines import dit_swap

        self = cls.__new__(cls)
        self._path = Path(model_path or config.model_checkpoint or ".")
        dit = open_dit_engine(config, self._path)
        tag = getattr(getattr(policy, "embodiment_tag", None), "value", None) or config.embodiment_tag
        statistics = checkpoint_statistics(policy, str(tag), self._path)
        self._config, self.layout = adopt_layout(policy.get_modality_config(), statistics, config,
                                                 state_history_length(policy))
        self._policy = policy
        self._install(dit_swap.import_torch(), dit)
        return self

    def _install(self, torch, dit) -> None:
        """Denoising steps, the DiT swap and the real-time-chunking hook on the loaded policy."""
        from alfie_gr00t.engines import rtc, trt_dit

        config = self._config
        self.denoising_steps = set_denoising_steps(self._policy, config.denoising_steps)
        self.tensorrt = {}
        if dit is not None:
            self.tensorrt = trt_dit.install_dit_engine(self._policy, dit)
            trt_dit.free_pytorch_dit(self._policy, torch)
            # larger batches would fall outside the engine's profile; run_batched splits them
            self.max_batch_size = max(1, min(type(self).max_batch_size, dit.max_batch))
        self._rtc = rtc.Inpainter(self._policy, config, torch)
        self.inpaints = self._rtc.inpaints
        if self._rtc.unavailable:
            log.warning("real-time chunking unavailable: %s (requests' action prefixes are ignored)",
                        self._rtc.unavailable)
        log.info("Isaac-GR00T policy %s on %s (embodiment %s, denoising steps %s, DiT in %s, real-time chunking %s)",
                 self._path, config.device, config.embodiment_tag, self.denoising_steps,
                 self.tensorrt.get("dit_backend", "PyTorch"), "on" if self.inpaints else "off")

    def infer(self, batch: ObservationBatch) -> EngineOutput:
        start = time.perf_counter()
        observation = to_gr00t_observation(batch, self._config, getattr(self.layout, "language_keys", ()))
        prepared = time.perf_counter()
        plan, rows = self._rtc.plan(batch)
        try:
            if plan is None:
                action, _info = self._policy.get_action(observation, None)
            else:
                with self._rtc.hook.active(plan):
                    action, _info = self._policy.get_action(observation, None)
        except Exception as exc:
            raise EngineError(f"Gr00tPolicy.get_action failed: {type(exc).__name__}: {exc}") from exc
        ran = time.perf_counter()
        chunk = self._rtc.restore_clipped(from_gr00t_action(action, self._config), batch, rows)
        done = time.perf_counter()
        return EngineOutput(chunk, stage_split(start, prepared, ran, done), tuple(r.report() for r in rows))

    def close(self) -> None:
        self._policy = None

    def describe(self) -> dict:
        return {"backend": "gr00t_policy", "tensorrt": self.tensorrt.get("dit_backend") == "tensorrt",
                "dit_backend": self.tensorrt.get("dit_backend", "pytorch"), "model": str(self._path),
                "device": self._config.device, "embodiment_tag": self._config.embodiment_tag,
                "denoising_steps": self.denoising_steps, "max_batch_size": self.max_batch_size,
                "rtc": self._rtc.describe(), **self.tensorrt}
