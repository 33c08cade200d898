"""groot_check_engine: does this DiT engine (TensorRT or ONNX Runtime) decide what the PyTorch DiT decides?

    groot_check_engine CHECKPOINT_DIR [--engine dit_model_fp16.engine|dit_model_fp32.onnx] [--device cuda:0|cpu]
                       [--observations obs.npz|DIR] [--samples 8] [--denoising-steps 4]
                       [--min-cosine 0.995] [--max-abs-diff 0.05] [--params config/groot_server.yaml]

The same observations (recorded `.npz` files, or seeded random ones) go through the
checkpoint's Gr00tPolicy with the same noise seed, eager PyTorch first. What is compared
is what the DiT decides, not decoded actions (state-relative actions are state + a small
clipped delta and look alike even for a wrong engine):

* per denoising step, same inputs: every input the eager DiT got at every step is fed to
  the engine too, and the outputs are compared step by step (no compounding);
* free running: the policy runs again with the engine swapped in (production code,
  dit_swap.install_dit_engine), each step's DiT output and the normalized action
  prediction before decoding (the action head's `get_action(...)["action_pred"]`) are
  compared with eager's;
* decoded actions: cosine and max |difference| in robot units (rad for the joints).

Exit 1 (inaccurate) when the worst step's cosine (same inputs, or free running) or the
normalized prediction's cosine is below --min-cosine (default 0.995; a correct fp32/fp16
engine scores >= 0.9999), or the decoded actions differ by more than --max-abs-diff
(default 0.05). Exit 2: a tool, the GPU or the engine is missing or does not load.
Latency per stage (backbone, DiT per step, total) is printed for both runs.

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
DEFAULT_MIN_COSINE = 0.995
DEFAULT_MAX_ABS_DIFF = 0.05  # robot units (rad for the joints) on decoded actions


# ---------------------------------------------------------------- pure helpers


def cosine(a, b) -> float:
    """Cosine similarity of two arrays, flattened (1.0 for two equal all-zero arrays, NaN-safe: NaN fails)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise EngineError(f"compared tensors differ in size: {a.size} vs {b.size}")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.dot(a, b) / denom)


def compare(eager: np.ndarray, trt: np.ndarray) -> dict:
    """Cosine similarity (all chunks flattened, and the worst single chunk) and max abs difference."""
    eager, trt = np.asarray(eager, np.float64), np.asarray(trt, np.float64)
    if eager.shape != trt.shape:
        raise EngineError(f"eager chunks {eager.shape} and TensorRT chunks {trt.shape} differ in shape")

    per_chunk = [cosine(a, b) for a, b in zip(eager, trt)]
    return {"cosine": cosine(eager, trt), "worst_chunk_cosine": min(per_chunk),
            "max_abs_diff": float(np.max(np.abs(eager - trt))), "chunks": len(per_chunk)}


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


# ---------------------------------------------------------------- what the DiT decides


def step_stats(pairs) -> dict:
    """{'cosines': per step, 'worst_cosine', 'max_abs_diff'} over (eager, engine) array pairs."""
    cosines = [cosine(e, g) for e, g in pairs]
    diffs = [float(np.max(np.abs(np.asarray(e, np.float64) - np.asarray(g, np.float64)))) for e, g in pairs]
    return {"cosines": cosines, "worst_cosine": min(cosines) if cosines else float("nan"),
            "max_abs_diff": max(diffs) if diffs else float("nan"), "steps": len(cosines)}


