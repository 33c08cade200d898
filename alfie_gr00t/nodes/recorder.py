"""Session recording: ROS 2 messages into a rosbag2 bag (MCAP storage), off the 100 Hz tick.

`SessionRecorder.record()` only appends to a bounded queue and returns at once; one writer thread
serializes and writes. When the queue is full the message is dropped and counted: the tick is never
delayed by the disk.

- One bag per session: `start_session(name)` creates the directory `<directory>/<name>` (a `_2`,
  `_3`... suffix when it exists) holding `<name>_0.mcap` (then `_1`, `_2`... past `split_bytes`) and, once
  the session ends, `metadata.yaml`: a rosbag2 bag as `ros2 bag record -s mcap` writes it
  (alfie_gr00t.bag.writer), which `ros2 bag info/play` and rosbags open. With `max_files > 0` the OLDEST
  sessions in the directory are deleted first so that at most `max_files` remain with the new one
  (each deletion logged): `directory` belongs to the recorder.
- Exact bytes: a message object is serialized with rclpy and cut at its CDR end (alfie_gr00t.bag.cdr:
  the middleware's buffer is its estimated size, with uninitialized bytes after the end); bytes given
  with `msg_type=` (a raw subscription) are stored as received.
- Per-topic offered QoS: `qos_of(topic)` (the node's publishers' profiles, rosbag2 form) when given,
  else the ROS 2 default profile.
- Size cap: a message that would take the session past `max_bytes` ends the session (bag finished,
  logged); later messages are dropped and counted until the next `start_session`.
- Crash safety: the current chunk is finalized and the file flushed every `flush_interval_s` (and when a
  chunk reaches `chunk_bytes`), so a killed process leaves a bag readable up to its last complete chunk,
  without metadata.yaml: `alfie_gr00t.bag.recover.reindex` (`groot_bag reindex`) makes it whole.
- `end_session()` and `close()` wait (bounded) for the writer to finish the bag; pass `wait=False` to
  `end_session()` from a thread that must not wait.
- `stats()` counts are per session (reset by `start_session`): written, dropped, bytes; files = sessions
  in the directory.
- One log line per session event: "recording session to <dir>" and "recording ended (...)".
"""

from __future__ import annotations

import collections
import os
import shutil
import threading
import time
from typing import Callable

from alfie_gr00t.bag import metadata as bagmeta
from alfie_gr00t.bag.cdr import exact_cdr
from alfie_gr00t.bag.definitions import message_definition, type_hash, type_name
from alfie_gr00t.bag.writer import BagWriter


def default_qos() -> list[dict]:
    """The ROS 2 default publisher profile (keep_last 10, reliable, volatile) in rosbag2's form."""
    return [bagmeta.qos_profile()]


