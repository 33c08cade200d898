"""groot_doctor's Isaac-GR00T checks: which generation is installed and whether transformers fits it, and
a checkpoint directory: its files, its generation against the install, an N1.7 backbone available
offline, and its layout against the shipped parameters, judged by the server's own rule
(`gr00t_policy_engine.adopt_layout`). Nothing is imported from Isaac-GR00T and nothing is loaded.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from alfie_gr00t.engines import gr00t_generation as gen
from alfie_gr00t.tools.doctor_check import FAIL, OK, WARN, Check, major_minor

# What an N1.7 backbone needs at load: Qwen3VLForConditionalGeneration.from_pretrained (config and
# weights) and Qwen3VLProcessor.from_pretrained (image processor, tokenizer).
BACKBONE_FILES = ("config.json", "preprocessor_config.json", "tokenizer_config.json")
BACKBONE_WEIGHTS = ("model.safetensors.index.json", "model.safetensors")
_TRUE = ("1", "on", "yes", "true")
_FIX_INSTALL = ("git clone https://github.com/NVIDIA/Isaac-GR00T; check out main for N1.7 (Python 3.10, "
                "transformers 4.57.3) or the n1.6-release tag for N1.6; pip install -e Isaac-GR00T "
                "(Jetson: its scripts/deployment/orin/install_deps.sh)")


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_describe(directory: Path) -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        out = subprocess.run([git, "-C", str(directory), "describe", "--tags", "--always"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


# ------------------------------------------------------------------------- the install
def check_gr00t(where: Path | None = None, transformers: str | None = None) -> list[Check]:
    """The installed Isaac-GR00T (at `where`, default the importable one): its generation and transformers."""
    where = gen.package_dir() if where is None else Path(where)
    if where is None:
        return [Check(WARN, "Isaac-GR00T", "package 'gr00t' not found; needed only where groot_server loads a "
                      "checkpoint directory", _FIX_INSTALL)]
    described = _git_describe(where.parent)
    found = f"gr00t {_distribution_version('gr00t') or '?'} at {where}{', git ' + described if described else ''}"
    generations = gen.installed(where)
    if not generations:
        return [Check(FAIL, "Isaac-GR00T", f"{found} has neither gr00t/model/gr00t_n1d6 nor gr00t_n1d7 (an N1.5 or "
                      "older tree?)", _FIX_INSTALL)]
    names = ", ".join(f"{g.name} (gr00t.model.{g.module})" for g in generations)
    checks = [Check(OK, "Isaac-GR00T", f"{found}: {names} (importable; not loaded)")]
    for generation in generations:
        if sys.version_info[:2] not in generation.pythons:
            checks.append(Check(WARN, "Isaac-GR00T", f"{generation.name} asks for Python {generation.python} (its "
                                f"pyprojects), this is {sys.version_info[0]}.{sys.version_info[1]}",
                                f"a Python {generation.python} environment"))
    return checks + check_transformers(generations, transformers or _distribution_version("transformers"))


def check_transformers(generations, version: str | None) -> list[Check]:
    """transformers against what each installed generation pins (N1.7's Qwen3-VL needs 4.57 or later)."""
    checks = []
    for generation in generations:
        pin = f"pip install transformers=={generation.transformers}"
        needs = f"Isaac-GR00T {generation.name} pins transformers {generation.transformers}"
        if version is None:
            checks.append(Check(FAIL, "transformers", f"not installed; {needs}", pin))
        elif generation is gen.N1_7 and major_minor(version) < gen.N1_7_MIN_TRANSFORMERS:
            checks.append(Check(FAIL, "transformers", f"{version}: too old for {generation.name}'s Qwen3-VL backbone "
                                f"(needs 4.57 or later); {needs}", pin))
        elif version not in generation.pins:
            others = [p for p in generation.pins if p != generation.transformers]
            jetson = f", its Jetson pyprojects {', '.join(others)}" if others else ""
            checks.append(Check(WARN, "transformers", f"{version}; {needs}{jetson} (other versions are untested "
                                "upstream)", pin))
        else:
            checks.append(Check(OK, "transformers", f"{version}, as Isaac-GR00T {generation.name} pins"))
    return checks


# --------------------------------------------------------------------- the N1.7 backbone
def hub_cache_dir(env=None) -> Path:
    """Where huggingface_hub keeps models: HF_HUB_CACHE, else HF_HOME/hub, else the XDG cache."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env.get("HF_HUB_CACHE") or env["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _cached_file(repo_id: str, filename: str, cache: Path) -> Path | None:
    """A file of the model's current snapshot in the cache: huggingface_hub's own lookup when installed,
    else the cache's layout (models--<org>--<name>/refs/main -> snapshots/<commit>/<file>). No network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        try_to_load_from_cache = None
    if try_to_load_from_cache is not None:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache))
        return Path(found) if isinstance(found, str) else None
    model = cache / f"models--{repo_id.replace('/', '--')}"
    ref = model / "refs" / "main"
    snapshots = [model / "snapshots" / ref.read_text().strip()] if ref.is_file() else \
        sorted((model / "snapshots").glob("*"))
    return next((s / filename for s in snapshots if (s / filename).is_file()), None)