def dit_verdict(result: dict, min_cosine: float, max_abs_diff: float | None) -> list[str]:
    """The reasons to refuse the engine from a full check result (empty: accept)."""
    reasons = []
    for key, label in (("same_inputs", "DiT step, same inputs"), ("free_running", "DiT step, free running")):
        worst = result[key]["worst_cosine"]
        if not worst >= min_cosine:
            reasons.append(f"{label}: worst cosine {worst:.5f} < {min_cosine}")
    pred = result["action_pred"]["cosine"]
    if not pred >= min_cosine:
        reasons.append(f"normalized action prediction: cosine {pred:.5f} < {min_cosine}")
    decoded = result["decoded"]
    if max_abs_diff is not None and not decoded["max_abs_diff"] <= max_abs_diff:
        reasons.append(f"decoded actions: max |diff| {decoded['max_abs_diff']:.5f} > {max_abs_diff}")
    if not np.isfinite(decoded["cosine"]):
        reasons.append("decoded actions are not finite")
    return reasons


def _to_numpy(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class DiTRecorder:
    """Wraps the DiT module's forward and the action head's get_action: records every DiT call
    (its arguments and output) and every normalized action prediction (`action_pred`)."""

    def __init__(self, head):
        self._head = head
        self.calls: list[tuple[tuple, dict, np.ndarray]] = []
        self.predictions: list[np.ndarray] = []
        self.recording = False

    def install(self) -> None:
        dit, head = self._head.model, self._head
        forward, get_action = dit.forward, head.get_action

        def recorded_forward(*args, **kwargs):
            out = forward(*args, **kwargs)
            if self.recording:
                kept = {k: v.detach().clone() if hasattr(v, "detach") else v for k, v in kwargs.items()}
                self.calls.append((tuple(a.detach().clone() if hasattr(a, "detach") else a for a in args), kept,
                                   _to_numpy(out)))
            return out

        def recorded_get_action(*args, **kwargs):
            out = get_action(*args, **kwargs)
            if self.recording:
                self.predictions.append(_to_numpy(out["action_pred"]))
            return out

        dit.forward, head.get_action = recorded_forward, recorded_get_action


def engine_outputs(engine, calls) -> list[np.ndarray]:
    """The engine's raw output for each recorded DiT call, fed exactly the inputs the eager DiT got."""
    import inspect

    from alfie_gr00t.engines.dit_swap import make_dit_forward

    signature = inspect.signature(make_dit_forward(engine))
    outputs = []
    for args, kwargs, _eager in calls:
        bound = signature.bind(*args, **kwargs).arguments
        out = engine(bound["hidden_states"], bound["encoder_hidden_states"], bound.get("timestep"),
                     image_mask=bound.get("image_mask"), backbone_attention_mask=bound.get("backbone_attention_mask"))
        outputs.append(_to_numpy(out))
    return outputs


def run_policy(policy, torch, observations, config, seed: int, clock: StageClock, language_keys=()) -> np.ndarray:
    """Action chunks (N, horizon, dim) for `observations`, the noise seeded per observation; the task
    text goes under each of the checkpoint's `language_keys` as the server sends it."""
    from alfie_gr00t.engines.gr00t_policy_engine import from_gr00t_action, to_gr00t_observation

    chunks = []
    for i, obs in enumerate(observations):
        torch.manual_seed(seed + i)
        observation = to_gr00t_observation(obs, config, language_keys)
        action, _info = clock.wrap("total", policy.get_action)(observation, None)
        chunks.append(from_gr00t_action(action, config)[0])
    return np.stack(chunks)


def timings(clock: StageClock, steps: int | None) -> dict:
    return {"backbone_ms": clock.mean("backbone"), "dit_step_ms": clock.mean("dit"),
            "dit_steps": steps, "total_ms": clock.mean("total")}


def compare_dit(policy, torch, engine, observations, config, seed: int, steps: int | None = None,
                language_keys=()) -> dict:
    """Eager run, per-step engine replay on the recorded inputs, then the free-running engine run.
    The same for N1.6 and N1.7: both run the DiT as policy.model.action_head.model, once per step."""
    from alfie_gr00t.engines.dit_swap import install_dit_engine

    head = policy.model.action_head
    clock = StageClock(torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None))
    backbone = getattr(policy.model, "backbone", None)
    if backbone is not None:
        backbone.forward = clock.wrap("backbone", backbone.forward)

    def one_run(recorder):
        head.model.forward = clock.wrap("dit", head.model.forward)
        recorder.install()
        run_policy(policy, torch, observations[:1], config, seed, StageClock(), language_keys)  # warm-up, untimed
        clock.reset()
        recorder.recording = True
        chunks = run_policy(policy, torch, observations, config, seed, clock, language_keys)
        recorder.recording = False
        return chunks, timings(clock, steps)

    eager_rec = DiTRecorder(head)
    eager, eager_times = one_run(eager_rec)
    if not eager_rec.calls:
        raise EngineError("the policy never called its DiT (policy.model.action_head.model): not a GR00T N1.6 or N1.7 policy?")
    replayed = engine_outputs(engine, eager_rec.calls)
    installed = install_dit_engine(policy, engine)  # the production swap
    engine_rec = DiTRecorder(head)
    served, engine_times = one_run(engine_rec)
    if len(engine_rec.calls) != len(eager_rec.calls):
        raise EngineError(f"the engine run made {len(engine_rec.calls)} DiT calls, eager made {len(eager_rec.calls)}")
    pred_pairs = list(zip(eager_rec.predictions, engine_rec.predictions))
    return {
        "engine": installed, "chunks": len(observations), "dit_calls_per_chunk": len(engine_rec.calls) / len(observations),
        "same_inputs": step_stats([(c[2], g) for c, g in zip(eager_rec.calls, replayed)]),
        "free_running": step_stats([(e[2], g[2]) for e, g in zip(eager_rec.calls, engine_rec.calls)]),
        "action_pred": {"cosine": min(cosine(e, g) for e, g in pred_pairs) if pred_pairs else float("nan"),
                        "max_abs_diff": step_stats(pred_pairs)["max_abs_diff"]},
        "decoded": compare(eager, served), "eager": eager_times, "engine_timing": engine_times,
    }


