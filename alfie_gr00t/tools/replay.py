"""groot_replay: open-loop evaluation. Re-send a recorded session's observations to any policy server and
report how far its chunks are from the ones recorded on the robot.

    groot_replay SESSION --server tcp://gpu-box:5555 [--protocol alfie|gr00t] [--plot DIR] [--json FILE]

SESSION is a session's bag directory (or a bare .mcap).

Each recorded observation (the frames exactly as sent, the state as sent, the task) goes out through the
client's own links (client/links.py AlfieLink or Gr00tLink over wire/transport.py ReqClient), one request
at a time, in capture order, without an action prefix. The reply (denormalized with --stats-file when the
robot ran with one) is compared with the chunk recorded for that observation: per layout group (and per
joint) the RMS and max of the difference over every step, and the RMS per step of the horizon; plus the
round trip's p50/p95/p99. Exit status: 0 done, 2 the session cannot be read or the server cannot be reached.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from types import SimpleNamespace

import numpy as np

from alfie_gr00t import layout, stats
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.inputs import Snapshot
from alfie_gr00t.client.links import AlfieLink, Gr00tLink
from alfie_gr00t.client.normalization import Normalizer
from alfie_gr00t.stats import StageTimer
from alfie_gr00t.tools.session import SessionError, read_session
from alfie_gr00t.wire import images, protocol
from alfie_gr00t.wire.transport import ReqClient, RequestTimeout

class ReplayError(RuntimeError):
    """The replay cannot go on (exit status 2)."""


def server_address(text: str) -> str:
    """'tcp://h:p', 'ipc:///path' as given; 'host:port' -> tcp://host:port; a path -> ipc://path."""
    if "://" in text:
        return text
    if text.startswith("/"):
        return f"ipc://{text}"
    if re.fullmatch(r"[\w.\-]+:\d+", text):
        return f"tcp://{text}"
    raise ReplayError(f"--server {text!r}: give tcp://HOST:PORT, HOST:PORT or ipc:///PATH")


def frame_message(data: bytes, fmt: str):
    """A recorded frame as the object the links take: a CompressedImage-like JPEG (passed through
    untouched at model size) or an Image-like rgb8 frame."""
    raw = images.parse_raw_format(fmt)
    if raw:
        width, height = raw
        return SimpleNamespace(encoding="rgb8", width=width, height=height, step=3 * width, data=data)
    return SimpleNamespace(format=fmt or "jpeg", data=data)


def frame_size(data: bytes, fmt: str) -> tuple[int, int]:
    return images.parse_raw_format(fmt) or images.jpeg_dimensions(data)


def client_config(session, protocol_name: str, api_token: str, timeout_ms: int) -> ClientConfig:
    first = session.observations[0]
    cameras = tuple(first.frames)
    width, height = frame_size(first.frames[cameras[0]], first.formats.get(cameras[0], "jpeg"))
    raw = images.parse_raw_format(first.formats.get(cameras[0], "jpeg")) is not None
    names = tuple(first.joint_names) if len(first.joint_names) == layout.ACTION_DIM else layout.JOINT_NAMES
    horizon = next((len(o.chunk) for o in session.observations if o.chunk is not None), layout.ACTION_HORIZON)
    if first.state.shape != (layout.ACTION_DIM,):
        raise ReplayError(f"recorded state has shape {first.state.shape}, expected ({layout.ACTION_DIM},)")
    return dataclasses.replace(
        ClientConfig(), camera_names=cameras, camera_topics=tuple(f"/replay/{c}" for c in cameras),
        image_width=width, image_height=height, image_encoding="raw" if raw else "jpeg",
        server_protocol=protocol_name, api_token=api_token, joint_names=names, action_horizon=horizon,
        inference_timeout_ms=max(int(timeout_ms), 1))


@dataclasses.dataclass
class ReplayResult:
    replies: list  # (observation index, (H, D) reply in robot units)
    round_trip_ms: list
    server_ms: list
    failures: list  # (observation index, reason)


