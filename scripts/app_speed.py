"""How fast the app feels in a real browser, and how much it sends: numbers for the README.

    python scripts/app_speed.py                      # every bundled model, 5 repetitions
    python scripts/app_speed.py --model vit-tiny-shapes --reps 2 --json artifacts/app_speed.json

This is a measurement, not a test. It starts the real server (``streamlit run app.py``) on a free
port bound to 127.0.0.1, drives Debian's headless Chromium with Playwright, and for each model
(opened as ``/?model=NAME`` in a fresh browser context, which the app honours on a first visit):

1. warms up: opens the start page and the attention page once (model loaded, default sample traced);
2. ``--reps`` times, with a new generated image each time (the trace is not cached yet, the model is):
   - upload: ``set_input_files`` on the uploader → the start page's run has finished (sidebar names the
     new file, script state ``notRunning``, the DOM quiet);
   - attention: click "4. Attention" in the sidebar → that page's run has finished and every visible
     Plotly chart has been drawn (DOM quiet);
   - on the attention page, one step of the Layer slider, then of the Head slider (keyboard on the
     slider thumb) → the rerun has finished and the charts are redrawn;
   - what if: click "6. What if…?" → that page has finished; press a preset (shuffle, hide the ink,
     the most important head in turn) → its rerun, which computes the change, has finished and the
     question is shown; press the first guess → the result has arrived, and its figures are drawn;
3. bytes per page view: each of the seven pages opened by URL in a fresh context (nothing cached in the
   browser), counting websocket frames received plus ``/media/`` HTTP bodies (``st.image`` pictures)
   from navigation until the page has finished; compared with a 2 MB budget.

Each step gets two times, both on the browser's own clock from the moment the step began there (the
file landed in the input, the link was clicked, the key was pressed), so Playwright's round trips are
not counted. "Run finished" stops when the last message the server sent for that step arrives in the
page: the server has computed the page and everything it sent has arrived.
"Drawn" waits further, until every visible Plotly chart has an ``svg.main-svg`` and the DOM has not
changed for ``--quiet-ms``; it stops at the last DOM change, not at the end of the quiet window. The
browser draws on the same cores as the server here, so "drawn" includes work a student's own device
would do. It prints a Markdown table (medians; p95 from 5 repetitions on), the
machine and its load, and writes JSON (``--json``). Everything stays on 127.0.0.1 (Chromium resolves no
other host); after ``--timeout`` seconds the run stops by itself, and the server is always stopped.
Needs ``pip install playwright`` and ``apt-get install chromium``.
"""

from __future__ import annotations

import _thread
import argparse
import io
import json
import os
import platform
import signal
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers_server import running_app  # noqa: E402  (starts/stops the server on a free 127.0.0.1 port)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]  # nothing else resolves
VIEWPORT = {"width": 1400, "height": 1600}
APP = "[data-testid='stApp']"
IDLE = f"{APP}[data-test-script-state='notRunning']"
SIDEBAR = "[data-testid='stSidebar']"
NAV = "[data-testid='stSidebarNav'] a"
PAGES = [  # (name, url path, sidebar link)
    ("start", "", "Start"),
    ("patches", "patches", "1. Patches"),
    ("embeddings", "embeddings", "2. Embeddings"),
    ("positions", "positions", "3. Position embeddings"),
    ("attention", "attention", "4. Attention"),
    ("encoder", "encoder", "5. Encoder & prediction"),
    ("whatif", "whatif", "6. What if…?"),
]
WHATIF_PRESETS = ("shuffle", "ink", "top-head")  # one per repetition, in turn
BUDGET_KB = 2048.0  # 2 MB per page view

