"""A classroom load test: K students use one ViT Explorer server at the same time, in real browsers.

    python scripts/load_test.py --students 10 --json load.json                 # --mode browser, the default
    python scripts/load_test.py --mode protocol --students 5,10,20 --duration 60  # the server alone

Two modes:

* ``--mode browser`` (the default, described below): K headless Chromiums. They run on the same
  cores as the server, so on a small machine its latencies measure the browsers as much as the
  server; it shows what a student sees (screenshots, the thumbnail's colour) end to end.
* ``--mode protocol``: simulated students speak Streamlit's websocket protocol without rendering
  (``scripts/load_protocol.py``, whose docstring gives the protocol, the model of a student's
  behaviour with think times, the capacity search ``--search``, ``--hostile`` and the memory mode
  ``--sessions N``). Use it to measure the server: latencies per action (page open, slider step,
  upload; p50/p95/p99), the server's CPU and RSS, errors and mix-ups. ``--mode protocol --help``
  lists its options.

What the browser mode does:

1. starts the real server (``streamlit run app.py``) on a free port bound to 127.0.0.1;
2. opens one headless Chromium with K browser contexts (K separate sessions, like K laptops);
3. every student at once uploads their own image, a solid colour with their number drawn on it
   (``student-<i>.png``), and waits until the start page has finished running;
4. then clicks "4. Attention" in the sidebar and waits until that page has finished and drawn
   its Plotly figures;
5. checks that each student sees their own result: the sidebar caption names their own file, and
   the sidebar thumbnail, fetched from the server, has their own colour (not a classmate's);
6. reports p50/p95 latencies, errors, mix-ups and the server's peak memory (RSS of the server
   process and its children, sampled every 0.2 s) as a Markdown table, and as JSON with ``--json``.

Everything stays on 127.0.0.1 (Chromium's host resolver maps every other name to nowhere), and the
whole run stops by itself after ``--timeout`` seconds, server included. This is not a pytest test:
it is slow and its numbers depend on the machine. Needs ``pip install playwright`` and Debian's
Chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import asyncio
import colorsys
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 # Nothing but 127.0.0.1 resolves: no request can leave the machine.
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
SIDEBAR = "[data-testid='stSidebar']"
THUMBNAIL = f"{SIDEBAR} [data-testid='stImage'] img"
ATTENTION_LINK = "4. Attention"
COLOUR_TOLERANCE = 12.0  # per-channel mean difference allowed (PNG/JPEG re-encoding, resizing)


# --- the server -------------------------------------------------------------------------------------


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers_server import free_port, healthy  # noqa: E402  (the tests' server helpers)


class Server:
    """``streamlit run app.py`` on 127.0.0.1:port, in its own process group, stopped on exit."""

    def __init__(self, port: int, env: dict[str, str]):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix="vit-load-test-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **env}, start_new_session=True)

    def wait_healthy(self, deadline: float) -> None:
        while not healthy(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {self.proc.returncode}" if self.proc.poll() is not None else "never became healthy"
                raise RuntimeError(f"the server {why}; log {self.log.name}:\n{self.log_tail()}")
            time.sleep(0.3)

    def log_tail(self, n: int = 3000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group we started: the server and its children
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.log.close()


# --- memory -----------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:  # fields[0] is the state, fields[1] the parent
                kids.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    try:
        import psutil  # optional

        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
        return sum(q.memory_info().rss for q in procs if q.is_running()) / 2**20
    except ImportError:
        pass
    except Exception:  # the process went away while we looked
        return 0.0
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _rss_kib(p)
        todo += _children(p)
    return total / 1024


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = self.idle = self.last = 0.0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            rss = tree_rss_mib(self.pid)
            if rss:
                self.last = rss
                self.peak = max(self.peak, rss)
                self.samples += 1
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


# --- students ---------------------------------------------------------------------------------------


def student_colour(i: int, k: int) -> tuple[int, int, int]:
    """K colours spread around the hue circle, two alternating brightnesses: easy to tell apart."""
    h = (i / max(k, 1) + 0.013) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.9 if i % 2 == 0 else 0.6)
    return round(r * 255), round(g * 255), round(b * 255)


def student_image(i: int, k: int, size: int = 96) -> tuple[bytes, np.ndarray]:
    """PNG bytes of a solid colour with the student's number on it, and the image's mean colour."""
    colour = student_colour(i, k)
    im = Image.new("RGB", (size, size), colour)
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.load_default(size=size // 3)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    ink = (0, 0, 0) if sum(colour) > 3 * 128 else (255, 255, 255)
    draw.text((size // 2, size // 2), str(i), fill=ink, font=font, anchor="mm")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue(), np.asarray(im, dtype=np.float64).reshape(-1, 3).mean(0)


@dataclass
class Result:
    student: int
    file: str
    colour: tuple[int, int, int]
    upload_s: float | None = None  # upload → start page finished
    attention_s: float | None = None  # click "4. Attention" → attention page finished
    caption_ok: bool | None = None
    colour_ok: bool | None = None
    thumbnail_mean: list[float] | None = None
    closest_student: int | None = None
    exceptions: int = 0
    error: str | None = None
    step: str = "not started"
    external_requests: list[str] = field(default_factory=list)

    @property
    def mixed_up(self) -> bool:
        return self.caption_ok is False or self.colour_ok is False


async def run_student(res: Result, k: int, browser, url: str, expected: list[np.ndarray], timeout_ms: float,
                      shots: Path | None, ready: asyncio.Event, start_gate: asyncio.Event) -> Result:
    i, name = res.student, res.file
    data, _ = student_image(i, k)
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(timeout_ms)
    page = await context.new_page()
    page.on("request", lambda r: None if urlparse(r.url).hostname in ("127.0.0.1", None) or r.url.startswith(("data:", "blob:"))
            else res.external_requests.append(r.url))
    res.step = "opening the app"
    try:
        await page.goto(url, wait_until="domcontentloaded")
        await page.wait_for_selector(IDLE)
        await page.get_by_role("tab", name="Upload").click()
        upload = page.locator("input[type=file]").first
        await upload.wait_for(state="attached")
        ready.set()
        await start_gate.wait()  # everyone uploads at the same moment

        res.step = "uploading"
        t0 = time.perf_counter()
        await upload.set_input_files(files=[{"name": name, "mimeType": "image/png", "buffer": data}])
        # The sidebar is drawn at the end of the run; then the app goes idle.
        await page.locator(f"{SIDEBAR} [data-testid='stImage']", has_text=f"upload: {name}").wait_for()
        await page.wait_for_selector(IDLE)
        res.upload_s = time.perf_counter() - t0

        res.step = "opening 4. Attention"
        t1 = time.perf_counter()
        await page.locator("[data-testid='stSidebarNav'] a", has_text=ATTENTION_LINK).first.click()
        await page.wait_for_url("**/attention*")
        await page.locator("[data-testid='stPlotlyChart']").first.wait_for(state="visible")
        await page.wait_for_selector(IDLE)
        await page.locator(f"{SIDEBAR} [data-testid='stImage']").first.wait_for()
        res.attention_s = time.perf_counter() - t1

        res.step = "checking"
        res.exceptions = await page.locator("[data-testid='stException']").count()
        sidebar_text = await page.locator(SIDEBAR).inner_text()
        res.caption_ok = f"upload: {name}" in sidebar_text
        src = await page.locator(THUMBNAIL).first.get_attribute("src")
        if not src:
            raise RuntimeError("the sidebar thumbnail has no src")
        full = urljoin(page.url, src)
        if urlparse(full).hostname != "127.0.0.1":
            raise RuntimeError(f"thumbnail served from elsewhere: {full}")
        response = await context.request.get(full)
        if not response.ok:
            raise RuntimeError(f"thumbnail {full}: HTTP {response.status}")
        thumb = Image.open(io.BytesIO(await response.body())).convert("RGB")
        mean = np.asarray(thumb, dtype=np.float64).reshape(-1, 3).mean(0)
        res.thumbnail_mean = [round(float(v), 1) for v in mean]
        distances = [float(np.abs(mean - e).max()) for e in expected]
        res.closest_student = int(np.argmin(distances))
        res.colour_ok = res.closest_student == i and distances[i] <= COLOUR_TOLERANCE
        if res.exceptions:
            res.error = f"{res.exceptions} exception box(es) on the attention page"
        res.step = "done"
    except Exception as e:  # one student's failure is a result, not a crash of the test
        res.error = f"{res.step}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        ready.set()  # also after a failure, so the others are not held back
        if shots is not None:
            try:
                await page.screenshot(path=str(shots / f"student-{i}.png"), full_page=False)
            except Exception:
                pass
        try:
            await context.close()
        except Exception:
            pass
    return res


async def run_class(url: str, results: list[Result], deadline: float, shots: Path | None) -> tuple[float, float]:
    """Run every student in ``results`` (filled in as they go, so a timeout still leaves what happened)."""
    from playwright.async_api import async_playwright

    k = len(results)

    expected = [student_image(i, k)[1] for i in range(k)]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            gate = asyncio.Event()
            ready = [asyncio.Event() for _ in range(k)]
            timeout_ms = max(1000.0, (deadline - time.monotonic()) * 1000)
            t_open = time.perf_counter()
            tasks = [asyncio.create_task(run_student(results[i], k, browser, url, expected, timeout_ms, shots, ready[i], gate))
                     for i in range(k)]
            # Every session opens the app first (a class loading the page); then all upload at once.
            # Bounded: if some never get ready, the others start anyway and the stragglers join late.
            waits = [asyncio.create_task(e.wait()) for e in ready]
            await asyncio.wait(waits, timeout=max(1.0, min(deadline - time.monotonic(), 60 + 5 * k)))
            for w in waits:
                w.cancel()
            open_s = time.perf_counter() - t_open
            t0 = time.perf_counter()
            gate.set()
            await asyncio.gather(*tasks)
            return time.perf_counter() - t0, open_s
        finally:
            await browser.close()


# --- report -----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (like numpy's default); None for no values."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values), q))


def summarise(results: list[Result], k: int, wall: float, memory: MemorySampler, timed_out: bool,
              server_log_tail: str) -> dict:
    ups = [r.upload_s for r in results if r.upload_s is not None]
    atts = [r.attention_s for r in results if r.attention_s is not None]
    errors = [r for r in results if r.error]
    mixups = [r for r in results if r.mixed_up]
    external = sorted({u for r in results for u in r.external_requests})
    return {
        "students": k,
        "completed": sum(r.attention_s is not None and not r.error for r in results),
        "errors": len(errors) + (k - len(results)),
        "mixups": len(mixups),
        "timed_out": timed_out,
        "latency_s": {
            "upload_to_start_page": {"p50": percentile(ups, 50), "p95": percentile(ups, 95),
                                     "max": max(ups) if ups else None, "n": len(ups)},
            "attention_page": {"p50": percentile(atts, 50), "p95": percentile(atts, 95),
                               "max": max(atts) if atts else None, "n": len(atts)},
        },
        "server_rss_mib": {"peak": round(memory.peak, 1), "idle": round(memory.idle, 1),
                           "at_end": round(memory.last, 1), "samples": memory.samples},
        "wall_s": round(wall, 2),
        "external_requests": external,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "env": {k_: v for k_, v in os.environ.items() if k_.startswith("VIT_EXPLORER_")},
        "per_student": [{**asdict(r), "mixed_up": r.mixed_up} for r in results],
        "failures": [f"student {r.student}: {r.error}" for r in errors]
                    + [f"student {r.student}: saw student {r.closest_student}'s image" for r in mixups if r.colour_ok is False]
                    + [f"student {r.student}: sidebar caption is not 'upload: {r.file}'" for r in mixups if r.caption_ok is False],
        "server_log_tail": server_log_tail if (errors or mixups or timed_out) else "",
    }


def markdown(summary: dict) -> str:
    def s(v):
        return "–" if v is None else f"{v:.2f}"

    up, att = summary["latency_s"]["upload_to_start_page"], summary["latency_s"]["attention_page"]
    mem = summary["server_rss_mib"]
    lines = [
        f"Classroom load test: {summary['students']} students, {summary['machine']['cpus']} CPUs, "
        f"wall {summary['wall_s']:.1f} s" + (" (TIMED OUT)" if summary["timed_out"] else ""),
        "",
        "| measure | p50 | p95 | max | n |",
        "|---|---:|---:|---:|---:|",
        f"| upload → start page finished (s) | {s(up['p50'])} | {s(up['p95'])} | {s(up['max'])} | {up['n']} |",
        f"| click 4. Attention → page finished (s) | {s(att['p50'])} | {s(att['p95'])} | {s(att['max'])} | {att['n']} |",
        "",
        "| check | value |",
        "|---|---:|",
        f"| sessions completed | {summary['completed']} / {summary['students']} |",
        f"| errors | {summary['errors']} |",
        f"| mix-ups (another student's image or caption) | {summary['mixups']} |",
        f"| server peak RSS (MiB) | {mem['peak']:.0f} (idle server {mem['idle']:.0f}, at the end {mem['at_end']:.0f}) |",
        f"| requests to hosts other than 127.0.0.1 (blocked) | {len(summary['external_requests'])} |",
    ]
    if summary["external_requests"]:
        lines += ["", "Blocked requests to other hosts (never left the machine):"] + [f"- {u}" for u in summary["external_requests"]]
    if summary["failures"]:
        lines += ["", "Failures:"] + [f"- {f}" for f in summary["failures"]]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--mode", choices=("browser", "protocol"), default="browser")
    known, rest = pre.parse_known_args(argv)
    if known.mode == "protocol":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import load_protocol

        return load_protocol.main(rest)
    argv = rest
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("browser", "protocol"), default="browser",
                    help="browser: K headless Chromiums (default); protocol: simulated students on the websocket "
                         "protocol, to measure the server alone (see scripts/load_protocol.py; --mode protocol --help)")
    ap.add_argument("--students", type=int, default=10, help="concurrent sessions (default 10)")
    ap.add_argument("--timeout", type=float, default=600.0, help="stop everything after this many seconds (default 600)")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--port", type=int, help="server port (default: a free one)")
    ap.add_argument("--screenshots", type=Path, help="save each student's final page here as student-<i>.png")
    args = ap.parse_args(argv)
    if args.students < 1:
        ap.error("--students must be at least 1")
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2

    start = time.monotonic()
    deadline = start + args.timeout
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    server = Server(args.port or free_port(), env={})

    def last_resort() -> None:  # whatever hangs, everything ends shortly after the deadline
        try:
            os.killpg(server.proc.pid, signal.SIGKILL)
        finally:
            os._exit(3)

    watchdog = threading.Timer(args.timeout + 30, last_resort)
    watchdog.daemon = True
    watchdog.start()
    memory = MemorySampler(server.proc.pid)
    memory.start()
    results = [Result(i, f"student-{i}.png", student_colour(i, args.students)) for i in range(args.students)]
    timed_out = False
    wall = open_s = 0.0
    try:
        server.wait_healthy(min(deadline, time.monotonic() + 180))
        memory.idle = tree_rss_mib(server.proc.pid)  # before any session: no model loaded yet
        print(f"server up at {server.url} (pid {server.proc.pid}) after {time.monotonic() - start:.1f} s; "
              f"{args.students} students…", file=sys.stderr, flush=True)
        try:
            wall, open_s = asyncio.run(asyncio.wait_for(
                run_class(server.url, results, deadline, args.screenshots),
                timeout=max(1.0, deadline - time.monotonic())))
        except (asyncio.TimeoutError, TimeoutError):
            timed_out = True
            wall = time.monotonic() - start
    except Exception:
        traceback.print_exc()
        timed_out = timed_out or time.monotonic() >= deadline
    finally:
        tail = ""
        try:
            memory.stop()
            tail = server.log_tail()
        finally:
            server.stop()  # whatever happened above, the server goes
            watchdog.cancel()

    for r in results:
        if r.step != "done" and not r.error:
            r.error = f"{'timed out' if timed_out else 'stopped'} while {r.step}"
    summary = summarise(results, args.students, wall, memory, timed_out, tail)
    summary["sessions_open_s"] = round(open_s, 2)
    print(markdown(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nwrote {args.json}", file=sys.stderr)
    ok = summary["errors"] == 0 and summary["mixups"] == 0 and not timed_out and summary["completed"] == args.students
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