def run_replay(session, address: str, protocol_name: str = "alfie", api_token: str = "", timeout_ms: int = 5000,
               normalizer: Normalizer | None = None, limit: int = 0) -> ReplayResult:
    cfg = client_config(session, protocol_name, api_token, timeout_ms)
    normalizer = normalizer or Normalizer.identity(layout.ACTION_DIM)
    client = ReqClient(address, timeout_ms)
    codec = images.ParallelCodec(min(4, len(cfg.camera_names)))
    link = (Gr00tLink if protocol_name == "gr00t" else AlfieLink)(cfg, client, codec)
    result = ReplayResult([], [], [], [])
    observations = session.observations[:limit] if limit > 0 else session.observations
    try:
        for i, obs in enumerate(observations):
            frames = {c: frame_message(obs.frames[c], obs.formats.get(c, "jpeg")) for c in cfg.camera_names
                      if c in obs.frames}
            if len(frames) != len(cfg.camera_names):
                result.failures.append((i, f"missing frames: {sorted(set(cfg.camera_names) - set(frames))}"))
                continue
            snap = Snapshot(frames, obs.state, obs.capture_time, obs.task)
            start = time.perf_counter()
            try:
                reply = link.exchange(snap, obs.state, StageTimer(), None, timeout_ms)
            except RequestTimeout as exc:
                if not result.replies:
                    raise ReplayError(f"cannot reach the server at {address}: {exc}") from exc
                result.failures.append((i, f"timeout: {exc}"))
                continue
            except (protocol.ProtocolError, ValueError) as exc:
                if not result.replies:
                    raise ReplayError(f"the server at {address} refused the first observation: {exc}") from exc
                result.failures.append((i, str(exc)))
                continue
            result.round_trip_ms.append((time.perf_counter() - start) * 1000.0)
            result.server_ms.append(float(reply.server_inference_ms))
            result.replies.append((i, normalizer.denormalize_action(np.asarray(reply.actions, dtype=np.float64))))
    finally:
        client.close()
        codec.close()
    return result


def compare(session, result: ReplayResult, groups=layout.LAYOUT_GROUPS) -> dict:
    """Differences replayed - recorded, over the observations that have a recorded chunk."""
    pairs = [(reply, session.observations[i].chunk) for i, reply in result.replies
             if session.observations[i].chunk is not None]
    report: dict = {"compared": len(pairs), "groups": {}, "joints": {}}
    if not pairs:
        return report
    horizon = min(min(len(a), len(b)) for a, b in pairs)
    diff = np.stack([a[:horizon] - np.asarray(b[:horizon], dtype=np.float64) for a, b in pairs])  # (N, H, D)
    names = session.observations[0].joint_names or layout.JOINT_NAMES
    for g in groups:
        d = diff[:, :, g.start:g.stop]
        report["groups"][g.name] = {
            "rms": float(np.sqrt(np.mean(d ** 2))), "max": float(np.max(np.abs(d))),
            "rms_per_step": [float(x) for x in np.sqrt(np.mean(d ** 2, axis=(0, 2)))]}
    for j in range(diff.shape[2]):
        name = names[j] if j < len(names) else f"dim_{j}"
        report["joints"][name] = {"rms": float(np.sqrt(np.mean(diff[:, :, j] ** 2))),
                                  "max": float(np.max(np.abs(diff[:, :, j])))}
    return report


def percentiles(values) -> dict:
    """p50/p95/p99 (alfie_gr00t.stats) plus mean and count; {} when there is nothing."""
    if not values:
        return {}
    return {**stats.percentiles(values), "mean": float(np.mean(values)), "n": len(values)}