def qos_from_rclpy(profile) -> dict:
    """An rclpy QoSProfile as rosbag2 stores an offered profile."""
    def duration(d):
        ns = int(getattr(d, "nanoseconds", 0))
        if ns <= 0 or ns >= 2 ** 63 - 1:
            return None  # default / infinite
        return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}

    def name(policy):
        return policy.name.lower()

    return bagmeta.qos_profile(
        history=name(profile.history), depth=profile.depth, reliability=name(profile.reliability),
        durability=name(profile.durability), liveliness=name(profile.liveliness), deadline=duration(profile.deadline),
        lifespan=duration(profile.lifespan), liveliness_lease_duration=duration(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=profile.avoid_ros_namespace_conventions)


def publisher_qos(node, topic: str) -> list[dict]:
    """The offered QoS of every publisher of `topic` in the graph (what `ros2 bag record` stores)."""
    return [qos_from_rclpy(info.qos_profile) for info in node.get_publishers_info_by_topic(topic)]


_START, _MSG, _END, _FLUSH, _STOP = range(5)
_END_RESERVE = 4096  # what the end of a bag adds: the rosbag2 metadata record and the summary


class SessionRecorder:
    def __init__(self, directory: str, *, max_bytes: int, max_files: int, queue_size: int = 2000, log=None,
                 clock_ns: Callable[[], int] = time.time_ns, flush_interval_s: float = 0.5,
                 chunk_bytes: int = 256 * 1024, split_bytes: int = 0, opener: Callable[[str], object] | None = None,
                 qos_of: Callable[[str], list] | None = None):
        """`log(str)` receives one line per session event; `clock_ns` gives log_time (the node's clock);
        `split_bytes` starts the bag's next storage file past that size (0: one file); `opener(path)`
        opens a storage file for binary writing (tests inject a slow disk); `qos_of(topic)` gives the
        offered QoS profiles stored for a topic (rosbag2 form; called once per topic, on the writer thread)."""
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.directory = directory
        self.max_bytes = int(max_bytes)
        self.max_files = int(max_files)
        self.queue_size = int(queue_size)
        self._log = log or (lambda line: None)
        self._clock_ns = clock_ns
        self._flush_interval_s = float(flush_interval_s)
        self._chunk_bytes = int(chunk_bytes)
        self._split_bytes = int(split_bytes)
        self._opener = opener
        self._qos_of = qos_of
        self._cond = threading.Condition()
        self._items: collections.deque = collections.deque()
        self._queued_messages = 0
        self._last_log_ns = 0
        self._accepting = False  # a session is open (on the caller's side) and not capped
        self._cut_short = False  # the open session hit the size cap or a disk error: count what is dropped
        self._generation = 0  # sessions started; control items carry it
        self._done_generation = 0  # sessions the writer has finished
        self._flushes_asked = 0
        self._flushes_done = 0
        self._stats = {"recording": False, "path": "", "written": 0, "dropped": 0, "bytes": 0, "files": 0,
                       "last_error": ""}
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="session_recorder", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- caller side (never blocks)
    def start_session(self, name: str) -> str:
        """A new bag `<directory>/<name>` (suffixed when taken); returns its path."""
        if not name or os.sep in name or name.startswith("."):
            raise ValueError(f"session name {name!r} must be a plain file name")
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, name)
        n = 2
        while os.path.exists(path) or os.path.exists(path + ".mcap"):
            path = os.path.join(self.directory, f"{name}_{n}")
            n += 1
        os.makedirs(path)  # claimed now: a second start_session before the writer opens it picks another
        with self._cond:
            if self._closed:
                raise RuntimeError("SessionRecorder is closed")
            if self._accepting:
                self._items.append((_END, self._generation))
            self._generation += 1
            self._accepting = True
            self._cut_short = False
            self._stats.update(recording=True, path=path, written=0, dropped=0, bytes=0, last_error="")
            self._items.append((_START, self._generation, path))
            self._cond.notify()
        return path

    def record(self, topic: str, msg, publish_time_ns: int, msg_type: str = "") -> bool:
        """Enqueue one message (a ROS message object, or its serialized bytes as a raw subscription got
        them, with `msg_type` 'pkg/msg/Type'); False (and counted as dropped) when the queue is full or
        the session was capped or failed; False (not counted) when no session is open. Never blocks."""
        if isinstance(msg, (bytes, bytearray, memoryview)):
            if not msg_type:
                raise ValueError("serialized bytes need msg_type ('pkg/msg/Type')")
            msg = (msg_type, bytes(msg))
        with self._cond:
            if not self._accepting:
                if self._cut_short:
                    self._stats["dropped"] += 1
                return False
            if self._queued_messages >= self.queue_size:
                self._stats["dropped"] += 1
                return False
            log_ns = max(int(self._clock_ns()), self._last_log_ns + 1)
            self._last_log_ns = log_ns
            self._items.append((_MSG, self._generation, topic, msg, int(publish_time_ns), log_ns))
            self._queued_messages += 1
            self._cond.notify()
        return True

    def end_session(self, *, wait: bool = True, timeout: float = 10.0) -> None:
        """Close the current file (last chunk, indexes and summary written). Waits up to `timeout` for the
        writer unless `wait=False`."""
        with self._cond:
            generation = self._generation
            self._cut_short = False
            if self._accepting:
                self._accepting = False
            self._items.append((_END, generation))
            self._cond.notify()
        if wait:
            self._wait(lambda: self._done_generation >= generation, timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued so far into the file as complete chunks; True when done in time."""
        with self._cond:
            self._flushes_asked += 1
            ticket = self._flushes_asked
            self._items.append((_FLUSH, ticket))
            self._cond.notify()
        return self._wait(lambda: self._flushes_done >= ticket, timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._accepting:
                self._accepting = False
                self._items.append((_END, self._generation))
            self._items.append((_STOP,))
            self._cond.notify()
        self._thread.join(timeout)

    def stats(self) -> dict:
        with self._cond:
            return dict(self._stats)

    def _wait(self, done, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    # ----------------------------------------------------------------- writer thread
    def _run(self) -> None:
        from rclpy.serialization import serialize_message

        self._serialize = serialize_message
        self._writer: BagWriter | None = None
        self._path = ""
        self._session = 0
        self._last_flush = time.monotonic()
        while True:
            with self._cond:
                while not self._items:
                    timeout = None
                    if self._writer is not None:
                        timeout = max(0.0, self._last_flush + self._flush_interval_s - time.monotonic())
                    if timeout == 0.0:
                        break
                    self._cond.wait(timeout)
                item = self._items.popleft() if self._items else None
                if item is not None and item[0] == _MSG:
                    self._queued_messages -= 1
            if item is None:
                self._guard(self._flush_chunk)
                continue
            kind = item[0]
            if kind == _STOP:
                self._guard(self._finish, "closed")
                with self._cond:
                    self._done_generation = self._generation
                    self._cond.notify_all()
                return
            if kind == _START:
                self._guard(self._finish, "next session")
                self._guard(self._open, item[1], item[2])
            elif kind == _END:
                if item[1] == self._session:
                    self._guard(self._finish, "session ended")
                with self._cond:
                    self._done_generation = max(self._done_generation, item[1])
                    self._cond.notify_all()
            elif kind == _FLUSH:
                self._guard(self._flush_chunk)
                with self._cond:
                    self._flushes_done = item[1]
                    self._cond.notify_all()
            elif kind == _MSG:
                self._guard(self._write, *item[1:])
            if self._writer is not None and time.monotonic() - self._last_flush >= self._flush_interval_s:
                self._guard(self._flush_chunk)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # the disk, a type without a .msg: say so, keep the thread alive
            error = f"{type(exc).__name__}: {exc}"
            self._log(f"recorder: {error}")
            with self._cond:
                self._stats["last_error"] = error
            self._abandon()

    def _abandon(self) -> None:
        """The bag cannot be written any more: drop it (what reached the disk stays readable)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()
        with self._cond:
            if self._session == self._generation and writer is not None and self._accepting:
                self._accepting = False
                self._cut_short = True
            self._stats["recording"] = False

    def _open(self, generation: int, path: str) -> None:
        self._session = generation
        self._enforce_max_files(path)
        self._writer = BagWriter(path, split_bytes=self._split_bytes, chunk_bytes=self._chunk_bytes,
                                 opener=self._opener)
        self._path = path
        self._last_flush = time.monotonic()
        self._log(f"recording session to {path}")
        with self._cond:
            self._stats["files"] = len(self._sessions())

    def _sessions(self) -> list[str]:
        """The sessions in the directory: bag directories (metadata.yaml or .mcap storage), older bare .mcap files."""
        found = []
        for entry in os.scandir(self.directory):
            if entry.is_file() and entry.name.endswith(".mcap"):
                found.append(entry.path)
            elif entry.is_dir() and _is_bag(entry.path):
                found.append(entry.path)
        return found

    def _enforce_max_files(self, new_path: str) -> None:
        if self.max_files <= 0:
            return
        sessions = [f for f in self._sessions() if os.path.abspath(f) != os.path.abspath(new_path)]
        sessions.sort(key=lambda f: (os.path.getmtime(f), f))
        while len(sessions) >= self.max_files:
            oldest = sessions.pop(0)
            if os.path.isdir(oldest):
                shutil.rmtree(oldest)
            else:
                os.remove(oldest)
            self._log(f"recorder: record_max_files={self.max_files} reached: deleted the oldest session {oldest}")

    def _serialized(self, msg) -> tuple[str, bytes]:
        """(type, bytes to store) of a queued message: exact CDR, or a raw subscription's bytes as received."""
        if isinstance(msg, tuple):  # (type, bytes) from a raw subscription
            return msg
        return type_name(msg), exact_cdr(type(msg), self._serialize(msg))

    def _write(self, generation: int, topic: str, msg, publish_ns: int, log_ns: int) -> None:
        writer = self._writer
        if writer is None or generation != self._session:
            with self._cond:
                if generation == self._generation:
                    self._stats["dropped"] += 1
            return
        try:
            full_type, data = self._serialized(msg)
            if not writer.has_topic(topic):
                qos = self._qos_of(topic) if self._qos_of is not None else None
                writer.add_topic(topic, full_type, message_definition(full_type), qos=qos or default_qos(),
                                 type_hash=type_hash(full_type))
        except Exception as exc:  # not a ROS message, or a type without a .msg file: drop it, say why
            with self._cond:
                self._stats["dropped"] += 1
                self._stats["last_error"] = f"{topic}: {type(exc).__name__}: {exc}"
            return
        if self.max_bytes > 0 and writer.bytes + len(data) + 64 + _END_RESERVE > self.max_bytes:
            self._log(f"recorder: {self._path} reached record_max_mb ({self.max_bytes} bytes): session "
                      f"ended, dropping until the next activation")
            with self._cond:
                if self._generation == generation and self._accepting:
                    self._accepting = False
                    self._cut_short = True
                self._stats["dropped"] += 1
            self._finish("size cap")
            return
        writer.write(topic, data, log_ns, publish_ns)
        with self._cond:
            self._stats["written"] += 1
            self._stats["bytes"] = writer.bytes

    def _flush_chunk(self) -> None:
        self._last_flush = time.monotonic()
        if self._writer is None:
            return
        self._writer.flush()
        with self._cond:
            self._stats["bytes"] = self._writer.bytes

    def _finish(self, why: str) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        finally:
            with self._cond:
                self._stats["recording"] = False
                self._stats["bytes"] = writer.bytes
                written = self._stats["written"]
            self._log(f"recording ended ({why}): {self._path}, {written} messages, {writer.bytes} bytes in "
                      f"{len(writer.paths)} file(s)")


def _is_bag(path: str) -> bool:
    """A directory the recorder wrote: metadata.yaml or .mcap storage files, nothing else."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return bool(names) and all(n == bagmeta.FILE_NAME or n.endswith(".mcap") for n in names)
