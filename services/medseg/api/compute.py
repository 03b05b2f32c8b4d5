"""Interactions computed off the API process: child processes with a per-request deadline.

The graph cut and the geodesic distance hold the GIL for as long as they run, so a request that
computes in the API process stalls every other request of that process, /healthz included. Here
each interaction runs in one of `processes` child processes (started with "spawn": no inherited
threads, locks or onnxruntime sessions), each with its own Redis connection, caches and plug-in
registries built from the same settings as the API's.

The API process takes the session lock and keeps extending it while the child computes (its
GIL is free); the child commits with the lock's fence. When the deadline passes, the API process
first releases the lock (from then on the child's commit cannot land), then kills the child
(SIGKILL: a child stuck in C code runs no signal handler), answers 504 and starts a replacement.

Written here rather than taken from a library: pebble's ProcessPool stops a worker with SIGTERM,
which its workers handle in Python (so a child in PyMaxflow's C code dies only at its SIGKILL,
3 s later, while pebble's manager thread waits), and it cannot address one worker: neither
warming each child at start nor sending a session's clicks to the child whose cache holds its
image. What is needed is small: one pipe per child, a free-list and a kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import structlog

from medseg.errors import DeadlineExceeded, MedsegError, plain
from medseg.plugins import Plugins
from medseg.store import Store
from medseg.store.records import SessionMeta

log = structlog.get_logger("medseg.api")

T = TypeVar("T")
START_TIMEOUT_S = 120.0  # a cold child imports numpy, scipy, onnxruntime (slow on a busy host)

# glibc's malloc hands freed memory back to the system once more than its trim threshold is
# free at the top of the heap, and serves blocks over its mmap threshold from fresh mappings;
# both thresholds follow the largest block freed so far (twice it, ~0.5 MB in a compute
# child). A 2D click's arrays (~6 MB) then came back as fresh pages on every click: ~1,400
# page faults, ~1.5 ms of its ~12 ms (docs/benchmarks.md, "2D click: the compute child's page
# faults"). With fixed thresholds the child keeps them for the next click.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed: smaller blocks come from the heap
TRIM_THRESHOLD = 128 << 20  # free heap kept for the next call; a 3D click's arrays fit


@dataclass(frozen=True)
class ChildConfig:
    """What a child needs to build its own store and plug-ins (the API's settings' values)."""

    redis_url: str
    session_ttl_s: int
    cache_bytes: int
    job_heartbeat_s: float
    plugins: str
    log_level: str = "INFO"
    log_json: bool = True
    engine_threads: int = 2  # the engine's worker threads in the child (builtin.configure_engine)


def _child_main(conn: Connection, config: ChildConfig) -> None:
    """A child: build the store and plug-ins, say ready, then run calls until the pipe closes
    (the API process stopped or died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    keep_freed_memory()
    from medseg import builtin
    from medseg.api.logging import configure

    configure(config.log_level, config.log_json)
    store = Store.connect(config.redis_url, config.session_ttl_s, config.cache_bytes,
                          job_heartbeat_s=config.job_heartbeat_s)
    plugins = builtin.build(config.plugins)
    builtin.configure_engine(config.engine_threads)
    from medseg.algorithms.geodesic import warm_up

    # the fused geodesic scan compiled (or loaded from numba's cache, ~1 s) meanwhile: a click
    # that comes first waits for it, a process that is only started and stopped does not
    threading.Thread(target=warm_up, name="numba-warm-up", daemon=True).start()
    conn.send("ready")
    while True:
        try:
            fn, args, fence = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple = ("ok", fn(store, plugins, *args, fence=fence), None)
        except Exception as exc:
            reply = ("error", exc, traceback.format_exc())
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an answer that does not pickle
            conn.send(("error", RuntimeError(f"unpicklable result: {type(exc).__name__}"),
                       traceback.format_exc()))


def keep_freed_memory() -> bool:
    """Fix glibc malloc's thresholds in this process (MMAP_THRESHOLD, TRIM_THRESHOLD), so the
    memory one call frees serves the next without new page faults. Returns whether the C
    library took them (False without glibc's `mallopt`: musl, macOS; nothing changes there)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mmap first: setting it turns the dynamic adjustment of both thresholds off
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


class _Child:
    def __init__(self, context, config: ChildConfig):
        self.conn, child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_child_main, args=(child_end, config),
                                       name="medseg-compute", daemon=True)
        self.process.start()
        child_end.close()
        self.session: str | None = None  # the session it computed last (its cache holds it)

    def wait_ready(self, timeout_s: float) -> None:
        if not self.conn.poll(timeout_s) or self.conn.recv() != "ready":
            raise RuntimeError(f"compute process {self.process.pid} did not start within "
                               f"{plain(timeout_s)} s")

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class ComputePool:
    """Runs `fn(store, plugins, *args, fence=...)` under the session lock: in a child process
    with a deadline, or with `processes=0` in the calling thread (no deadline)."""

    def __init__(self, store: Store, plugins: Plugins, config: ChildConfig, processes: int,
                 deadline_s: float):
        self.store, self.plugins, self.config = store, plugins, config
        self.processes, self.deadline_s = processes, deadline_s
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Child] = []
        self._changed = threading.Condition()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start every child and wait until each has built its store and plug-ins, so the
        first click does not pay for a cold start."""
        children = [_Child(self._context, self.config) for _ in range(self.processes)]
        try:
            for child in children:
                child.wait_ready(START_TIMEOUT_S)
        except BaseException:
            for child in children:
                child.kill()
            raise
        with self._changed:
            self._idle.extend(children)
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._closed = True
            children, self._idle = self._idle, []
            self._changed.notify_all()
        for child in children:
            child.kill()

    # -- calls -------------------------------------------------------------------------------
    def run(self, meta: SessionMeta, segment_id: int, fn: Callable[..., T], *args: Any) -> T:
        """`fn(store, plugins, *args, fence=fence)` changing `segment_id`, holding the session
        lock. DeadlineExceeded (nothing applied) when it does not finish within the deadline,
        counted from when the lock is held (waiting for a free child included)."""
        if self.processes == 0:
            with self.store.sessions.locked(meta.id) as fence:
                return fn(self.store, self.plugins, *args, fence=fence)
        # the segment's head, for the deadline's message, read by the lock's own script
        with self.store.sessions.locked_reading(meta.id, segment_id) as (fence, raw):
            deadline = time.monotonic() + self.deadline_s
            head = self.store.segments.parse(meta, segment_id, raw).head
            child = self._take(meta.id, deadline)
            revoked = False
            try:
                child.conn.send((fn, args, fence))
                answered = child.conn.poll(max(deadline - time.monotonic(), 0.0))
                if not answered:
                    # revoke first: from here on the child's commit cannot land
                    self.store.sessions.release(fence)
                    revoked, answered = True, child.conn.poll(0)
                if not answered:
                    self._replace(child)
                    raise self._deadline_error(meta, segment_id, head)
                status, value, trace = child.conn.recv()
            except (EOFError, OSError):
                self._replace(child)
                raise RuntimeError(f"compute process {child.process.pid} died "
                                   "(killed by the system?); nothing was applied") from None
            self._give_back(child, meta.id)
        if status == "ok":
            return value  # finished in time, or committed just before the lock was revoked
        if revoked:  # failed (or refused for the revoked lock) past the deadline
            raise self._deadline_error(meta, segment_id, head)
        if not isinstance(value, MedsegError):
            log.error("compute_error", error_type=type(value).__name__, traceback=trace)
        raise value

    def _deadline_error(self, meta: SessionMeta, segment_id: int, head: int) -> DeadlineExceeded:
        now = self.store.segments.get(meta, segment_id).head
        deadline = plain(self.deadline_s)
        if now != head:  # committed in the instant before the lock was revoked
            return DeadlineExceeded(
                f"the change took longer than the {deadline} s deadline; it was applied as "
                f"revision {now} just before it was stopped: fetch the delta from {head}")
        return DeadlineExceeded(
            f"the change took longer than the {deadline} s deadline "
            "(MEDSEG_REQUEST_DEADLINE_S) and was stopped; nothing was applied: try a smaller "
            "region, fewer marks or a faster method")

    def _take(self, session_id: str, deadline: float) -> _Child:
        """A free child, the one that computed this session last if it is free."""
        with self._changed:
            while not self._idle:
                if self._closed:
                    raise RuntimeError("the compute pool is stopped")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(
                        f"no compute process was free within the {plain(self.deadline_s)} s "
                        "deadline (all busy with other requests); nothing was applied: retry")
                self._changed.wait(left)
            same = [c for c in self._idle if c.session == session_id]
            child = same[-1] if same else self._idle[-1]
            self._idle.remove(child)
            return child

    def _give_back(self, child: _Child, session_id: str) -> None:
        child.session = session_id
        with self._changed:
            if self._closed:
                child.kill()
                return
            self._idle.append(child)
            self._changed.notify()

    def _replace(self, child: _Child) -> None:
        """Kill `child` and start another in the background."""
        child.kill()
        threading.Thread(target=self._start_one, name="compute-replace", daemon=True).start()

    def _start_one(self) -> None:
        pause = 1.0
        while not self._closed:
            child = _Child(self._context, self.config)
            try:
                child.wait_ready(START_TIMEOUT_S)
            except (RuntimeError, EOFError, OSError) as exc:
                child.kill()
                log.error("compute_process_start_failed", error=str(exc))
                time.sleep(pause)  # a broken install must not spin
                pause = min(2 * pause, 60.0)
                continue
            self._give_back(child, "")
            return
