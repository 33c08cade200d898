"""groot_check_engine: is this TensorRT DiT engine accurate enough to drive the robot?

    groot_check_engine CHECKPOINT_DIR [--engine dit_model_fp16.engine] [--observations obs.npz|DIR]
                       [--samples 8] [--denoising-steps 4] [--min-cosine 0.99] [--max-abs-diff X]
                       [--params config/groot_server.yaml]

The same observations (recorded `.npz` files, or seeded random ones) go through the
checkpoint's Gr00tPolicy twice with the same noise seed: eager PyTorch, then with the
DiT served by the engine. It prints the cosine similarity and max abs difference of the
action chunks and per-stage latency (backbone, DiT per denoising step, total), and
exits 1 when the cosine is below --min-cosine (default 0.99) or the difference above
--max-abs-diff. Exit 2: a tool, the GPU or the engine is missing or does not load.

`.npz` files hold what the server decodes: one uint8 (B, H, W, 3) array per camera
name, `state` (B, 21) float32 and optional `language` (B,) strings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from alfie_gr00t.engines.base import EngineError, ObservationBatch

EXIT_OK, EXIT_INACCURATE, EXIT_MISSING = 0, 1, 2
DEFAULT_MIN_COSINE = 0.99


# ---------------------------------------------------------------- pure helpers


def compare(eager: np.ndarray, trt: np.ndarray) -> dict:
    """Cosine similarity (all chunks flattened, and the worst single chunk) and max abs difference."""
    eager, trt = np.asarray(eager, np.float64), np.asarray(trt, np.float64)
    if eager.shape != trt.shape:
        raise EngineError(f"eager chunks {eager.shape} and TensorRT chunks {trt.shape} differ in shape")

    def cosine(a, b):
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        return 1.0 if denom == 0 and np.array_equal(a, b) else float(np.dot(a, b) / denom) if denom else 0.0

    per_chunk = [cosine(a.ravel(), b.ravel()) for a, b in zip(eager, trt)]
    return {"cosine": cosine(eager.ravel(), trt.ravel()), "worst_chunk_cosine": min(per_chunk),
            "max_abs_diff": float(np.max(np.abs(eager - trt))), "chunks": len(per_chunk)}


def verdict(result: dict, min_cosine: float, max_abs_diff: float | None) -> list[str]:
    """The reasons to refuse the engine (empty: accept)."""
    reasons = []
    if not result["cosine"] >= min_cosine:
        reasons.append(f"cosine {result['cosine']:.5f} < {min_cosine}")
    if max_abs_diff is not None and not result["max_abs_diff"] <= max_abs_diff:
        reasons.append(f"max abs diff {result['max_abs_diff']:.5f} > {max_abs_diff}")
    return reasons


class StageClock:
    """Times calls of wrapped callables, synchronising the GPU around each so GPU time counts."""

    def __init__(self, synchronize=lambda: None):
        self._sync = synchronize
        self.samples: dict[str, list[float]] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            self._sync()
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._sync()
                self.samples.setdefault(name, []).append((time.perf_counter() - start) * 1000.0)
        return timed

    def reset(self) -> None:
        self.samples = {}

    def mean(self, name: str) -> float:
        values = self.samples.get(name, [])
        return float(np.mean(values)) if values else float("nan")


def load_observations(path: Path, camera_names, action_dim: int) -> list[ObservationBatch]:
    """One single-observation batch per recorded observation in `path` (.npz file or directory)."""
    files = sorted(path.glob("*.npz")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise EngineError(f"no .npz observations at {path}")
    result = []
    for file in files:
        with np.load(file, allow_pickle=False) as data:
            missing = [k for k in (*camera_names, "state") if k not in data.files]
            if missing:
                raise EngineError(f"{file.name} lacks {missing} (has {data.files})")
            state = np.asarray(data["state"], np.float32).reshape(-1, action_dim)
            language = [str(s) for s in data["language"]] if "language" in data.files else [""] * len(state)
            images = {cam: np.asarray(data[cam], np.uint8) for cam in camera_names}
        for i in range(len(state)):
            result.append(ObservationBatch({cam: images[cam][i:i + 1] for cam in camera_names},
                                           state[i:i + 1], (language[i],)))
    return result


def random_observations(count: int, seed: int, config, task: str) -> list[ObservationBatch]:
    rng = np.random.default_rng(seed)
    shape = (1, config.image_height, config.image_width, 3)
    return [ObservationBatch({cam: rng.integers(0, 256, shape, dtype=np.uint8) for cam in config.camera_names},
                             rng.uniform(-0.5, 0.5, (1, config.action_dim)).astype(np.float32), (task,))
            for _ in range(count)]


# ---------------------------------------------------------------- the run


def run_policy(policy, torch, observations, config, seed: int, clock: StageClock) -> np.ndarray:
    """Action chunks (N, horizon, dim) for `observations`, the noise seeded per observation."""
    from alfie_gr00t.engines.gr00t_policy_engine import from_gr00t_action, to_gr00t_observation

    chunks = []
    for i, obs in enumerate(observations):
        torch.manual_seed(seed + i)
        action, _info = clock.wrap("total", policy.get_action)(to_gr00t_observation(obs, config), None)
        chunks.append(from_gr00t_action(action, config)[0])
    return np.stack(chunks)


def timings(clock: StageClock, steps: int | None) -> dict:
    return {"backbone_ms": clock.mean("backbone"), "dit_step_ms": clock.mean("dit"),
            "dit_steps": steps, "total_ms": clock.mean("total")}


def check(args) -> dict:
    from alfie_gr00t.engines import gr00t_policy_engine as gpe
    from alfie_gr00t.engines import trt_dit

    config = _engine_config(args)
    checkpoint = Path(args.checkpoint)
    dit = gpe.open_dit_engine(config, checkpoint)
    torch, policy = gpe.load_policy(config, checkpoint)
    steps = gpe._set_denoising_steps(policy, config.denoising_steps)
    if args.observations:
        observations = load_observations(Path(args.observations), config.camera_names, config.action_dim)
    else:
        observations = random_observations(args.samples, args.seed, config, args.task)
    observations = observations[: args.samples]
    clock = StageClock(torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None))
    backbone, dit_module = policy.model.backbone, policy.model.action_head.model
    backbone.forward = clock.wrap("backbone", backbone.forward)

    dit_module.forward = clock.wrap("dit", dit_module.forward)
    run_policy(policy, torch, observations[:1], config, args.seed, StageClock())  # warm-up, untimed
    clock.reset()
    eager = run_policy(policy, torch, observations, config, args.seed, clock)
    eager_times = timings(clock, steps)

    installed = trt_dit.install_dit_engine(policy, dit)
    dit_module.forward = clock.wrap("dit", dit_module.forward)
    run_policy(policy, torch, observations[:1], config, args.seed, StageClock())
    clock.reset()
    tensorrt = run_policy(policy, torch, observations, config, args.seed, clock)
    result = compare(eager, tensorrt)
    return {**result, "engine": installed, "eager": eager_times, "tensorrt": timings(clock, steps),
            "observations": "recorded" if args.observations else "random", "seed": args.seed}


def _engine_config(args):
    from alfie_gr00t.server.config import ServerConfig
    from alfie_gr00t.settings import config_from_values

    values = {}
    if args.params:
        import yaml

        loaded = yaml.safe_load(Path(args.params).read_text()) or {}
        node = next(iter(loaded.values()), {}) if loaded else {}
        values = dict(node.get("ros__parameters", {}))
    values.update(model_checkpoint=str(args.checkpoint), use_tensorrt=True, mock_mode=False, device=args.device)
    if args.engine:
        values["tensorrt_engine_path"] = str(args.engine)
    if args.denoising_steps:
        values["denoising_steps"] = args.denoising_steps
    if args.embodiment_tag:
        values["embodiment_tag"] = args.embodiment_tag
    return config_from_values(ServerConfig, values).engine_config()


def report(result: dict, reasons: list[str], min_cosine: float) -> str:
    lines = [f"engine   {result['engine'].get('dit_engine')} ({result['engine'].get('dit_precision')}, output "
             f"{result['engine'].get('dit_output_dtype')}, FP32 accumulation {result['engine'].get('fp32_accumulation')})",
             f"compared {result['chunks']} {result['observations']} observations, seed {result['seed']}",
             f"cosine   {result['cosine']:.6f} (worst chunk {result['worst_chunk_cosine']:.6f}; threshold {min_cosine})",
             f"max |diff| {result['max_abs_diff']:.6f}",
             f"{'':10}{'backbone ms':>12}{'DiT/step ms':>13}{'steps':>7}{'total ms':>10}"]
    for name in ("eager", "tensorrt"):
        t = result[name]
        lines.append(f"{name:10}{t['backbone_ms']:12.1f}{t['dit_step_ms']:13.2f}{t['dit_steps'] or 0:7d}"
                     f"{t['total_ms']:10.1f}")
    lines.append("PASS: the engine matches eager PyTorch" if not reasons else "FAIL: " + "; ".join(reasons))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="groot_check_engine", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, help="Isaac-GR00T fine-tuned checkpoint directory")
    p.add_argument("--engine", type=Path, help="DiT engine (default: the dit*.engine beside the checkpoint)")
    p.add_argument("--params", type=Path, help="server parameter YAML for keys/groups/embodiment "
                   "(default: the package defaults)")
    p.add_argument("--observations", type=Path, help=".npz file or directory of recorded observations "
                   "(default: seeded random images and states)")
    p.add_argument("--samples", type=int, default=8, help="observations to compare (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="pick up the can", help="language for random observations")
    p.add_argument("--denoising-steps", type=int, help="override the server's denoising_steps")
    p.add_argument("--embodiment-tag", help="override the server's embodiment_tag")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--min-cosine", type=float, default=DEFAULT_MIN_COSINE)
    p.add_argument("--max-abs-diff", type=float, help="also refuse above this max abs difference")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.samples < 1:
        print("--samples must be >= 1", file=sys.stderr)
        return EXIT_MISSING
    try:
        result = check(args)
    except (EngineError, ValueError) as exc:
        print(f"groot_check_engine: {exc}", file=sys.stderr)
        return EXIT_MISSING
    reasons = verdict(result, args.min_cosine, args.max_abs_diff)
    print(json.dumps({**result, "pass": not reasons, "reasons": reasons}, indent=2, default=str) if args.json
          else report(result, reasons, args.min_cosine))
    return EXIT_INACCURATE if reasons else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