def check(args) -> dict:
    from alfie_gr00t.engines import gr00t_policy_engine as gpe

    config = _engine_config(args)
    checkpoint = Path(args.checkpoint)
    dit = gpe.open_dit_engine(config, checkpoint)
    if dit is None:
        raise EngineError("no DiT engine selected: pass --engine FILE (.engine/.plan/.trt/.onnx)")
    torch, policy, config, served = _load_policy(config, checkpoint)
    steps = gpe.set_denoising_steps(policy, config.denoising_steps)
    if args.observations:
        observations = load_observations(Path(args.observations), config.camera_names, config.action_dim)
    else:
        observations = random_observations(args.samples, args.seed, config, args.task)
    observations = observations[: args.samples]
    result = compare_dit(policy, torch, dit, observations, config, args.seed, steps,
                         getattr(served, "language_keys", ()))
    return {**result, "observations": "recorded" if args.observations else "random", "seed": args.seed}


def _load_policy(config, checkpoint: Path):
    """(torch, Gr00tPolicy, the config with the checkpoint's layout adopted, the layout served)."""
    from alfie_gr00t.engines import gr00t_policy_engine as gpe

    return gpe.load_adopted(config, checkpoint)


def _engine_config(args):
    from alfie_gr00t.server.config import ServerConfig
    from alfie_gr00t.settings import config_from_values

    values = {}
    if args.params:
        import yaml

        loaded = yaml.safe_load(Path(args.params).read_text()) or {}
        node = next(iter(loaded.values()), {}) if loaded else {}
        values = dict(node.get("ros__parameters", {}))
    values.update(model_checkpoint=str(args.checkpoint), mock_mode=False, device=args.device,
                  tensorrt_engine_path="", dit_engine_path=str(args.engine or ""), use_tensorrt=not args.engine)
    if args.denoising_steps:
        values["denoising_steps"] = args.denoising_steps
    if args.embodiment_tag:
        values["embodiment_tag"] = args.embodiment_tag
    return config_from_values(ServerConfig, values).engine_config()