# Installed in every page before the app's scripts: counts finished runs and remembers the last DOM change.
PROBE = """(() => {
  window.__runs = 0; window.__lastMut = performance.now();
  const start = () => {
    new MutationObserver(muts => {
      window.__lastMut = performance.now();
      for (const m of muts) {
        if (m.type === 'attributes' && m.attributeName === 'data-test-script-state'
            && m.oldValue === 'running') window.__runs += 1;  // a run ended
      }
    }).observe(document, {subtree: true, childList: true, attributes: true, attributeOldValue: true, characterData: true});
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
  // The arrival of the server's last message. A fast fragment rerun can go running → notRunning inside one
  // render, leaving no trace in the DOM, so messages are the reliable sign that a run happened and ended.
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); this.addEventListener('message', () => { window.__lastMsg = performance.now(); }); }
  };
  // When each step begins, on the same clock: a key press (slider), a click (navigation), a file chosen (upload).
  document.addEventListener('keydown', () => { window.__keyAt = performance.now(); }, true);
  document.addEventListener('click', () => { window.__clickAt = performance.now(); }, true);
  document.addEventListener('change', e => { if (e.target.type === 'file') window.__fileAt = performance.now(); }, true);
})();"""

STATE = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  const charts = [...document.querySelectorAll("[data-testid='stPlotlyChart']")].filter(c => c.offsetParent !== null);
  return {now: performance.now(), last: window.__lastMut || 0, runs: window.__runs || 0,
          msg: window.__lastMsg || 0, key: window.__keyAt || 0, click: window.__clickAt || 0, file: window.__fileAt || 0,
          state: app ? app.getAttribute('data-test-script-state') : null,
          charts: charts.length,
          drawn: charts.filter(c => { const g = c.querySelector('.js-plotly-plot');
                                      return g && g._fullLayout && c.querySelector('svg.main-svg'); }).length,
          exceptions: document.querySelectorAll("[data-testid='stException']").length};
}"""


class Deadline(Exception):
    pass


class Clock:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def ms(self, cap_s: float = 180.0) -> float:
        left = self.left()
        if left <= 0:
            raise Deadline("--timeout reached")
        return max(1000.0, min(cap_s, left) * 1000)


def settle(page, clock: Clock, runs_before: int | None, quiet_ms: float, want_charts: bool,
           ready=lambda: True, retry=None, retry_after_s: float = 10.0, began: str | None = None) -> tuple[float, dict]:
    """Wait until a new run (if runs_before is given) has finished, every visible chart is drawn (and there is
    at least one if want_charts), and the DOM is quiet. A new run shows as a finished-run count above
    ``runs_before``, or, with ``began`` (the state field holding the step's start), as a server message
    that arrived after the step began together with ``ready()``.

    If no run has started ``retry_after_s`` after the call and nothing on the page changed, ``retry()`` is
    called once (a click that the app dropped); the state then says ``retried``. Returns the
    time.perf_counter() value of the last DOM change, and the final state."""
    start = time.monotonic()
    limit = start + clock.ms(60.0) / 1000
    first = page.evaluate(STATE)
    retried = False
    while True:
        st = page.evaluate(STATE)
        t_eval = time.perf_counter()
        new_run = runs_before is None or st["runs"] > runs_before or (began is not None and st["msg"] > st[began] > 0)
        ok = (st["state"] == "notRunning" and new_run
              and st["drawn"] == st["charts"] and (st["charts"] > 0 or not want_charts)
              and st["now"] - st["last"] >= quiet_ms and ready())
        if ok:
            st["retried"] = retried
            return t_eval - (st["now"] - st["last"]) / 1000, st
        if (retry is not None and not retried and runs_before is not None and st["runs"] <= runs_before
                and st["last"] == first["last"] and time.monotonic() - start > retry_after_s):
            retried = True
            retry()
        if time.monotonic() > limit:
            raise TimeoutError(f"page never settled: {st}")
        page.wait_for_timeout(40)


def runs(page) -> int:
    return int(page.evaluate("() => window.__runs || 0"))


def new_page(browser, clock: Clock, external: list[str]):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(clock.ms())
    context.add_init_script(PROBE)
    page = context.new_page()
    page.on("request", lambda r: None if urlparse(r.url).hostname in ("127.0.0.1", None)
            or r.url.startswith(("data:", "blob:")) else external.append(r.url))
    return context, page


def test_image(seed: int, size: int = 96) -> bytes:
    """A PNG no other repetition or sample looks like: noise over a gradient, a disc, the seed written on it."""
    rng = np.random.default_rng(1000 + seed)
    y, x = np.mgrid[0:size, 0:size]
    base = rng.integers(0, 256, 3)
    rgb = (base + np.stack([x, y, x + y], -1) * rng.uniform(0.3, 1.2, 3)) % 256
    rgb = np.clip(rgb + rng.normal(0, 20, rgb.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    draw = ImageDraw.Draw(im)
    cx, cy, r = (int(v) for v in rng.integers(20, size - 20, 3) // (1, 1, 3))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw.text((4, 4), str(seed), fill=(255, 255, 255))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def check_model(page, model: str) -> None:
    text = page.locator(SIDEBAR).inner_text()
    if f"Model: {model}" not in text.replace("\n", " "):
        raise RuntimeError(f"the sidebar does not show model {model!r}: {text[:200]!r}")


def click_nav(page, link: str) -> None:
    page.locator(NAV, has_text=link).first.click()


def slider_step(page, label: str) -> int:
    """Move a slider one step with the keyboard (right, or left at its maximum); return the new value."""
    thumb = page.locator(f"[data-testid='stSlider'] input[type=range][aria-label='{label}']").first
    now, top = int(thumb.input_value()), int(thumb.get_attribute("max"))
    thumb.focus()
    thumb.press("ArrowLeft" if now >= top else "ArrowRight")
    return now - 1 if now >= top else now + 1


# --- timings ------------------------------------------------------------------------------------------


def time_whatif(page, clock: Clock, quiet_ms: float, preset: str, done) -> dict:
    """Open "6. What if…?", press a preset (its question appears), then the first guess (the result is shown).

    Returns the page open time (run finished, and drawn), and for the preset and the guess the time until
    their run finished (the intervention is computed in the preset's run, and shown after the guess); for
    the guess also until its figures are drawn."""
    r = runs(page)
    click_nav(page, "6. What if")
    _, st = settle(page, clock, r, quiet_ms, want_charts=True, ready=lambda: "/whatif" in page.url,
                   retry=lambda: click_nav(page, "6. What if"), began="click")
    done(st)
    out = {"whatif_s": (st["last"] - st["click"]) / 1000, "whatif_run_s": (st["msg"] - st["click"]) / 1000}
    guess = page.locator(".st-key-wi_guess_same button").first
    r = runs(page)
    page.locator(f".st-key-wi_preset_{preset} button").first.click()
    _, st = settle(page, clock, r, quiet_ms, want_charts=False, ready=lambda: guess.count() > 0, began="click")
    done(st)
    out["preset_run_s"] = (st["msg"] - st["click"]) / 1000
    r = runs(page)
    guess.click()
    bars = page.locator(".st-key-wi_bars .js-plotly-plot")
    _, st = settle(page, clock, r, quiet_ms, want_charts=True, ready=lambda: bars.count() > 0, began="click")
    done(st)
    out["reveal_run_s"] = (st["msg"] - st["click"]) / 1000
    out["reveal_s"] = (st["last"] - st["click"]) / 1000
    return out


def time_model(browser, url: str, model: str, reps: int, clock: Clock, quiet_ms: float, external: list[str],
               log, shots: Path | None = None) -> dict:
    out: dict = {"upload_s": [], "attention_s": [], "upload_to_attention_s": [], "layer_s": [], "head_s": [],
                 "upload_to_attention_run_s": [], "layer_run_s": [], "head_run_s": [],
                 "whatif_s": [], "whatif_run_s": [], "preset_run_s": [], "reveal_run_s": [], "reveal_s": [],
                 "exceptions": 0, "retried_clicks": 0}
    context, page = new_page(browser, clock, external)

    def sidebar_names(name: str):
        return lambda: page.locator(f"{SIDEBAR} [data-testid='stImage']", has_text=name).count() > 0

    def on_attention(name: str = ""):
        return lambda: "/attention" in page.url and sidebar_names(name)()

    def done(st: dict) -> dict:
        out["exceptions"] += st["exceptions"]
        out["retried_clicks"] += st["retried"]
        return st

    try:
        t = time.perf_counter()
        page.goto(f"{url}/?model={model}")
        settle(page, clock, 0, quiet_ms, want_charts=False)
        check_model(page, model)
        r = runs(page)
        click_nav(page, "4. Attention")
        settle(page, clock, r, quiet_ms, want_charts=True, ready=on_attention(),
               retry=lambda: click_nav(page, "4. Attention"))
        out["warmup_s"] = time.perf_counter() - t
        log(f"  {model}: warm-up (start + attention pages) {out['warmup_s']:.1f} s")

        for rep in range(reps):
            r = runs(page)
            click_nav(page, "Start")
            settle(page, clock, r, quiet_ms, want_charts=False, ready=lambda: "/attention" not in page.url,
                   retry=lambda: click_nav(page, "Start"))
            page.get_by_role("tab", name="Upload").click()
            uploader = page.locator("input[type=file]").first
            uploader.wait_for(state="attached")
            name = f"speed-{model}-{rep}.png"
            data = test_image(rep)

            # Times on the browser's clock: from the file landing in the input, and from the click on the link.
            r = runs(page)
            uploader.set_input_files(files=[{"name": name, "mimeType": "image/png", "buffer": data}])
            _, st = settle(page, clock, r, quiet_ms, want_charts=False, ready=sidebar_names(f"upload: {name}"),
                           began="file")
            done(st)
            upload_s = (st["last"] - st["file"]) / 1000
            upload_run_s = (st["msg"] - st["file"]) / 1000

            r = runs(page)
            click_nav(page, "4. Attention")
            _, st = settle(page, clock, r, quiet_ms, want_charts=True, ready=on_attention(name),
                           retry=lambda: click_nav(page, "4. Attention"), began="click")
            done(st)
            attention_s = (st["last"] - st["click"]) / 1000
            out["upload_to_attention_run_s"].append(upload_run_s + (st["msg"] - st["click"]) / 1000)
            out["upload_s"].append(upload_s)
            out["attention_s"].append(attention_s)
            out["upload_to_attention_s"].append(upload_s + attention_s)
            out["charts_on_attention_page"] = st["charts"]

            steps = {}
            for key, label in (("layer_s", "Layer"), ("head_s", "Head")):
                r = runs(page)
                value = slider_step(page, label)
                title = page.get_by_role("heading", name=f"{label.lower()} {value}")
                _, st = settle(page, clock, r, quiet_ms, want_charts=True, ready=lambda: title.count() > 0, began="key")
                done(st)
                # Both on the browser's clock, from the key press itself (not from Playwright's round trips).
                out[key].append((st["last"] - st["key"]) / 1000)
                out[key.replace("_s", "_run_s")].append((st["msg"] - st["key"]) / 1000)
                steps[label] = out[key][-1]
            log(f"  {model} rep {rep + 1}/{reps}: upload {upload_s:.2f} s + attention {attention_s:.2f} s; "
                f"layer {steps['Layer']:.2f} s, head {steps['Head']:.2f} s")
            whatif = time_whatif(page, clock, quiet_ms, WHATIF_PRESETS[rep % len(WHATIF_PRESETS)], done)
            for key, value in whatif.items():
                out[key].append(value)
            log(f"  {model} rep {rep + 1}/{reps}: what if page {whatif['whatif_s']:.2f} s; preset "
                f"{WHATIF_PRESETS[rep % len(WHATIF_PRESETS)]} {whatif['preset_run_s']:.2f} s, "
                f"guess → result computed {whatif['reveal_run_s']:.2f} s, drawn {whatif['reveal_s']:.2f} s")
    except Exception:
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=str(shots / f"app-speed-error-{model}.png"))
                log(f"  screenshot: {shots / f'app-speed-error-{model}.png'}; state {page.evaluate(STATE)}; url {page.url}")
            except Exception:
                pass
        raise
    finally:
        context.close()
    return out


def page_bytes(browser, url: str, model: str, clock: Clock, quiet_ms: float, external: list[str], log) -> dict:
    """Bytes received for one view of each page, each in a fresh context (empty browser cache)."""
    out = {}
    for name, path, _ in PAGES:
        context, page = new_page(browser, clock, external)
        frames = {"ws_in": 0, "ws_in_frames": 0, "ws_out": 0}
        media, other = [], []

        def on_ws(ws):
            ws.on("framereceived", lambda p: frames.update(ws_in=frames["ws_in"] + len(p), ws_in_frames=frames["ws_in_frames"] + 1))
            ws.on("framesent", lambda p: frames.update(ws_out=frames["ws_out"] + len(p)))

        page.on("websocket", on_ws)
        # Streamlit's media endpoint (/media/<hash>.png: st.image); /static/media/ is the front end's fonts.
        page.on("response", lambda resp: (media if urlparse(resp.url).path.startswith("/media/") else other).append(resp))
        try:
            t0 = time.perf_counter()
            page.goto(f"{url}/{path}?model={model}")
            t_end, st = settle(page, clock, 0, quiet_ms, want_charts=name == "attention")
            snapshot = dict(frames)
            media_bytes = 0
            for resp in list(media):
                try:
                    media_bytes += len(resp.body())
                except Exception:
                    media_bytes += int(resp.headers.get("content-length", 0) or 0)
            static = 0
            for resp in list(other):
                try:
                    static += resp.request.sizes()["responseBodySize"]
                except Exception:
                    pass
            check_model(page, model)
            out[name] = {"ws_kb": snapshot["ws_in"] / 1024, "ws_frames": snapshot["ws_in_frames"],
                         "media_kb": media_bytes / 1024, "media_files": len(media),
                         "total_kb": (snapshot["ws_in"] + media_bytes) / 1024,
                         "sent_kb": snapshot["ws_out"] / 1024, "static_http_kb": static / 1024,
                         "load_s": t_end - t0, "charts": st["charts"], "exceptions": st["exceptions"]}
            log(f"  {model} /{path}: {out[name]['total_kb']:.0f} KB (websocket {out[name]['ws_kb']:.0f}, "
                f"media {out[name]['media_kb']:.0f} in {len(media)} files)")
        finally:
            context.close()
    return out


# --- report -------------------------------------------------------------------------------------------


def machine() -> dict:
    from vit.bench import cpu_description

    cpu, affinity = cpu_description()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": affinity, "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_start": [round(v, 2) for v in os.getloadavg()]}


def stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "median": None, "p95": None, "min": None, "max": None}
    return {"n": len(values), "median": statistics.median(values),
            "p95": float(np.percentile(values, 95)) if len(values) >= 5 else None,
            "min": min(values), "max": max(values)}


def markdown(result: dict) -> str:
    m = result["machine"]
    f = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), load average "
             f"{' / '.join(map(str, m['loadavg_start']))} at the start, {' / '.join(map(str, m.get('loadavg_end', [])))} at the end; "
             f"Streamlit {result.get('streamlit', '?')}, headless Chromium.", ""]
    for model, r in result["models"].items():
        t = r.get("timings", {})
        lines += [f"### {model}", "",
                  f"Latency, warm model, new image each repetition (s), {t.get('reps', 0)} repetitions:", "",
                  "| step | median | p95 | max | n |", "|---|---:|---:|---:|---:|"]
        for key, label in (("upload_to_attention_run_s", "**upload → attention page computed** (runs finished)"),
                           ("upload_to_attention_s", "upload → attention page drawn"),
                           ("upload_s", "… upload → start page finished"),
                           ("attention_s", "… click 4. Attention → page finished, charts drawn"),
                           ("layer_run_s", "**Layer slider +1 → rerun finished**"),
                           ("layer_s", "Layer slider +1 → charts redrawn"),
                           ("head_run_s", "**Head slider +1 → rerun finished**"),
                           ("head_s", "Head slider +1 → charts redrawn"),
                           ("whatif_run_s", "click 6. What if…? → run finished"),
                           ("whatif_s", "click 6. What if…? → page drawn"),
                           ("preset_run_s", "**What if: a preset (the change computed) → rerun finished**"),
                           ("reveal_run_s", "**What if: the guess → result sent**"),
                           ("reveal_s", "What if: the guess → result drawn")):
            s = t.get("stats", {}).get(key, stats([]))
            lines.append(f"| {label} | {f(s['median'])} | {f(s['p95'])} | {f(s['max'])} | {s['n']} |")
        if t.get("exceptions") or t.get("retried_clicks"):
            lines += ["", f"Exception boxes seen: {t.get('exceptions', 0)}; sidebar clicks the app dropped and that "
                          f"were repeated after 10 s (their time is included): {t.get('retried_clicks', 0)}."]
        if "warmup_s" in t:
            lines += ["", f"Warm-up (first visit: model load, start page, attention page): {t['warmup_s']:.1f} s."]
        b = r.get("bytes", {})
        if b:
            lines += ["", "Bytes received per page view (fresh browser context, default sample image):", "",
                      "| page | websocket KB | media KB (files) | **total KB** | of 2 MB | page load s |",
                      "|---|---:|---:|---:|---:|---:|"]
            for name, v in b.items():
                lines.append(f"| {name} | {v['ws_kb']:.0f} | {v['media_kb']:.0f} ({v['media_files']}) | "
                             f"**{v['total_kb']:.0f}** | {v['total_kb'] / BUDGET_KB:.0%} | {v['load_s']:.2f} |")
            static = max(v["static_http_kb"] for v in b.values())
            lines += ["", f"Not counted above: the Streamlit front end (JS/CSS/fonts, cacheable), "
                          f"{static:.0f} KB transferred on a first visit."]
        if r.get("error"):
            lines += ["", f"**Error:** {r['error']}"]
    if result["external_requests"]:
        lines += ["", f"Blocked requests to other hosts: {len(result['external_requests'])}"]
    if result.get("timed_out"):
        lines += ["", "**Stopped at --timeout; the numbers above are partial.**"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model to measure (repeatable; default: every bundled model)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions, each with a new image (default 5)")
    ap.add_argument("--timeout", type=float, default=600.0, help="stop everything after this many seconds (default 600)")
    ap.add_argument("--quiet-ms", type=float, default=400.0, help="DOM quiet time that counts as 'drawn' (default 400)")
    ap.add_argument("--json", type=Path, default=ROOT / "artifacts" / "app_speed.json", help="write the results here")
    ap.add_argument("--screenshots", type=Path, help="on an error, save the page here")
    ap.add_argument("--no-bytes", action="store_true", help="skip the bytes-per-page measurement")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    import streamlit
    import vit

    models = args.model or vit.available_models() or ["tiny-shapes (random)"]
    clock = Clock(args.timeout)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    # At the deadline, interrupt whatever waits (the server is then stopped by running_app's finally);
    # if even that hangs, kill the processes this script started and leave.
    def interrupt():
        log("--timeout reached: stopping")
        _thread.interrupt_main()

    def last_resort():
        for pid in _children(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(3)

    timers = [threading.Timer(args.timeout, interrupt), threading.Timer(args.timeout + 30, last_resort)]
    for t in timers:
        t.daemon = True
        t.start()

    result: dict = {"machine": machine(), "streamlit": streamlit.__version__, "reps": args.reps,
                    "quiet_ms": args.quiet_ms, "models": {m: {} for m in models}, "external_requests": [],
                    "timed_out": False}
    external: list[str] = []
    try:
        from playwright.sync_api import sync_playwright

        with running_app(startup_timeout=min(180.0, max(1.0, clock.left()))) as url, sync_playwright() as p:
            log(f"server up at {url}; models {models}")
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for model in models:
                    r = result["models"][model]
                    try:
                        t = time_model(browser, url, model, args.reps, clock, args.quiet_ms, external, log,
                                       args.screenshots)
                        t["reps"] = len(t["upload_s"])
                        t["stats"] = {k: stats(v) for k, v in t.items() if isinstance(v, list)}  # every timing
                        r["timings"] = t
                        if not args.no_bytes:
                            r["bytes"] = page_bytes(browser, url, model, clock, args.quiet_ms, external, log)
                    except (Deadline, KeyboardInterrupt):
                        raise
                    except Exception as e:
                        r["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                        traceback.print_exc()
            finally:
                browser.close()
    except (Deadline, KeyboardInterrupt):
        result["timed_out"] = True
    finally:
        for t in timers:
            t.cancel()
    result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    result["external_requests"] = sorted(set(external))
    print(markdown(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        log(f"wrote {args.json}")
    failed = result["timed_out"] or any(r.get("error") for r in result["models"].values())
    return 1 if failed else 0


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return kids


if __name__ == "__main__":
    sys.exit(main())