def format_report(report: dict) -> str:
    lines = [f"session {report['session']}: {report['observations']} observations, {report['sent']} answered, "
             f"{report['compared']} compared with their recorded chunk, {len(report['failures'])} failed",
             f"server {report['server']} ({report['protocol']} protocol)", "",
             f"{'group':<14} {'rms':>10} {'max':>10}   rms per step 0..{len(next(iter(report['groups'].values()), {}).get('rms_per_step', [])) - 1}"]
    for name, g in report["groups"].items():
        steps = " ".join(f"{x:.3g}" for x in g["rms_per_step"])
        lines.append(f"{name:<14} {g['rms']:>10.4g} {g['max']:>10.4g}   {steps}")
    if report["joints"]:
        lines += ["", f"{'joint':<22} {'rms':>10} {'max':>10}"]
        lines += [f"{n:<22} {j['rms']:>10.4g} {j['max']:>10.4g}" for n, j in report["joints"].items()]
    rt, srv = report["round_trip_ms"], report["server_inference_ms"]
    if rt:
        lines += ["", f"round trip ms: p50 {rt['p50']:.2f}  p95 {rt['p95']:.2f}  p99 {rt['p99']:.2f}  (n={rt['n']})"]
    if srv:
        lines.append(f"server inference ms: p50 {srv['p50']:.2f}  p95 {srv['p95']:.2f}  p99 {srv['p99']:.2f}")
    for i, why in report["failures"][:10]:
        lines.append(f"observation {i}: {why}")
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def write_plots(directory: str, session, result: ReplayResult, report: dict) -> list[str]:
    """PNGs: RMS per horizon step per group, and step 0 recorded vs replayed over time per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, g in report["groups"].items():
        ax.plot(range(len(g["rms_per_step"])), g["rms_per_step"], marker="o", label=name)
    ax.set_xlabel("horizon step")
    ax.set_ylabel("RMS difference (robot units)")
    ax.set_title("replayed - recorded chunk")
    ax.legend()
    path = os.path.join(directory, "rms_per_step.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    pairs = [(session.observations[i].capture_time, reply[0], session.observations[i].chunk[0])
             for i, reply in result.replies if session.observations[i].chunk is not None]
    if pairs:
        t0 = pairs[0][0]
        times = np.array([p[0] - t0 for p in pairs])
        replayed = np.stack([p[1] for p in pairs])
        recorded = np.stack([p[2] for p in pairs])
        for g in layout.LAYOUT_GROUPS:
            fig, ax = plt.subplots(figsize=(8, 4))
            for j in range(g.start, g.stop):
                line, = ax.plot(times, recorded[:, j], label=layout.JOINT_NAMES[j])
                ax.plot(times, replayed[:, j], linestyle="--", color=line.get_color())
            ax.set_xlabel("capture time (s)")
            ax.set_title(f"{g.name}: step 0 recorded (solid) vs replayed (dashed)")
            ax.legend(fontsize=7)
            path = os.path.join(directory, f"step0_{g.name}.png")
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written


def no_observation_reason(path: str, session) -> str:
    """Why a readable bag cannot be replayed: what it holds against what a session needs."""
    held = ", ".join(f"{t} ({n})" for t, n in sorted(session.topics.items())[:12]) or "no message"
    more = f" and {len(session.topics) - 12} more topics" if len(session.topics) > 12 else ""
    why = (f"{path} holds no observation to replay: groot_replay needs what groot_client records with "
           f"record_dir (.../debug/image/<camera>, .../debug/state, .../debug/task and .../debug/chunk, paired "
           f"by capture time); it holds {held}{more}")
    if session.warnings:
        why += "; " + "; ".join(session.warnings)
    return why


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groot_replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("session", help="a session recorded by groot_client's record_dir: its bag directory "
                        "(or its .mcap file, or an older session's .mcap)")
    parser.add_argument("--server", required=True, help="tcp://HOST:PORT, HOST:PORT or ipc:///PATH")
    parser.add_argument("--protocol", choices=("alfie", "gr00t"), default="alfie")
    parser.add_argument("--api-token", default="")
    parser.add_argument("--timeout-ms", type=int, default=10000, help="per request (default 10000)")
    parser.add_argument("--stats-file", default="",
                        help="the client's stats_file when the robot ran with one: replies are denormalized with it")
    parser.add_argument("--limit", type=int, default=0, help="replay only the first N observations")
    parser.add_argument("--plot", metavar="DIR", help="write PNGs there (needs matplotlib: requirements-bench.txt)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        address = server_address(args.server)
        try:
            session = read_session(args.session)
        except (SessionError, OSError) as exc:
            raise ReplayError(f"cannot read {args.session}: {exc}") from exc
        if not session.observations:
            raise ReplayError(no_observation_reason(args.session, session))
        try:
            normalizer = Normalizer.from_stats_file(args.stats_file) if args.stats_file else None
        except (ValueError, OSError, KeyError) as exc:
            raise ReplayError(f"--stats-file {args.stats_file}: {exc or type(exc).__name__}") from exc
        result = run_replay(session, address, args.protocol, args.api_token, args.timeout_ms, normalizer, args.limit)
    except ReplayError as exc:
        print(f"groot_replay: {exc}", file=sys.stderr)
        return 2
    report = {"session": args.session, "server": address, "protocol": args.protocol,
              "observations": len(session.observations), "sent": len(result.replies),
              **compare(session, result), "round_trip_ms": percentiles(result.round_trip_ms),
              "server_inference_ms": percentiles(result.server_ms), "failures": result.failures,
              "warnings": list(session.warnings)}
    print(format_report(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    if args.plot:
        try:
            for path in write_plots(args.plot, session, result, report):
                print(f"wrote {path}")
        except ImportError:
            print("--plot: matplotlib is not installed (pip install -r requirements-bench.txt); no PNGs written",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