def report(result: dict, reasons: list[str], min_cosine: float, max_abs_diff: float | None) -> str:
    engine = result["engine"]
    same, free, pred, decoded = result["same_inputs"], result["free_running"], result["action_pred"], result["decoded"]
    lines = [f"engine   {engine.get('dit_engine')} ({engine.get('dit_backend')}, {engine.get('dit_precision')}, "
             f"output {engine.get('dit_output_dtype')}, FP32 accumulation {engine.get('fp32_accumulation')})",
             f"compared {result['chunks']} {result['observations']} observations, seed {result['seed']}, "
             f"{result['dit_calls_per_chunk']:g} DiT calls per chunk",
             f"DiT step, same inputs    worst cosine {same['worst_cosine']:.6f}  max |diff| {same['max_abs_diff']:.5f}"
             f"  ({same['steps']} steps; threshold {min_cosine})",
             f"DiT step, free running   worst cosine {free['worst_cosine']:.6f}  max |diff| {free['max_abs_diff']:.5f}",
             f"normalized action_pred   worst cosine {pred['cosine']:.6f}  max |diff| {pred['max_abs_diff']:.5f}",
             f"decoded actions          cosine {decoded['cosine']:.6f}  max |diff| {decoded['max_abs_diff']:.5f} "
             f"robot units (tolerance {max_abs_diff}); decoded actions look alike even for a wrong DiT",
             f"{'':10}{'backbone ms':>12}{'DiT/step ms':>13}{'steps':>7}{'total ms':>10}"]
    for name, t in (("eager", result["eager"]), ("engine", result["engine_timing"])):
        lines.append(f"{name:10}{t['backbone_ms']:12.1f}{t['dit_step_ms']:13.2f}{t['dit_steps'] or 0:7d}"
                     f"{t['total_ms']:10.1f}")
    lines.append("PASS: the engine decides what the PyTorch DiT decides" if not reasons else "FAIL: " + "; ".join(reasons))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="groot_check_engine", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, help="Isaac-GR00T fine-tuned checkpoint directory")
    p.add_argument("--engine", type=Path, help="DiT file: a TensorRT engine (.engine/.plan/.trt) or an ONNX DiT "
                   "(.onnx, ONNX Runtime; runs with --device cpu) (default: the dit*.engine beside the checkpoint)")
    p.add_argument("--params", type=Path, help="server parameter YAML for keys/groups/embodiment "
                   "(default: the package defaults)")
    p.add_argument("--observations", type=Path, help=".npz file or directory of recorded observations "
                   "(default: seeded random images and states)")
    p.add_argument("--samples", type=int, default=8, help="observations to compare (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default="pick up the can", help="language for random observations")
    p.add_argument("--denoising-steps", type=int, help="override the server's denoising_steps")
    p.add_argument("--embodiment-tag", help="override the server's embodiment_tag")
    p.add_argument("--device", default="cuda:0", help="cuda:N, or cpu for an ONNX DiT (default cuda:0)")
    p.add_argument("--min-cosine", type=float, default=DEFAULT_MIN_COSINE,
                   help=f"refuse below this cosine: worst DiT step, normalized action prediction "
                   f"(default {DEFAULT_MIN_COSINE})")
    p.add_argument("--max-abs-diff", type=float, default=DEFAULT_MAX_ABS_DIFF,
                   help=f"refuse decoded actions that differ by more, robot units: rad for joints "
                   f"(default {DEFAULT_MAX_ABS_DIFF})")
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
    reasons = dit_verdict(result, args.min_cosine, args.max_abs_diff)
    print(json.dumps({**result, "pass": not reasons, "reasons": reasons}, indent=2, default=str) if args.json
          else report(result, reasons, args.min_cosine, args.max_abs_diff))
    return EXIT_INACCURATE if reasons else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
