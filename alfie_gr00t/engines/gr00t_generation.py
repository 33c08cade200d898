"""Which Isaac-GR00T generation is installed, and which one saved a checkpoint (no gr00t import).

Two generations are served: N1.6 (Isaac-GR00T's `n1.6-release` tag; Eagle backbone built
from the package's own files) and N1.7 (upstream's main branch since May 2026; its
Cosmos-Reason2-2B backbone, a Qwen3-VL, is loaded with `from_pretrained` from the Hugging
Face hub, or its cache, each time a model or processor is built, fine-tuned checkpoints
included). An install holds `gr00t/model/gr00t_n1d6/` or `gr00t/model/gr00t_n1d7/`; a
checkpoint's `config.json` names its model class (`model_type`, `architectures`) and its
`processor_config.json` its processor class. A checkpoint of one generation cannot be loaded
by the other's code, and upstream's own error for that comes from deep inside transformers:
`require_match` says it at start, with both sides and the fix (docs/checkpoint.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from alfie_gr00t.engines.base import EngineError


@dataclass(frozen=True)
class Generation:
    name: str             # "N1.7"
    module: str           # gr00t/model/<module>/ in an install
    model_type: str       # config.json "model_type" (and "architectures") of its checkpoints
    processor_class: str  # processor_config.json "processor_class"
    transformers: str     # the transformers version upstream's default (x86 / dGPU) pyproject pins
    python: str           # the Pythons upstream's pyproject allows
    ref: str              # the git ref of Isaac-GR00T to check out
    backbone: str = ""    # hub model loaded with from_pretrained at every build ("" = shipped in the package)
    pins: tuple = ()      # every transformers pin of its pyprojects (dGPU, Orin, Thor, Spark)
    pythons: tuple = ()   # every Python (major, minor) of its pyprojects


N1_6 = Generation("N1.6", "gr00t_n1d6", "Gr00tN1d6", "Gr00tN1d6Processor", "4.51.3", "3.10-3.12",
                  "n1.6-release", pins=("4.51.3",), pythons=((3, 10), (3, 11), (3, 12)))
N1_7 = Generation("N1.7", "gr00t_n1d7", "Gr00tN1d7", "Gr00tN1d7Processor", "4.57.3", "3.10 or, on Thor and Spark, 3.12",
                  "main", backbone="nvidia/Cosmos-Reason2-2B", pins=("4.57.3", "4.57.6"),
                  pythons=((3, 10), (3, 12)))
GENERATIONS = (N1_6, N1_7)
N1_7_MIN_TRANSFORMERS = (4, 57)  # Qwen3-VL first shipped in transformers 4.57


def read_json(path: Path) -> dict:
    """The JSON object in `path`, or {} when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def package_dir() -> Path | None:
    """The installed `gr00t` package's directory, without importing it (an imported one is asked)."""
    module = sys.modules.get("gr00t")
    paths = list(getattr(module, "__path__", None) or []) if module is not None else []
    if paths:
        return Path(paths[0])
    if module is not None:  # imported but without a location (a stand-in): unknown
        return None
    try:
        spec = importlib.util.find_spec("gr00t")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


def installed(where: Path | None = None) -> tuple[Generation, ...]:
    """The generations whose model code is in the gr00t package at `where` (default: the importable one)."""
    where = package_dir() if where is None else Path(where)
    if where is None:
        return ()
    return tuple(g for g in GENERATIONS if (where / "model" / g.module).is_dir())


def of_checkpoint(checkpoint: Path) -> tuple[Generation | None, str]:
    """(the generation that saved `checkpoint`, what says so), from config.json's model_type or
    architectures, else processor_config.json's processor_class; (None, what was found) when neither names one."""
    config = read_json(Path(checkpoint) / "config.json")
    names = [("config.json model_type", config.get("model_type"))]
    names += [("config.json architectures", a) for a in config.get("architectures") or () if isinstance(a, str)]
    processor = read_json(Path(checkpoint) / "processor_config.json")
    names.append(("processor_config.json processor_class", processor.get("processor_class")))
    for where, value in names:
        for generation in GENERATIONS:
            if value in (generation.model_type, generation.processor_class):
                return generation, f"{where} '{value}'"
    found = [f"{where} '{value}'" for where, value in names if value]
    return None, ", ".join(found) or "no model_type in config.json"


def install_fix(generation: Generation, checkout: Path | None) -> str:
    where = str(checkout) if checkout is not None else "Isaac-GR00T"
    return (f"install Isaac-GR00T {generation.name}: git -C {where} checkout {generation.ref} && "
            f"pip install -e {where} (Python {generation.python}, transformers {generation.transformers}; "
            "docs/checkpoint.md)")


def mismatch(checkpoint: Path, theirs: Generation | None, evidence: str, ours: tuple[Generation, ...],
             where: Path | None) -> tuple[str, str] | None:
    """(what is wrong, naming both sides; the fix) when the install cannot load the checkpoint's
    generation, else None."""
    if theirs is None or not ours or theirs in ours:
        return None
    have = " and ".join(f"{g.name} (gr00t.model.{g.module})" for g in ours)
    other = next((g for g in GENERATIONS if g in ours), None)
    alternative = f", or serve an {other.name} checkpoint" if other else ""
    problem = (f"checkpoint {checkpoint} is Isaac-GR00T {theirs.name} ({evidence}) but the installed Isaac-GR00T "
               f"{'at ' + str(where) + ' ' if where else ''}is {have}, which cannot load it")
    return problem, install_fix(theirs, where.parent if where else None) + alternative


def require_match(checkpoint: Path) -> Generation | None:
    """The checkpoint's generation; EngineError naming both sides when the install is another one."""
    theirs, evidence = of_checkpoint(checkpoint)
    where = package_dir()
    found = mismatch(Path(checkpoint), theirs, evidence, installed(where), where)
    if found:
        raise EngineError(f"{found[0]}: {found[1]}")
    return theirs


def backbone_names(checkpoint: Path) -> dict[str, str]:
    """The backbone an N1.7 checkpoint loads, by the file that names it: the model reads config.json's
    `model_name`, the processor processor_config.json's (both default to Cosmos-Reason2-2B)."""
    config = read_json(Path(checkpoint) / "config.json")
    processor = read_json(Path(checkpoint) / "processor_config.json").get("processor_kwargs") or {}
    return {"config.json": str(config.get("model_name") or N1_7.backbone),
            "processor_config.json": str(processor.get("model_name") or N1_7.backbone)}


# Upstream picks N1.7's backbone class by these substrings of config.json's model_name (get_backbone_cls):
# a local directory must keep one in its path.
BACKBONE_NAME_MARKERS = ("nvidia/Cosmos-Reason2", "Qwen/Qwen3-VL")
