"""An Isaac-GR00T N1.7 checkpoint directory as upstream saves one (Isaac-GR00T main, commit 626af89), without
torch: `config.json` (`model_type` and `architectures` "Gr00tN1d7", `model_name`
"nvidia/Cosmos-Reason2-2B", `state_history_length`, ...), `processor_config.json` (`processor_class`
"Gr00tN1d7Processor", `processor_kwargs.modality_configs` per embodiment, which may carry an `rl_info`
entry, and the backbone's `model_name`), `statistics.json`, `embodiment_id.json`, `model*.safetensors`
(a placeholder: the policy double seeds its own weights). `ModalityConfig` and `Gr00tN1d7Config` carry
upstream's field names (gr00t/data/types.py, as support/gr00t_wire.py has it, and
gr00t/configs/model/gr00t_n1d7.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alfie_gr00t import layout
from support.gr00t_wire import ModalityConfig  # upstream's gr00t/data/types.py ModalityConfig

TAG = "new_embodiment"
LANGUAGE_KEYS = ("annotation.human.task_description", "annotation.human.coarse_action")


@dataclass
class Gr00tN1d7Config:
    """The fields of gr00t/configs/model/gr00t_n1d7.py the deployment code reads, sized for a CPU test."""

    model_type: str = "Gr00tN1d7"
    model_name: str = "nvidia/Cosmos-Reason2-2B"
    backbone_model_type: str = "qwen"
    max_state_dim: int = layout.ACTION_DIM
    max_action_dim: int = layout.ACTION_DIM
    action_horizon: int = layout.ACTION_HORIZON
    hidden_size: int = 1024  # upstream's defaults, recorded only: the policy double's DiT has its own small sizes
    input_embedding_dim: int = 1536
    backbone_embedding_dim: int = 2048
    state_history_length: int = 1
    add_pos_embed: bool = True
    max_seq_len: int = 64
    use_alternate_vl_dit: bool = True
    num_inference_timesteps: int = 4
    num_timestep_buckets: int = 1000
    architectures: list = field(default_factory=lambda: ["Gr00tN1d7"])


def modality_configs(language_keys=LANGUAGE_KEYS, state_steps: int = 1, rl_info: bool = True) -> dict:
    """One embodiment's modality configs as an N1.7 fine-tune of the Alfie robot saves them."""
    groups = [g.name for g in layout.LAYOUT_GROUPS]
    configs = {"video": ModalityConfig([0], list(layout.CAMERA_NAMES)),
               "state": ModalityConfig(list(range(1 - state_steps, 1)), groups),
               "action": ModalityConfig(list(range(layout.ACTION_HORIZON)), groups),
               "language": ModalityConfig([0], list(language_keys))}
    if rl_info:
        configs["rl_info"] = ModalityConfig([0], ["reward"])
    return configs


def statistics() -> dict:
    table = {g.name: {s: [v] * g.size for s, v in (("min", -1.0), ("max", 1.0), ("mean", 0.0), ("std", 0.5),
                                                   ("q01", -0.9), ("q99", 0.9))} for g in layout.LAYOUT_GROUPS}
    return {TAG: {"state": table, "action": table, "relative_action": table}}


def write_checkpoint(path: Path, config: Gr00tN1d7Config | None = None, configs: dict | None = None,
                     model_type: str | None = None) -> Path:
    """A checkpoint directory with N1.7's files (weights are a placeholder: the double seeds its own)."""
    config = config or Gr00tN1d7Config()
    path.mkdir(parents=True, exist_ok=True)
    saved = {**asdict(config), "transformers_version": "4.57.3"}
    if model_type:  # another generation's checkpoint
        saved.update(model_type=model_type, architectures=[model_type])
    (path / "config.json").write_text(json.dumps(saved))
    configs = configs or modality_configs()
    (path / "processor_config.json").write_text(json.dumps({
        "processor_class": "Gr00tN1d7Processor",
        "processor_kwargs": {"modality_configs": {TAG: {m: asdict(c) for m, c in configs.items()}},
                             "model_name": config.model_name, "model_type": "qwen"}}))
    (path / "statistics.json").write_text(json.dumps(statistics()))
    (path / "embodiment_id.json").write_text(json.dumps({TAG: 10}))
    (path / "model-00001-of-00001.safetensors").write_bytes(b"\0" * 8)
    return path
