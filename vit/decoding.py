"""Decoding an upload on a shared server: in a worker process that can be stopped, a few at a time,
within a time limit.

:func:`vit.images.load_image_info` checks a file's header before decoding it (pixels, memory, JPEG
scans), but decoding itself runs in C, cannot be interrupted, and a file can still be slow in ways
no header shows. :func:`decode_upload` therefore decodes in a separate process:

* **A worker per decode.** A small *fork server* (one Python process holding Pillow and numpy, started
  on first use, or by :func:`warm_up`) forks a fresh worker for each decode, in a few milliseconds. The
  worker gets the file's bytes and the limits over a socket (raw bytes and JSON: nothing is
  unpickled on either side), runs :func:`~vit.images.load_image_info`, and sends back the RGB pixels
  in bands of rows, the :class:`~vit.images.ImageInfo` or the :class:`~vit.images.ImageError` as JSON.
  No worker ever decodes two files, so nothing of one student's image can reach another's.
* **A time limit and a stop.** The caller polls every 50 ms; when ``timeout`` seconds have passed, or
  ``cancelled()`` says the result is no longer wanted (the browser tab was closed), the worker is
  killed (SIGKILL) and its CPU use stops at once. The worker also has an address-space limit (1.5 ×
  the memory budget, a backstop for the estimate) and a CPU-time limit, and dies with the fork
  server, which exits when this process does.
* **A cap on concurrency.** At most ``VIT_EXPLORER_DECODES`` (default 2) decodes run at once in this
  process; others wait for a slot (as long as ``timeout``), then get a "busy" message.

When no worker can be started (no ``fork``, a sandbox that forbids it, or
``VIT_EXPLORER_DECODE_ISOLATION=0``), decoding falls back to this process: the header checks, the
memory budget and the concurrency cap still apply, the time limit cannot.

Settings (environment, read at import): ``VIT_EXPLORER_DECODE_SECONDS`` (default 10),
``VIT_EXPLORER_DECODES`` (2), ``VIT_EXPLORER_DECODE_MB`` (256, the memory budget of one decode).

Nothing here imports streamlit, or torch: the fork server imports only ``vit.images`` and what it needs.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import Joined, Message
from .i18n import N_
from .images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_PIXELS,
    MAX_JPEG_SCANS,
    MB,
    ImageError,
    ImageInfo,
    _background,
    _load_info,
    _read_source,
    load_image_info,
)

__all__ = ["DECODE_MEMORY", "DECODE_SECONDS", "MAX_DECODES", "DecodeStats", "decode_measured", "decode_upload",
           "isolation_available", "warm_up", "worker_pids"]

log = logging.getLogger(__name__)


def _env_number(name: str, default: float, cast: type, minimum: float) -> Any:
    raw = os.environ.get(name, "").strip()
    try:
        value = cast(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        value = default
    return cast(max(minimum, value))


#: Wall-clock seconds one decode may take (``VIT_EXPLORER_DECODE_SECONDS``).
DECODE_SECONDS: float = _env_number("VIT_EXPLORER_DECODE_SECONDS", 10.0, float, 0.1)
#: Decodes that may run at once in this process (``VIT_EXPLORER_DECODES``).
MAX_DECODES: int = _env_number("VIT_EXPLORER_DECODES", 2, int, 1)
#: Memory budget of one decode in bytes (``VIT_EXPLORER_DECODE_MB``, in MB).
DECODE_MEMORY: int = _env_number("VIT_EXPLORER_DECODE_MB", DEFAULT_MAX_MEMORY // MB, int, 1) * MB
_ISOLATE = os.environ.get("VIT_EXPLORER_DECODE_ISOLATION", "1").strip() != "0"

POLL_SECONDS = 0.05
_BAND_BYTES = MB  # pixels come back in bands of rows of about this size (each costs the worker ~2.5×)
_STARTUP_SECONDS = 60.0  # the fork server's first start (Python, Pillow, numpy) on a busy machine
_VIT_DIR = Path(__file__).resolve().parent

_slots = threading.BoundedSemaphore(MAX_DECODES)


@dataclass(frozen=True)
class DecodeStats:
    """How a decode went: where it ran and what it cost."""

    isolated: bool  #: in a worker process (False: in this process, the fallback)
    wall_s: float  #: seconds from the call to the result, waiting for a slot included
    cpu_s: float | None  #: CPU seconds of the decode (the worker's; this thread's in the fallback)
    peak_rss_delta: int | None  #: bytes the worker's resident memory grew by at its peak (None in the fallback)
    pid: int | None  #: the worker's process id


def decode_upload(
    source: Any,
    *,
    timeout: float | None = None,
    cancelled: Callable[[], bool] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Any = (255, 255, 255),
    max_memory: int | None = DECODE_MEMORY,
    max_scans: int | None = MAX_JPEG_SCANS,
    isolate: bool | None = None,
) -> tuple[Image.Image, ImageInfo]:
    """Decode an upload like :func:`vit.images.load_image_info`, in a worker that is stopped after
    ``timeout`` seconds (default :data:`DECODE_SECONDS`) or as soon as ``cancelled()`` returns True
    (checked every 50 ms, from this thread), with at most :data:`MAX_DECODES` decodes at once.

    Raises :class:`~vit.images.ImageError`: the loader's own, or ``decode_timeout``, ``decode_busy``
    (no free slot within ``timeout``), ``decode_cancelled`` or ``decode_failed`` (the worker died).
    ``isolate=False`` decodes in this process (``None``: in a worker when one can be started).
    """
    image, info, _stats = decode_measured(
        source, timeout=timeout, cancelled=cancelled, max_bytes=max_bytes, max_pixels=max_pixels,
        background=background, max_memory=max_memory, max_scans=max_scans, isolate=isolate)
    return image, info


def decode_measured(
    source: Any,
    *,
    timeout: float | None = None,
    cancelled: Callable[[], bool] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Any = (255, 255, 255),
    max_memory: int | None = DECODE_MEMORY,
    max_scans: int | None = MAX_JPEG_SCANS,
    isolate: bool | None = None,
) -> tuple[Image.Image, ImageInfo, DecodeStats]:
    """:func:`decode_upload`, and also the :class:`DecodeStats` of the decode."""
    start = time.monotonic()
    timeout = DECODE_SECONDS if timeout is None else max(0.001, float(timeout))
    bg = _background(background)
    data = _read_source(source, int(max_bytes))
    job = {"max_bytes": int(max_bytes), "max_pixels": int(max_pixels), "background": list(bg),
           "max_memory": None if max_memory is None else int(max_memory),
           "max_scans": None if max_scans is None else int(max_scans), "timeout": timeout}
    _acquire(start + timeout, cancelled)
    try:
        if (_ISOLATE if isolate is None else isolate) and isolation_available():
            try:
                return _in_worker(data, job, time.monotonic() + timeout, cancelled, start)
            except _WorkerUnavailable as e:
                _give_up_isolation(str(e))
        cpu = time.thread_time()
        image, info = load_image_info(data, max_bytes=job["max_bytes"], max_pixels=job["max_pixels"], background=bg,
                                      max_memory=job["max_memory"], max_scans=job["max_scans"])
        return image, info, DecodeStats(False, time.monotonic() - start, time.thread_time() - cpu, None, None)
    finally:
        _slots.release()


def worker_pids() -> list[int]:
    """The process ids of the workers decoding right now (to watch them, or count them)."""
    with _live_lock:
        return sorted(_live)


def isolation_available() -> bool:
    """False once starting a worker has failed in this process (decodes then run in-process)."""
    return _unavailable is None


def warm_up() -> None:
    """Start the fork server in the background, so that the first upload does not wait for it."""
    if _ISOLATE and isolation_available():
        threading.Thread(target=_warm, name="vit-decode-warm-up", daemon=True).start()


def _warm() -> None:
    try:
        _server()
    except _WorkerUnavailable as e:
        _give_up_isolation(str(e))


# --------------------------------------------------------------------------------------------------
# Messages


def _timeout_error(seconds: float) -> ImageError:
    return ImageError(
        "decode_timeout",
        N_("Decoding this image took longer than {seconds:g} seconds, so it was stopped. Please upload a "
           "smaller or simpler picture (for example, saved again as an ordinary JPEG or PNG)."),
        seconds=round(seconds, 1),
    )


def _busy_error() -> ImageError:
    return ImageError("decode_busy", N_("The server is busy decoding other pictures. Please try again in a moment."))


def _cancelled_error() -> ImageError:
    return ImageError("decode_cancelled", N_("Decoding this image was cancelled."))


def _failed_error() -> ImageError:
    return ImageError(
        "decode_failed",
        N_("The image could not be decoded: the decoder stopped unexpectedly. Please save it again as an "
           "ordinary JPEG or PNG and try again."),
    )


def _is_cancelled(cancelled: Callable[[], bool] | None) -> bool:
    if cancelled is None:
        return False
    try:
        return bool(cancelled())
    except Exception:  # a broken callback must not stop a decode nobody cancelled
        return False


def _acquire(deadline: float, cancelled: Callable[[], bool] | None) -> None:
    while not _slots.acquire(timeout=POLL_SECONDS):
        if _is_cancelled(cancelled):
            raise _cancelled_error()
        if time.monotonic() >= deadline:
            raise _busy_error()


# --------------------------------------------------------------------------------------------------
# JSON for what crosses between the processes (never pickle)


def _to_json(value: Any) -> Any:
    if isinstance(value, Message):
        return {"$message": value.template, "params": {k: _to_json(v) for k, v in value.params.items()}}
    if isinstance(value, Joined):
        return {"$joined": [_to_json(i) for i in value.items], "sep": value.sep}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return str(value)


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "$message" in value:
            return Message(str(value["$message"]), **{str(k): _from_json(v) for k, v in dict(value["params"]).items()})
        if "$joined" in value:
            return Joined([_from_json(v) for v in value["$joined"]], str(value["sep"]))
        raise ValueError("unexpected object")
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _info_json(info: ImageInfo) -> dict:
    out = {f.name: getattr(info, f.name) for f in fields(ImageInfo) if f.name != "messages"}
    out["messages"] = [[t, {k: _to_json(v) for k, v in p.items()}] for t, p in info.messages]
    return out


def _info_from_json(d: dict) -> ImageInfo:
    w, h = d["original_size"]
    return ImageInfo(
        format=str(d["format"]), original_size=(int(w), int(h)), original_mode=str(d["original_mode"]),
        n_frames=int(d["n_frames"]), n_frames_exact=bool(d["n_frames_exact"]),
        took_first_frame=bool(d["took_first_frame"]), exif_rotated=bool(d["exif_rotated"]),
        downscaled=bool(d["downscaled"]), estimated_bytes=int(d["estimated_bytes"]),
        notes=[str(n) for n in d["notes"]],
        messages=[(str(t), {str(k): _from_json(v) for k, v in dict(p).items()}) for t, p in d["messages"]],
    )


def _error_from_json(d: dict) -> ImageError:
    return ImageError(str(d["code"]), str(d["template"]), **{str(k): _from_json(v) for k, v in dict(d["params"]).items()})


# --------------------------------------------------------------------------------------------------
# This side: the fork server, and one decode in a worker


class _WorkerUnavailable(Exception):
    """No worker could be started: decode in this process instead."""


_unavailable: str | None = None
_server_lock = threading.Lock()
_live_lock = threading.Lock()
_live: set[int] = set()


def _give_up_isolation(reason: str) -> None:
    global _unavailable
    if _unavailable is None:
        log.warning("Cannot start image-decoding workers (%s); decoding in-process, without a time limit.", reason)
    _unavailable = reason


_SERVER_BOOT = """
import sys, types
if "vit" not in sys.modules:  # vit.images and vit.decoding only: vit/__init__ would import torch
    package = types.ModuleType("vit")
    package.__path__ = [sys.argv[1]]
    sys.modules["vit"] = package