def _missing(lookup) -> list[str]:
    missing = [name for name in BACKBONE_FILES if lookup(name) is None]
    if all(lookup(name) is None for name in BACKBONE_WEIGHTS):
        missing.append("model*.safetensors")
    return missing


def check_backbone(checkpoint: Path, env=None) -> list[Check]:
    """Whether the backbone each file of an N1.7 checkpoint names can be loaded without network."""
    env = os.environ if env is None else env
    offline = any(str(env.get(v, "")).lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    checks = []
    for source, name in gen.backbone_names(checkpoint).items():
        topic = f"backbone ({source})"
        if source == "config.json" and not any(marker in name for marker in gen.BACKBONE_NAME_MARKERS):
            checks.append(Check(FAIL, topic, f"model_name '{name}': upstream builds the N1.7 backbone only for a name "
                                f"containing {' or '.join(gen.BACKBONE_NAME_MARKERS)}",
                                "keep that in the path, e.g. /models/nvidia/Cosmos-Reason2-2B"))
            continue
        local = Path(name).expanduser()
        if local.is_absolute() or name.startswith((".", "~")) or local.is_dir():
            missing = _missing(lambda f: local / f if (local / f).is_file() else None)
            checks.append(Check(FAIL, topic, f"local backbone {local} lacks {missing}", "copy the whole model "
                                "directory there") if missing else Check(OK, topic, f"local backbone {local}"))
            continue
        cache = hub_cache_dir(env)
        missing = _missing(lambda f: _cached_file(name, f, cache))
        if not missing:
            note = "" if offline else "; set HF_HUB_OFFLINE=1 on the robot so a start never waits on the network"
            checks.append(Check(OK, topic, f"{name} is in the Hugging Face cache {cache}{note}"))
            continue
        level = FAIL if offline else WARN
        why = "HF_HUB_OFFLINE is set, so the server cannot start" if offline else \
            "every start downloads what is missing (and fails without network)"
        checks.append(Check(level, topic, f"{name} lacks {missing} in the Hugging Face cache {cache}: {why}",
                            f"where there is network, with the same HF_HOME: hf download {name}; then run with "
                            "HF_HUB_OFFLINE=1 (or set model_name to a local copy in config.json and "
                            "processor_config.json)"))
    return checks


# ------------------------------------------------------------------------ the checkpoint
def shipped_config_dir() -> Path:
    """The parameter files the nodes start with: the installed share/alfie_gr00t/config, else the checkout's."""
    from alfie_gr00t.nodes.launch_args import config_path

    return Path(config_path("groot_server.yaml")).parent


def server_parameters(config_dir: Path):
    """(ServerConfig from groot_server.yaml in `config_dir`, the file), defaults where a value is absent."""
    import yaml

    from alfie_gr00t.server.config import ServerConfig
    from alfie_gr00t.settings import config_from_values

    path = Path(config_dir) / "groot_server.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    node = next((v for v in (data or {}).values() if isinstance(v, dict) and "ros__parameters" in v), {})
    values = dict(node.get("ros__parameters", {}))
    known = set(ServerConfig.__dataclass_fields__)
    return config_from_values(ServerConfig, {k: v for k, v in values.items() if k in known}), path


def _files(directory: Path) -> Check:
    topic = f"checkpoint {directory}"
    weights = sorted(p.name for p in directory.glob("*.safetensors")) + \
        sorted(p.name for p in directory.glob("*.safetensors.index.json"))
    missing = ([] if (directory / "config.json").is_file() else ["config.json"]) + ([] if weights else
                                                                                     ["model*.safetensors"])
    if missing:
        has = sorted(p.name for p in directory.iterdir())[:12]
        return Check(FAIL, topic, f"lacks {', '.join(missing)} (has {has})",
                     "point it at Isaac-GR00T's fine-tuning output (config.json + model*.safetensors)")
    return Check(OK, topic, f"config.json, {len(weights)} weight file(s) ({weights[0]}...)")


def check_generation(directory: Path, where: Path | None = None) -> tuple[gen.Generation | None, list[Check]]:
    theirs, evidence = gen.of_checkpoint(directory)
    where = gen.package_dir() if where is None else where
    if theirs is None:
        return None, [Check(WARN, "generation", f"names no Isaac-GR00T generation ({evidence})",
                            "a checkpoint saved by Isaac-GR00T N1.6 or N1.7 fine-tuning")]
    found = gen.mismatch(directory, theirs, evidence, gen.installed(where) if where else (), where)
    if found:
        return theirs, [Check(FAIL, "generation", *found)]
    return theirs, [Check(OK, "generation", f"Isaac-GR00T {theirs.name} ({evidence})")]


def check_layout(directory: Path, config_dir: Path) -> list[Check]:
    """The checkpoint's modality config and statistics against groot_server.yaml, by adopt_layout."""
    from alfie_gr00t.engines.base import EngineError
    from alfie_gr00t.engines.gr00t_policy_engine import adopt_layout, checkpoint_statistics

    processor = gen.read_json(directory / "processor_config.json")
    configs = (processor.get("processor_kwargs") or processor).get("modality_configs") or {}
    if not configs:
        return [Check(WARN, "layout", "processor_config.json has no modality configs: the layout is not checked "
                      "here (the server checks it at start)", "keep processor_config.json from fine-tuning")]
    try:
        server, path = server_parameters(config_dir)
    except (OSError, ValueError, TypeError) as exc:
        return [Check(FAIL, "parameters", f"{config_dir}/groot_server.yaml: {exc}", "fix the parameter file")]
    checks = [Check(OK, "parameters", f"{path}")]
    tag = server.embodiment_tag
    entry = configs.get(tag) or configs.get(tag.lower())
    if entry is None:
        return checks + [Check(FAIL, "layout", f"no embodiment '{tag}' in processor_config.json (it has "
                               f"{sorted(configs)})", "set embodiment_tag to the one it was fine-tuned with")]
    modalities = {m: SimpleNamespace(modality_keys=list(v.get("modality_keys") or []),
                                     delta_indices=list(v.get("delta_indices") or []))
                  for m, v in entry.items() if isinstance(v, dict)}
    history = gen.read_json(directory / "config.json").get("state_history_length") or 1
    try:  # the server's own reading of statistics.json and its own layout rule
        statistics = checkpoint_statistics(None, tag, directory)
        _adopted, served = adopt_layout(modalities, statistics, server.engine_config(), int(history))
    except EngineError as exc:
        return checks + [Check(FAIL, "layout", str(exc), "each refusal names its fix (docs/checkpoint.md)")]
    groups = ", ".join(f"{g.name} {g.size}" for g in served.groups)
    adopted = f"; adopts {', '.join(served.adopted)}" if served.adopted else ""
    first = f" (the first of {list(served.language_keys)})" if len(served.language_keys) > 1 else ""
    return checks + [Check(OK, "layout", f"embodiment '{tag}': language key '{served.language_key}'{first}, "
                           f"video {list(served.video_keys)}, groups [{groups}]{adopted}")]


def check_checkpoint(directory: Path, config_dir: Path | None = None, env=None,
                     where: Path | None = None) -> list[Check]:
    """Everything groot_doctor says about a checkpoint directory (module doc)."""
    directory = Path(directory)
    if not directory.is_dir():
        return [Check(FAIL, f"checkpoint {directory}", "is not a directory",
                      "pass --checkpoint the fine-tuning output directory")]
    checks = [_files(directory)]
    if not (directory / "statistics.json").is_file():
        checks.append(Check(WARN, "statistics.json", "missing: group sizes are not checked",
                            "keep statistics.json from fine-tuning beside the weights"))
    generation, generation_checks = check_generation(directory, where)
    checks += generation_checks
    if generation is not None and generation.backbone:
        checks += check_backbone(directory, env)
    return checks + check_layout(directory, config_dir or shipped_config_dir())
