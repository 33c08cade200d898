"""The client's state machine: IDLE, CONNECTING, ACTIVE, ERROR, E_STOP (docs/motion.md)."""

from __future__ import annotations

import enum
import threading




class ClientState(str, enum.Enum):
    IDLE = "IDLE"
    CONNECTING = "CONNECTING"
    ACTIVE = "ACTIVE"
    ERROR = "ERROR"
    E_STOP = "E_STOP"


class ClientStateMachine:
    """The transitions of docs/motion.md. Each event returns True when the robot must get one hold now.

    `on_change(old, new, cause)` is called for every transition (the node logs them all)."""

    def __init__(self, on_change=None):
        self._lock = threading.Lock()
        self._on_change = on_change or (lambda old, new, cause: None)
        self.state = ClientState.IDLE
        self.epoch = 0  # bumped on every activation, so a late reply from an older one is dropped

    def _move(self, new: ClientState, cause: str) -> bool:
        old, self.state = self.state, new
        if new is ClientState.CONNECTING and old is not ClientState.CONNECTING:
            self.epoch += 1
        if new is not old:
            self._on_change(old, new, cause)
        return old is ClientState.ACTIVE and new is not ClientState.ACTIVE

    def activate(self, on: bool) -> bool:
        with self._lock:
            if self.state is ClientState.E_STOP:
                return False  # latched until estop:false
            if on:
                if self.state in (ClientState.IDLE, ClientState.ERROR):
                    return self._move(ClientState.CONNECTING, "activate:true")
                return False
            return self._move(ClientState.IDLE, "activate:false")

    def estop(self, on: bool) -> bool:
        with self._lock:
            if on:
                was_stopped = self.state is ClientState.E_STOP
                self._move(ClientState.E_STOP, "estop:true")
                return not was_stopped  # always stop on entering E_STOP
            if self.state is ClientState.E_STOP:
                self._move(ClientState.IDLE, "estop:false")
            return False

    def refuse(self, cause: str) -> None:
        """An activation that may not start: IDLE/ERROR -> ERROR (a fresh activate:true retries)."""
        with self._lock:
            if self.state in (ClientState.IDLE, ClientState.ERROR):
                self._move(ClientState.ERROR, cause)

    def may_play(self, epoch: int) -> bool:
        """A chunk from activation `epoch` may still be queued."""
        with self._lock:
            return epoch == self.epoch and self.state in (ClientState.CONNECTING, ClientState.ACTIVE)

    def play_if_current(self, epoch: int, queue):
        """`queue()` (the chunk into the scheduler), run only while activation `epoch` may still play,
        under the transitions' lock: every transition that leaves CONNECTING/ACTIVE moves the state
        before the node resets the schedule, so the chunk is either cleared by that reset or never
        queued. Returns what `queue()` returned, or None when it did not run."""
        with self._lock:
            if epoch != self.epoch or self.state not in (ClientState.CONNECTING, ClientState.ACTIVE):
                return None
            return queue()

    def chunk_arrived(self, epoch: int) -> bool:
        """A valid chunk for activation `epoch` was queued: CONNECTING -> ACTIVE."""
        with self._lock:
            if epoch != self.epoch or self.state not in (ClientState.CONNECTING, ClientState.ACTIVE):
                return False
            self._move(ClientState.ACTIVE, "first chunk")
            return True

    def fail(self, epoch: int | None, cause: str = "inference failures") -> ClientState | None:
        """Too many consecutive failures during activation `epoch` (None: the current one), or a
        refused activation: move to ERROR and return the state left (None when nothing changed)."""
        with self._lock:
            if epoch is not None and epoch != self.epoch:
                return None
            if self.state not in (ClientState.CONNECTING, ClientState.ACTIVE):
                return None
            left = self.state
            self._move(ClientState.ERROR, cause)
            return left

    def restart(self, cause: str) -> bool:
        """CONNECTING/ACTIVE -> CONNECTING under a new epoch (motion resumes with a chunk of the new
        epoch only; replies of the old one are dropped). False when not running."""
        with self._lock:
            if self.state not in (ClientState.CONNECTING, ClientState.ACTIVE):
                return False
            old, self.state = self.state, ClientState.CONNECTING
            self.epoch += 1
            self._on_change(old, ClientState.CONNECTING, cause)
            return True

    @property
    def wants_inference(self) -> bool:
        return self.state in (ClientState.CONNECTING, ClientState.ACTIVE)