from vit.decoding import _serve
_serve(int(sys.argv[2]))
"""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError("the fork server closed its socket")
        out += chunk
    return out


class _ForkServer:
    def __init__(self) -> None:
        if not hasattr(os, "fork") or not hasattr(socket, "send_fds") or not sys.executable:
            raise _WorkerUnavailable("this platform cannot fork worker processes")
        ours, theirs = socket.socketpair()
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER_BOOT, str(_VIT_DIR), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        except OSError as e:
            ours.close()
            raise _WorkerUnavailable(f"cannot start {sys.executable}: {e}") from e
        finally:
            theirs.close()
        self.sock = ours
        self.sock.settimeout(_STARTUP_SECONDS)
        try:
            if _recv_exact(self.sock, 2) != b"ok":
                raise EOFError("unexpected greeting")
        except (OSError, EOFError) as e:
            self.close()
            raise _WorkerUnavailable(f"the fork server did not start: {e}") from e
        self.sock.settimeout(10.0)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.sock, [b"F"], [theirs.fileno()])
            pid = struct.unpack("q", _recv_exact(self.sock, 8))[0]
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        if pid <= 0:
            ours.close()
            raise OSError("the fork server could not fork")
        return pid, ours

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


_SERVER: _ForkServer | None = None


def _server() -> _ForkServer:
    global _SERVER
    with _server_lock:
        if _SERVER is None or not _SERVER.alive():
            if _SERVER is not None:
                _SERVER.close()
            _SERVER = None
            _SERVER = _ForkServer()
        return _SERVER


def _fork_worker() -> tuple[int, socket.socket]:
    """A fresh worker: its pid and our end of its socket. Restarts a dead fork server once."""
    global _SERVER
    for attempt in (1, 2):
        server = _server()
        with _server_lock:
            try:
                return server.fork()
            except (OSError, EOFError) as e:
                if _SERVER is server:
                    server.close()
                    _SERVER = None
                if attempt == 2:
                    raise _WorkerUnavailable(f"cannot fork a worker: {e}") from e
    raise AssertionError("unreachable")


def _stop_server() -> None:
    global _SERVER
    with _server_lock:
        if _SERVER is not None:
            _SERVER.close()
            _SERVER = None


def _forget_server_after_fork() -> None:  # a child of this process must not share (or close) our server
    global _SERVER, _server_lock, _live_lock, _slots
    _SERVER, _server_lock, _live_lock = None, threading.Lock(), threading.Lock()
    _slots = threading.BoundedSemaphore(MAX_DECODES)
    _live.clear()


atexit.register(_stop_server)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_server_after_fork)


class _Worker:
    """A forked worker, watched and killed through a pidfd where there is one (no pid-reuse race)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = None

    def alive(self) -> bool:
        if self.fd is not None:
            return not select.select([self.fd], [], [], 0)[0]
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, wait: float = 2.0, kill: bool = True) -> None:
        """Kill it if it still runs, and wait (a little) until it is gone."""
        try:
            if kill and self.alive():
                if self.fd is not None:
                    signal.pidfd_send_signal(self.fd, signal.SIGKILL)
                else:
                    os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        end = time.monotonic() + wait
        while self.alive() and time.monotonic() < end:
            if self.fd is not None:
                select.select([self.fd], [], [], max(0.0, end - time.monotonic()))
            else:
                time.sleep(0.005)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _receive(conn: Connection, maxlength: int, deadline: float, timeout: float,
             cancelled: Callable[[], bool] | None, worker: _Worker) -> bytes:
    while not conn.poll(POLL_SECONDS):
        if _is_cancelled(cancelled):
            raise _cancelled_error()
        if time.monotonic() >= deadline:
            raise _timeout_error(timeout)
        if not worker.alive() and not conn.poll(0):
            raise EOFError("the worker died")
    return conn.recv_bytes(maxlength)


