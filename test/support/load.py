"""One concurrent-load harness: robots on threads, each with its own REQ socket, asking a served
PolicyService for chunks at once; counts what came back right, lost (timed out) or misrouted."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from alfie_gr00t.server.service import BackgroundServer, PolicyService
from alfie_gr00t.wire.transport import ReqClient, RequestTimeout


@dataclass
class LoadResult:
    clients: int
    sent: int = 0
    ok: int = 0
    lost: int = 0
    misrouted: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.clients} clients: sent {self.sent}, ok {self.ok}, lost {self.lost}, misrouted "
                f"{self.misrouted} in {self.wall_s:.1f} s = {self.ok / max(self.wall_s, 1e-9):.0f} req/s")
        if self.latencies_ms:
            ms = np.asarray(self.latencies_ms)
            text += (f"; latency p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms, "
                     f"max {ms.max():.2f} ms")
        return text


def _client_loop(address, ask, index, per_client, deadline, start, tally, lock, **client_options):
    client = ReqClient(address, timeout_ms=10000, **client_options)
    start.wait()
    try:
        for i in range(per_client):
            if time.monotonic() > deadline[0]:
                break
            frame_id = index * 100000 + i
            t0 = time.perf_counter()
            try:
                right = ask(client, frame_id) is not False
            except RequestTimeout:
                outcome = "lost"
            except AssertionError:
                outcome = "misrouted"
            else:
                outcome = "ok" if right else "misrouted"
            with lock:
                tally.sent += 1
                setattr(tally, outcome, getattr(tally, outcome) + 1)
                if outcome != "lost":
                    tally.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
    finally:
        client.close()


def run_load(service: PolicyService, ask, *, clients: int, per_client: int, deadline_s: float,
             **client_options) -> LoadResult:
    """`clients` threads, each sending up to `per_client` requests (frame ids index * 100000 + i) within
    `deadline_s`. `ask(client, frame_id)` sends one and checks the reply: False or an AssertionError
    counts as misrouted, RequestTimeout as lost. `client_options` go to each ReqClient (e.g. curve)."""
    tally, lock = LoadResult(clients), threading.Lock()
    start, deadline = threading.Barrier(clients + 1), [float("inf")]
    with BackgroundServer(service):
        threads = [threading.Thread(target=_client_loop, daemon=True,
                                    args=(service.config.address, ask, i, per_client, deadline, start, tally, lock),
                                    kwargs=client_options) for i in range(clients)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        deadline[0] = started + deadline_s
        start.wait()
        for thread in threads:
            thread.join(timeout=deadline_s + 30)
        tally.wall_s = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "a load client hung"
    return tally
