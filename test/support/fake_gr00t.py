"""A stand-in for Isaac-GR00T (it cannot be installed here): `gr00t.policy.gr00t_policy.Gr00tPolicy`
as `FakePolicy`, with upstream's constructor, `get_modality_config()`, `get_action()` and the
attributes the deployment code touches, plus the modality configs and statistics an N1.6
checkpoint carries."""

import enum
import sys
import types
from types import SimpleNamespace

import numpy as np

from alfie_gr00t import layout

GROUPS = layout.LAYOUT_GROUPS


def modality(keys, steps=1):
    """Upstream's ModalityConfig (gr00t/data/types.py): delta_indices and modality_keys."""
    return SimpleNamespace(modality_keys=list(keys), delta_indices=list(range(steps)))


UPSTREAM_LANGUAGE_KEY = "annotation.human.task_description"


def upstream_modalities(video=layout.CAMERA_NAMES, state_steps=1, language=UPSTREAM_LANGUAGE_KEY, groups=None,
                        video_steps=1, action_steps=16):
    names = [name for name, _ in (groups or [(g.name, g.size) for g in GROUPS])]
    return {"video": modality(video, video_steps), "state": modality(names, state_steps),
            "action": modality(names, action_steps), "language": modality([language])}


def upstream_statistics(groups=None, action_groups=None):
    """One embodiment's entry of statistics.json as Gr00tN1d6Processor saves it (StateActionProcessor
    .statistics[tag]): per modality, per group, min/max/mean/std/q01/q99 lists of the group's size."""
    def table(pairs):
        return {name: {stat: [float(v)] * size for stat, v in
                       (("min", -1), ("max", 1), ("mean", 0), ("std", 0.5), ("q01", -0.9), ("q99", 0.9))}
                for name, size in pairs}

    groups = groups or [(g.name, g.size) for g in GROUPS]
    return {"state": table(groups), "action": table(action_groups or groups), "relative_action": table(groups)}


class FakeTag(enum.Enum):
    GR1 = "gr1"
    NEW_EMBODIMENT = "new_embodiment"


class FakeDiT:
    """Isaac-GR00T's `AlternateVLDiT.forward` signature (gr00t/model/modules/dit.py), the DiT an
    N1.6 checkpoint with `use_alternate_vl_dit` builds; `kv_cache` is in newer upstream."""

    def forward(self, hidden_states, encoder_hidden_states, timestep=None, encoder_attention_mask=None,
                return_all_hidden_states=False, image_mask=None, backbone_attention_mask=None, kv_cache=None):
        return hidden_states

    def __call__(self, *args, **kwargs):  # nn.Module.__call__: an instance's own `forward` wins
        return self.forward(*args, **kwargs)

    def parameters(self):
        return iter(())


class FakeTensor:
    """Just enough of a torch tensor for the DiT swap: a dtype name and the casts used."""

    def __init__(self, name, dtype="bfloat16"):
        self.name, self.dtype = name, dtype

    def to(self, dtype):
        return FakeTensor(f"{self.name}->{dtype}", dtype)

    def float(self):
        return self.to("float32")

    def clone(self):
        return FakeTensor(f"{self.name}.clone", self.dtype)


class FakeModule:
    """An action encoder / decoder: `forward` replaceable per instance, bf16 parameters."""

    def __init__(self):
        self.calls = []

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, x, *args):
        self.calls.append((x, args))
        return FakeTensor(f"{type(self).__name__}({x.name})", x.dtype)

    def parameters(self):
        return iter([FakeTensor("weight", "bfloat16")])


class FakePolicy:
    """Fake Isaac-GR00T Gr00tPolicy (gr00t/policy/gr00t_policy.py): same constructor
    (embodiment_tag, model_path, *, device, strict=True), `get_action(observation, options=None)`
    -> (action_dict, info) with bare group keys and float32 (B, H, D) arrays, and the
    `model.action_head.{num_inference_timesteps, model, action_encoder, action_decoder}` attributes
    of `Gr00tN1d6ActionHead` (gr00t/model/gr00t_n1d6/gr00t_n1d6.py) the deployment code touches."""

    instances = []
    modalities = None  # a test sets these to stand for another checkpoint
    statistics = None

    def __init__(self, embodiment_tag, model_path, *, device, strict=True):
        self.args = dict(embodiment_tag=embodiment_tag, model_path=model_path, device=device)
        self.model = SimpleNamespace(action_head=SimpleNamespace(
            num_inference_timesteps=4, model=FakeDiT(), action_encoder=FakeModule(), action_decoder=FakeModule()))
        self.embodiment_tag = embodiment_tag
        self.modality_configs = FakePolicy.modalities or upstream_modalities()
        # processor.state_action_processor.statistics: {tag: {modality: {group: {stat: [...]}}}}, from statistics.json
        self.processor = SimpleNamespace(state_action_processor=SimpleNamespace(
            statistics={embodiment_tag.value: FakePolicy.statistics or upstream_statistics()}))
        self.seen = None
        FakePolicy.instances.append(self)

    def get_modality_config(self):
        return self.modality_configs

    def check_observation(self, observation):
        """Upstream's checks (AssertionError, as upstream raises), plus the size check its
        normalisation would fail on."""
        configs = self.modality_configs
        for key in configs["video"].modality_keys:
            assert key in observation["video"], f"Video key '{key}' must be in observation"
            assert observation["video"][key].shape[1] == len(configs["video"].delta_indices)
        stats = self.processor.state_action_processor.statistics[self.embodiment_tag.value]["state"]
        for key in configs["state"].modality_keys:
            assert key in observation["state"], f"State key '{key}' must be in observation"
            assert observation["state"][key].shape[2] == len(stats[key]["min"]), f"state '{key}' size"
        for key in configs["language"].modality_keys:
            assert key in observation["language"], f"Language key '{key}' must be in observation"

    def get_action(self, observation, options=None):
        self.check_observation(observation)
        self.seen = observation
        return {k: np.repeat(v, 16, axis=1).astype(np.float32) for k, v in observation["state"].items()}, {}


def install_fake_gr00t(monkeypatch):
    """Stand-in `torch` / `gr00t` modules whose Gr00tPolicy is FakePolicy (undone by monkeypatch)."""
    torch = types.ModuleType("torch")
    torch.cuda = SimpleNamespace(is_available=lambda: False)
    modules = {
        "torch": torch,
        "gr00t": types.ModuleType("gr00t"),
        "gr00t.data": types.ModuleType("gr00t.data"),
        "gr00t.data.embodiment_tags": types.ModuleType("gr00t.data.embodiment_tags"),
        "gr00t.policy": types.ModuleType("gr00t.policy"),
        "gr00t.policy.gr00t_policy": types.ModuleType("gr00t.policy.gr00t_policy"),
    }
    modules["gr00t.data.embodiment_tags"].EmbodimentTag = FakeTag
    modules["gr00t.policy.gr00t_policy"].Gr00tPolicy = FakePolicy
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    FakePolicy.instances.clear()
    monkeypatch.setattr(FakePolicy, "modalities", None)
    monkeypatch.setattr(FakePolicy, "statistics", None)
    return FakePolicy