def _in_worker(data: bytes, job: dict, deadline: float, cancelled: Callable[[], bool] | None,
               start: float) -> tuple[Image.Image, ImageInfo, DecodeStats]:
    pid, sock = _fork_worker()
    worker = _Worker(pid)
    conn = Connection(sock.detach())
    with _live_lock:
        _live.add(pid)
    timeout = job["timeout"]
    finished = False
    try:
        conn.send_bytes(json.dumps(job).encode())
        conn.send_bytes(data)
        head = json.loads(_receive(conn, MB, deadline, timeout, cancelled, worker))
        if "error" in head:
            raise _error_from_json(head["error"])
        w, h = (int(v) for v in head["size"])
        rows, mode = int(head["rows"]), head["mode"]
        if not (0 < w and 0 < h and w * h <= job["max_pixels"] and 0 < rows and mode in ("RGB", "L")):
            raise ValueError(f"implausible result {mode} {w}×{h}")
        info = _info_from_json(head["info"])
        channels = 3 if mode == "RGB" else 1
        image = Image.new(mode, (w, h))
        for top in range(0, h, rows):
            n = min(rows, h - top)
            band = _receive(conn, channels * w * n, deadline, timeout, cancelled, worker)
            if len(band) != channels * w * n:
                raise ValueError("a band of the wrong length")
            image.paste(Image.frombytes(mode, (w, n), band), (0, top))
        if mode == "L":  # a grey picture travels as one byte a pixel
            image = image.convert("RGB")
        tail = json.loads(_receive(conn, 64 * 1024, deadline, timeout, cancelled, worker))
        stats = DecodeStats(True, time.monotonic() - start, float(tail["cpu_s"]), int(tail["peak_rss_delta"]), pid)
        finished = True  # it exits by itself now: no need to kill it or wait for it
        return image, info, stats
    except ImageError:
        raise
    except (EOFError, OSError, ValueError, KeyError, TypeError) as e:  # it died, or said something odd
        raise _failed_error() from e
    finally:
        conn.close()
        worker.stop(wait=0.0 if finished else 2.0, kill=not finished)
        with _live_lock:
            _live.discard(pid)


