"""Session recording: ROS 2 messages into MCAP files (ROS 2 CDR, profile "ros2"), off the 100 Hz tick.

`SessionRecorder.record()` only appends to a bounded queue and returns at once; one writer thread
serializes (rclpy.serialization, real CDR) and writes (the `mcap` library). When the queue is full the
message is dropped and counted: the tick is never delayed by the disk.

- One file per session: `start_session(name)` opens `<directory>/<name>.mcap` (a `_2`, `_3`... suffix
  when that name exists), closing any open one. With `max_files > 0` the OLDEST `*.mcap` files in the
  directory are deleted first so that at most `max_files` remain with the new one (each deletion logged):
  `directory` belongs to the recorder.
- Size cap: a message that would take the file past `max_bytes` ends the session file (summary written,
  logged); later messages are dropped and counted until the next `start_session`.
- Crash safety: the current chunk is finalized and the file flushed every `flush_interval_s` (and when a
  chunk reaches `chunk_bytes`), so a killed process leaves a file readable up to its last complete chunk
  (`alfie_gr00t.tools.session.read_session` reads it, with a warning; `mcap recover` rewrites it whole).
- Schemas: encoding "ros2msg", the type's .msg text followed by each dependency as a
  "=====...\\nMSG: pkg/Type" block, as rosbag2 writes them, read from `<prefix>/share/<pkg>/msg/`.
- `end_session()` and `close()` wait (bounded) for the writer to finish the file; pass `wait=False` to
  `end_session()` from a thread that must not wait.
- `stats()` counts are per session (reset by `start_session`): written, dropped, bytes; files = session
  files in the directory.
"""

from __future__ import annotations

import collections
import glob
import os
import sys
import threading
import time
from typing import Callable

# ROS 2 built-in .msg field types: never a dependency.
_PRIMITIVES = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
    "int64", "uint64", "string", "wstring",
}
_SEPARATOR = "=" * 80


def type_name(msg) -> str:
    """'sensor_msgs/msg/CompressedImage' for a generated ROS 2 message instance (or class)."""
    cls = msg if isinstance(msg, type) else type(msg)
    package = cls.__module__.split(".")[0]
    return f"{package}/msg/{cls.__name__}"


def _share_prefixes(package: str) -> list[str]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    module = sys.modules.get(package)
    if module is None:
        try:
            module = __import__(package)
        except ImportError:
            module = None
    if module is not None and getattr(module, "__file__", None):
        # <prefix>/lib/pythonX.Y/site-packages/<pkg>/__init__.py -> <prefix>
        prefixes.append(os.path.abspath(os.path.join(os.path.dirname(module.__file__), "..", "..", "..", "..")))
    prefixes.append(sys.prefix)
    return prefixes


def _msg_file(package: str, name: str) -> str:
    for prefix in _share_prefixes(package):
        path = os.path.join(prefix, "share", package, "msg", f"{name}.msg")
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no {package}/msg/{name}.msg under share/ of {_share_prefixes(package)}")