# --------------------------------------------------------------------------------------------------
# The other side: the fork server and a worker (these run in the fork server's process)


_prctl: Any = None  # libc's prctl, looked up once by the fork server


def _find_prctl() -> None:
    global _prctl
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # noqa: PLC0415

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except Exception:
            _prctl = None


def _die_with_parent() -> None:
    """Linux: be killed when the process that forked us exits (a worker, when the fork server does)."""
    if _prctl is not None:
        try:
            _prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:
            pass


def _serve(fd: int) -> None:
    """The fork server's loop: fork a worker for each socket received; exit when our parent goes."""
    Image.init()  # every Pillow plugin, imported once here rather than in each worker
    _find_prctl()
    gc.freeze()  # what is imported stays put: a worker's garbage collector does not touch (copy) its pages
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is for the app; we follow it
    sock.sendall(b"ok")
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 1, 1)
        except OSError:
            break
        if not msg:  # the app has exited
            break
        if not fds:
            continue
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            code = 1
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _work(fds[0])
                code = 0
            finally:
                os._exit(code)
        for f in fds:
            os.close(f)
        try:
            sock.sendall(struct.pack("q", pid))
        except OSError:
            break


def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_resident() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # noqa: PLC0415

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _limit_resources(job: dict) -> None:
    """A hard backstop under the estimate: address space and CPU time."""
    import resource  # noqa: PLC0415

    try:
        if job["max_memory"] is not None:
            cap = _address_space() + int(1.5 * job["max_memory"]) + 64 * MB
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        seconds = math.ceil(float(job["timeout"])) + 2
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    except (OSError, ValueError):
        pass


def _work(fd: int) -> None:
    """One decode: job and bytes in; a head (size, info or error), bands of RGB rows, a tail (stats) out."""
    _die_with_parent()
    conn = Connection(fd)
    job = json.loads(conn.recv_bytes(64 * 1024))
    data = conn.recv_bytes(int(job["max_bytes"]) + 1)
    _limit_resources(job)
    before, cpu = _resident(), time.process_time()
    try:
        image, info = _load_info(
            data, max_bytes=int(job["max_bytes"]), max_pixels=int(job["max_pixels"]),
            background=tuple(job["background"]), max_memory=job["max_memory"], max_scans=job["max_scans"], grey=True)
    except ImageError as e:
        conn.send_bytes(json.dumps({"error": {"code": e.code, "template": e.template,
                                              "params": {k: _to_json(v) for k, v in e.params.items()}}}).encode())
        return
    del data
    w, h = image.size
    rows = max(1, _BAND_BYTES // (len(image.getbands()) * w))
    conn.send_bytes(json.dumps({"size": [w, h], "mode": image.mode, "rows": rows, "info": _info_json(info)}).encode())
    for top in range(0, h, rows):
        conn.send_bytes(image.crop((0, top, w, min(h, top + rows))).tobytes())
    conn.send_bytes(json.dumps({"cpu_s": time.process_time() - cpu,
                                "peak_rss_delta": max(0, _peak_resident() - before)}).encode())