def _dependencies(package: str, text: str) -> list[tuple[str, str]]:
    """The (package, Type) of every non-primitive field of a .msg text, in order of appearance."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or "=" in parts[0]:
            continue
        field_type = parts[0].split("[", 1)[0].split("<=", 1)[0]
        if field_type in _PRIMITIVES:
            continue
        if "/" in field_type:
            bits = field_type.split("/")
            dep = (bits[0], bits[-1])
        else:
            dep = (package, field_type)
        if dep not in found:
            found.append(dep)
    return found


_DEFINITIONS: dict[str, str] = {}
_DEFINITIONS_LOCK = threading.Lock()


def message_definition(full_type: str) -> str:
    """The ros2msg schema text of 'pkg/msg/Type' as rosbag2 writes it: the type's .msg text, then each
    (transitive) dependency once as '====...\\nMSG: pkg/Type\\n<its .msg text>'."""
    with _DEFINITIONS_LOCK:
        if full_type in _DEFINITIONS:
            return _DEFINITIONS[full_type]
    package, _, name = full_type.split("/")
    with open(_msg_file(package, name), encoding="utf-8") as f:
        root = f.read()
    parts = [root.rstrip("\n")]
    seen = {(package, name)}
    todo = list(_dependencies(package, root))
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        with open(_msg_file(*dep), encoding="utf-8") as f:
            text = f.read()
        parts.append(f"{_SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{text.rstrip(chr(10))}")
        todo.extend(d for d in _dependencies(dep[0], text) if d not in seen)
    definition = "\n".join(parts) + "\n"
    with _DEFINITIONS_LOCK:
        _DEFINITIONS[full_type] = definition
    return definition


class _CountingFile:
    """The session file as the mcap Writer sees it; counts the bytes written through it."""

    def __init__(self, raw):
        self.raw = raw
        self.count = 0

    def write(self, data) -> int:
        n = self.raw.write(data)
        self.count += len(data)
        return n if n is not None else len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()


_START, _MSG, _END, _FLUSH, _STOP = range(5)


class SessionRecorder:
    def __init__(self, directory: str, *, max_bytes: int, max_files: int, queue_size: int = 2000, log=None,
                 clock_ns: Callable[[], int] = time.time_ns, flush_interval_s: float = 0.5,
                 chunk_bytes: int = 256 * 1024, opener: Callable[[str], object] | None = None):
        """`log(str)` receives one line per session event; `clock_ns` gives log_time (the node's clock);
        `opener(path)` opens a session file for binary writing (tests inject a slow disk)."""
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
        self._opener = opener or (lambda path: open(path, "xb"))
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
        if not name or os.sep in name or name.startswith("."):
            raise ValueError(f"session name {name!r} must be a plain file name")
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"{name}.mcap")
        n = 2
        while os.path.exists(path):
            path = os.path.join(self.directory, f"{name}_{n}.mcap")
            n += 1
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

    def record(self, topic: str, msg, publish_time_ns: int) -> bool:
        """Enqueue one message; False (and counted as dropped) when the queue is full or the session was
        capped or failed; False (not counted) when no session is open. Never blocks on the disk."""
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
        self._file = None
        self._writer = None
        self._path = ""
        self._session = 0
        self._schemas: dict[str, int] = {}
        self._channels: dict[tuple[str, str], int] = {}
        self._pending = 0
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
        """The file cannot be written any more: drop it (what reached the disk stays readable)."""
        writer, raw = self._writer, self._file
        self._writer = self._file = None
        if raw is not None:
            try:
                raw.close()
            except Exception:
                pass
        with self._cond:
            if self._session == self._generation and writer is not None and self._accepting:
                self._accepting = False
                self._cut_short = True
            self._stats["recording"] = False

    def _open(self, generation: int, path: str) -> None:
        from mcap.writer import CompressionType, Writer

        self._session = generation
        self._enforce_max_files(path)
        self._file = _CountingFile(self._opener(path))
        self._writer = Writer(self._file, chunk_size=self._chunk_bytes, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="alfie_gr00t SessionRecorder (mcap python)")
        self._path = path
        self._schemas, self._channels, self._pending = {}, {}, 0
        self._last_flush = time.monotonic()
        self._log(f"recording session to {path}")
        with self._cond:
            self._stats["files"] = len(self._session_files())

    def _session_files(self) -> list[str]:
        return glob.glob(os.path.join(glob.escape(self.directory), "*.mcap"))

    def _enforce_max_files(self, new_path: str) -> None:
        if self.max_files <= 0:
            return
        files = [f for f in self._session_files() if os.path.abspath(f) != os.path.abspath(new_path)]
        files.sort(key=lambda f: (os.path.getmtime(f), f))
        while len(files) >= self.max_files:
            oldest = files.pop(0)
            os.remove(oldest)
            self._log(f"recorder: record_max_files={self.max_files} reached: deleted the oldest session {oldest}")

    def _write(self, generation: int, topic: str, msg, publish_ns: int, log_ns: int) -> None:
        if self._writer is None or generation != self._session:
            with self._cond:
                if generation == self._generation:
                    self._stats["dropped"] += 1
            return
        try:
            full_type = type_name(msg)
            data = self._serialize(msg)
            schema_id = self._schemas.get(full_type)
            if schema_id is None:
                definition = message_definition(full_type).encode()
        except Exception as exc:  # not a ROS message, or a type without a .msg file: drop it, say why
            with self._cond:
                self._stats["dropped"] += 1
                self._stats["last_error"] = f"{topic}: {type(exc).__name__}: {exc}"
            return
        if self.max_bytes > 0 and self._file.count + self._pending + len(data) + 64 > self.max_bytes:
            self._log(f"recorder: {self._path} reached record_max_mb ({self.max_bytes} bytes): session file "
                      f"ended, dropping until the next activation")
            with self._cond:
                if self._generation == generation and self._accepting:
                    self._accepting = False
                    self._cut_short = True
                self._stats["dropped"] += 1
            self._finish("size cap")
            return
        if schema_id is None:
            schema_id = self._writer.register_schema(full_type, "ros2msg", definition)
            self._schemas[full_type] = schema_id
        channel_id = self._channels.get((topic, full_type))
        if channel_id is None:
            channel_id = self._writer.register_channel(topic, "cdr", schema_id)
            self._channels[(topic, full_type)] = channel_id
        before = self._file.count
        self._writer.add_message(channel_id, log_ns, data, publish_ns)
        # a chunk the writer finalized on its own holds everything pending, this message included
        self._pending = 0 if self._file.count != before else self._pending + len(data) + 32
        with self._cond:
            self._stats["written"] += 1
            self._stats["bytes"] = self._file.count + self._pending

    def _flush_chunk(self) -> None:
        self._last_flush = time.monotonic()
        if self._writer is None:
            return
        self._writer.flush()
        self._pending = 0
        with self._cond:
            self._stats["bytes"] = self._file.count

    def _finish(self, why: str) -> None:
        writer, raw = self._writer, self._file
        if writer is None:
            return
        self._writer = self._file = None
        try:
            writer.finish()
            raw.flush()
        finally:
            raw.close()
            with self._cond:
                self._stats["recording"] = False
                self._stats["bytes"] = raw.count
                written = self._stats["written"]
            self._log(f"recording ended ({why}): {self._path}, {written} messages, {raw.count} bytes")
