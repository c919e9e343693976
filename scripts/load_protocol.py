"""A classroom load test at the protocol level: simulated students speak Streamlit's own websocket
protocol to one ViT Explorer server, without a browser, so the numbers measure the server alone.

    python scripts/load_test.py --mode protocol --students 5,10,20 --duration 60 --json class.json
    python scripts/load_test.py --mode protocol --search --students 5 --duration 60    # the largest class
    python scripts/load_test.py --mode protocol --students 10 --hostile                # + a hostile student
    python scripts/load_test.py --mode protocol --sessions 300 --rss-every 25           # memory over time

(``python scripts/load_protocol.py ...`` is the same thing.) The browser mode of ``load_test.py`` runs
K headless Chromiums on the same cores as the server, so its latencies measure the browsers; here a
student is a websocket and a few protobufs, and the load generator's own CPU is reported next to the
server's.

How a student talks (Streamlit 1.67's protocol, as the browser speaks it)
-------------------------------------------------------------------------
* Connect: ``GET /_stcore/health`` hands out the ``_streamlit_xsrf`` cookie; the websocket
  ``ws://HOST:PORT/_stcore/stream`` is opened with that cookie, an ``Origin`` header and the
  subprotocols ``["streamlit", <xsrf token>]``, as the browser does.
* Every action is a ``BackMsg`` with ``rerun_script`` (a ``ClientState``: ``query_string``,
  ``page_script_hash`` or ``page_name``, ``widget_states``, ``context_info.locale``). The server
  answers with ``ForwardMsg``s: ``new_session`` (the session id, once per run), ``navigation`` (the
  pages: url path → ``page_script_hash``, and the page that runs), ``page_info_changed`` (the query
  string the app wrote), ``delta``s (the elements, each with its ``delta_path``: root 0 is the main
  area, 1 the sidebar) and, at the end, ``script_finished``. A run that the app restarts itself
  (``st.rerun``) ends with ``FINISHED_EARLY_FOR_RERUN`` and is followed by another; an action is
  done at the first other ``script_finished``. No ``cached_message_hashes`` are sent, so the server
  sends every element in full (the browser's cache would spare it some bytes, not the script run).
* Page open: ``page_script_hash`` of the page (from ``navigation``), ``query_string="lang=en"``
  (what the app's own links carry), the active widget states. The first open uses ``page_name``
  (the url path, "" for the start page), as a browser opening a URL does.
* Slider step: a rerun of the same page, with the query string the app last wrote and the slider's
  new value as ``WidgetState(id=<the slider element's id>, double_array_value=[v])`` (a
  ``st.select_slider``: ``string_array_value=[<the option's text>]``). Widget ids come from the
  deltas (e.g. ``$$ID-<hash>-layer``), never guessed. A widget inside an ``st.fragment`` (its delta
  carries a ``fragment_id``) sends that id in ``ClientState.fragment_id``, as the browser does: only
  the fragment reruns, and only its elements come back.
* Upload: ``BackMsg.file_urls_request`` (request id, file names, session id) → ``ForwardMsg.
  file_urls_response`` (file id, ``/_stcore/upload_file/<session>/<file>``) → HTTP PUT of a
  multipart form with one ``file`` part, the xsrf cookie and the ``X-Xsrftoken`` header (204) →
  a rerun whose widget states hold the uploader's ``file_uploader_state_value`` (file id, name,
  size, urls). Media (``/media/...`` images) a run names are fetched afterwards, once per student,
  as a browser with a cache would, in the background (counted as server load, not in latencies).

What a student checks on every run: no ``exception`` element, no error alert (``st.error``), not
the app's apology ("Sorry, something went wrong"), no ``page_not_found``, the page that ran is the
one asked for and shows its title (``PAGE_TEXT``); once it has uploaded, the sidebar caption names
its own file (``upload: student-<i>-<n>.png``) and the sidebar thumbnail, fetched from the server,
has its own colour. Another student's file name or colour is a mix-up.

The model of behaviour (``--mode protocol``, class mode)
--------------------------------------------------------
K students join over ``--ramp`` seconds (the teacher says "open the app"), each on the start page,
and upload their own picture (a solid colour with their number). Then each walks the stages in
order (1. Patches → … → 5. Encoder → Start → 1. Patches …), staying ``--page-think`` seconds on a
page (default 10–20 s, uniform); while on a page they move a slider every ``--slider-think`` seconds
(default 2–5 s, from the end of the previous step: a person waits for the answer): a random slider
of the page's main area one step up or down. Back on the start page they upload a new picture
instead. Think times are drawn per student from a seeded generator (``--seed``). The level lasts
``--duration`` seconds from the first join; actions under way then are finished, none is started.

Measured per level: latency (request sent → ``script_finished``) of join (connect + start page),
page open, slider step and upload (urls request + PUT + rerun), p50/p95/p99/max; errors; mix-ups;
the server's CPU (process and its descendants, from /proc: mean cores over the level and the
busiest 2 s), its RSS (peak and at the end); the load generator's own CPU; the whole machine's busy
cores (the rest is other processes, e.g. a training job). A level passes when page open p95 ≤
``--page-p95`` (1 s) and slider p95 ≤ ``--slider-p95`` (0.3 s), with no error and no mix-up.

The JSON (``--json``) also splits page opens and slider steps by page (``by_page_s``). With the
default think times a 60 s level walks about the first three stages; ``--duration 180`` or more
reaches them all.

``--search``: after the ``--students`` levels, double the class while it passes (up to
``--max-students``), then bisect between the largest pass and the smallest failure down to
``--resolution`` students. Every level runs on the same server, after one unmeasured warm-up
session that opens every page (a teacher trying the app before class). The capacity is only as
good as the machine is quiet: the report gives the other processes' CPU for each level.

The recipe for "how large a class does a 2-core server hold": on the classroom server's own kind of
machine, with nothing else running, ``VIT_EXPLORER_LOCAL_MODELS=0 python scripts/load_test.py --mode
protocol --search --students 5 --duration 180 --json capacity.json``; read "Largest class that
passed" and, with ``--cost 3``, which page's actions cost most. Check "other processes CPU" is near 0.

``--hostile``: one more student uploads the files of ``tests/hostile_files.py`` (``hostile_files()``:
name → bytes) in a loop (``--hostile-pause`` between two); its outcomes are counted (refused by the
browser, by HTTP or by the app with a message, accepted, crashed: an exception or the apology) and
every other student must still see only their own image. Like a browser, it does not send a file
whose extension the uploader's ``type`` list refuses; ``--hostile-raw`` sends those too (a script,
not a browser: Streamlit 1.67 then raises ``StreamlitAPIException: Invalid file extension`` while
restoring the widget states, before the app runs, in every later run of that session; the hostile
student then reloads, i.e. opens a new session).

``--cost REPEAT``: what one action costs, free of the contention a busy machine adds to latencies:
one student alone opens every page REPEAT times and moves REPEAT sliders on each; per page and
action, the server's CPU seconds (from /proc, before and after) and the latency. A 2-core server
whose Python runs on about one core (the GIL) serves roughly 1 / (CPU s per action) actions a
second; the class model above asks about 0.3 actions a second of each student.

``--sessions N``: memory. N sessions one after another (connect, start page, upload, 4. Attention,
close), RSS of the server every ``--rss-every`` sessions, then again after ``--settle`` seconds
(Streamlit keeps a closed session ``server.disconnectedSessionTTL`` = 120 s, for reconnection).

Everything stays on 127.0.0.1; the whole run stops by itself after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "scripts", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from helpers_server import free_port
from load_test import COLOUR_TOLERANCE, Server, _children, percentile, student_image, tree_rss_mib
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect as ws_connect  # a dependency of streamlit

# The pages in the order a student walks them ("" is the start page), and a text each must show.
PAGES = ["", "patches", "embeddings", "positions", "attention", "encoder", "whatif"]
PAGE_TEXT = {
    "": "ViT Explorer",
    "patches": "Image → patches",
    "embeddings": "Linear projection",
    "positions": "Position embeddings",
    "attention": "Multi-head self-attention",
    "encoder": "Encoder blocks",
    "whatif": "What if",
}
APOLOGY = "Sorry, something went wrong"
QUERY = "lang=en"
LOCALE = "en-US"
MAIN, SIDEBAR = 0, 1  # delta_path[0]: the root container
WIDGETS = ("slider", "file_uploader", "button_group", "checkbox", "radio", "selectbox", "number_input",
           "button", "download_button", "camera_input", "text_input")
UPLOAD_CAPTION = re.compile(r"^upload: (.+)$")


# --- a tiny HTTP/1.1 client on asyncio streams (no thread per request) ---------------------------------


def _dechunk(payload: bytes) -> bytes:
    out, i = bytearray(), 0
    while True:
        j = payload.find(b"\r\n", i)
        if j < 0:
            return bytes(out)
        size = int(payload[i:j].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out)
        out += payload[j + 2:j + 2 + size]
        i = j + 2 + size + 2


async def http(host: str, port: int, method: str, path: str, headers: dict[str, str] | None = None,
               body: bytes = b"", timeout: float = 30.0) -> tuple[int, dict[str, list[str]], bytes]:
    """One request on its own connection (``Connection: close``): status, headers (lower-case), body."""
    async def go():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
                     f"Content-Length: {len(body)}", "User-Agent: vit-load-protocol"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
            with suppress(Exception):
                await writer.wait_closed()
        head, _sep, payload = raw.partition(b"\r\n\r\n")
        head_lines = head.decode("latin-1").split("\r\n")
        status = int(head_lines[0].split()[1])
        hdrs: dict[str, list[str]] = {}
        for line in head_lines[1:]:
            k, _s, v = line.partition(":")
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        if "chunked" in ",".join(hdrs.get("transfer-encoding", [])).lower():
            payload = _dechunk(payload)
        return status, hdrs, payload

    return await asyncio.wait_for(go(), timeout)


def multipart(name: str, data: bytes, mime: str) -> tuple[bytes, str]:
    """One ``file`` part, the file name escaped as Chromium does (" → %22, CR → %0D, LF → %0A)."""
    boundary = "----vitload" + uuid.uuid4().hex
    safe = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe}\"\r\n"
            f"Content-Type: {mime}\r\n\r\n").encode("utf-8", "surrogateescape")
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- one run's answer ----------------------------------------------------------------------------------


@dataclass
class Run:
    """What the server sent for one action, up to its ``script_finished``."""
    latency: float = 0.0
    status: int | None = None
    session_id: str | None = None
    page_hash: str | None = None  # the page that ran (navigation.page_script_hash)
    nav: dict[str, str] = field(default_factory=dict)  # url path → page_script_hash
    query_string: str | None = None  # the last page_info_changed
    headings: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # markdown bodies
    alerts: list[tuple[int, str]] = field(default_factory=list)  # (Alert.Format, body)
    exceptions: list[str] = field(default_factory=list)
    sidebar_images: list[tuple[str, str]] = field(default_factory=list)  # (caption, url)
    media: list[str] = field(default_factory=list)
    widgets: dict[str, tuple[str, int, object]] = field(default_factory=dict)  # id → (kind, root, element)
    fragments: dict[str, str] = field(default_factory=dict)  # widget id → the st.fragment it belongs to
    fragment_run: bool = False  # a run of one fragment only: the rest of the page was not sent again
    page_not_found: bool = False
    messages: int = 0
    nbytes: int = 0

    def reset_elements(self) -> None:  # a new run of the script (after FINISHED_EARLY_FOR_RERUN)
        self.headings, self.texts, self.alerts, self.exceptions = [], [], [], []
        self.sidebar_images, self.media, self.widgets, self.fragments = [], [], {}, {}
        self.page_not_found = False

    def take(self, m: ForwardMsg) -> None:
        t = m.WhichOneof("type")
        if t == "new_session":
            self.session_id = m.new_session.initialize.session_id or self.session_id
            self.reset_elements()
        elif t == "navigation":
            self.nav = {p.url_pathname: p.page_script_hash for p in m.navigation.app_pages}
            self.page_hash = m.navigation.page_script_hash
        elif t == "page_info_changed":
            self.query_string = m.page_info_changed.query_string
        elif t == "page_not_found":
            self.page_not_found = True
        elif t == "delta" and m.delta.WhichOneof("type") == "new_element":
            el = m.delta.new_element
            kind = el.WhichOneof("type")
            root = m.metadata.delta_path[0] if m.metadata.delta_path else MAIN
            if kind == "heading":
                self.headings.append(el.heading.body)
            elif kind == "markdown":
                self.texts.append(el.markdown.body)
            elif kind == "alert":
                self.alerts.append((el.alert.format, el.alert.body))
            elif kind == "exception":
                self.exceptions.append(f"{el.exception.type}: {el.exception.message}"[:300])
            elif kind == "imgs":
                for img in el.imgs.imgs:
                    if img.url.startswith("/media/"):
                        self.media.append(img.url)
                    if root == SIDEBAR:
                        self.sidebar_images.append((img.caption, img.url))
            if kind in WIDGETS:
                self.widgets[getattr(el, kind).id] = (kind, root, getattr(el, kind))
                if m.delta.fragment_id:
                    self.fragments[getattr(el, kind).id] = m.delta.fragment_id

    def upload_caption(self) -> tuple[str | None, str | None]:
        """The file name the sidebar caption names ('upload: NAME', markdown escapes removed), and its image url."""
        for caption, url in self.sidebar_images:
            match = UPLOAD_CAPTION.match(re.sub(r"\\(.)", r"\1", caption))
            if match:
                return match.group(1), url
        return None, (self.sidebar_images[0][1] if self.sidebar_images else None)


def check_run(run: Run, page: str, own_file: str | None, *, expect_page_hash: str | None = None,
              allow_error_alert: bool = False) -> tuple[list[str], list[str]]:
    """(errors, mix-ups) of one run, for a student on ``page`` whose last upload is ``own_file``."""
    errors, mixups = [], []
    if run.exceptions:
        errors.append(f"exception element: {run.exceptions[0]}")
    if any(APOLOGY in body for _f, body in run.alerts):
        errors.append("the app's apology")
    if not allow_error_alert:
        errors += [f"error alert: {body[:160]}" for f, body in run.alerts if f == Alert.ERROR and APOLOGY not in body]
    if run.page_not_found:
        errors.append("page not found")
    if run.status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
        errors.append("script compile error")
    if expect_page_hash and run.page_hash and run.page_hash != expect_page_hash:
        errors.append(f"asked for page {page or 'start'!r}, another page ran")
    if run.fragment_run:  # only the fragment's own elements came back: no title, no sidebar
        return errors, mixups
    if not any(PAGE_TEXT[page] in h for h in run.headings):
        errors.append(f"page {page or 'start'!r} without its title {PAGE_TEXT[page]!r} (headings: {run.headings[:3]})")
    shown, _url = run.upload_caption()
    if shown is not None and shown != own_file:
        mixups.append(f"sees {shown!r} (its own upload: {own_file!r})")
    elif shown is None and own_file is not None:
        errors.append(f"lost its upload {own_file!r}: sidebar shows {[c for c, _u in run.sidebar_images]}")
    return errors, mixups


# --- one session ---------------------------------------------------------------------------------------


class ProtocolError(RuntimeError):
    pass


class Session:
    """One browser tab, minus the browser: a websocket to ``/_stcore/stream`` and the HTTP it needs."""

    def __init__(self, host: str, port: int, timeout: float = 60.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.ws = None
        self.cookie = self.token = ""
        self.session_id: str | None = None
        self.nav: dict[str, str] = {}
        self.query = QUERY
        self.media_seen: set[str] = set()

    async def connect(self) -> None:
        status, hdrs, _body = await http(self.host, self.port, "GET", "/_stcore/health", timeout=self.timeout)
        if status != 200:
            raise ProtocolError(f"/_stcore/health: HTTP {status}")
        cookies = [c.split(";")[0] for c in hdrs.get("set-cookie", [])]
        self.cookie = next((c for c in cookies if c.startswith("_streamlit_xsrf=")), "")
        self.token = self.cookie.partition("=")[2]
        protocols = ["streamlit"] + ([self.token] if self.token else [])
        self.ws = await ws_connect(
            f"ws://{self.host}:{self.port}/_stcore/stream", subprotocols=protocols,
            additional_headers={"Origin": f"http://{self.host}:{self.port}", **({"Cookie": self.cookie} if self.cookie else {})},
            proxy=None, max_size=None, max_queue=None, open_timeout=self.timeout,
            user_agent_header="vit-load-protocol")

    async def close(self) -> None:
        if self.ws is not None:
            with suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
            self.ws = None

    async def _recv(self, deadline: float) -> tuple[ForwardMsg, int]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        data = await asyncio.wait_for(self.ws.recv(), left)
        m = ForwardMsg()
        m.ParseFromString(data)
        return m, len(data)

    async def _read_run(self, t0: float) -> Run:
        run = Run()
        deadline = time.monotonic() + self.timeout
        while True:
            m, size = await self._recv(deadline)
            run.messages += 1
            run.nbytes += size
            run.take(m)
            if m.WhichOneof("type") == "script_finished" and m.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                run.status = m.script_finished
                run.latency = time.perf_counter() - t0
                break
        self.session_id = run.session_id or self.session_id
        if run.nav:
            self.nav = run.nav
        return run

    async def rerun(self, *, page_hash: str = "", page_name: str = "", query: str | None = None,
                    widgets: list[WidgetState] = (), fragment_id: str = "") -> Run:
        msg = BackMsg()
        rs = msg.rerun_script
        rs.query_string = self.query if query is None else query
        rs.page_script_hash = page_hash
        rs.page_name = page_name
        rs.context_info.locale = LOCALE
        rs.widget_states.widgets.extend(widgets)
        rs.fragment_id = fragment_id  # a widget inside st.fragment reruns only its fragment, as in the browser
        t0 = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        run = await self._read_run(t0)
        run.fragment_run = bool(fragment_id)
        if run.query_string is not None:
            self.query = run.query_string  # the browser's address bar follows st.query_params
        return run

    async def open_page(self, page: str, widgets: list[WidgetState] = (), first: bool = False) -> Run:
        self.query = QUERY
        if first or page not in self.nav:
            return await self.rerun(page_name=page, widgets=widgets)
        return await self.rerun(page_hash=self.nav[page], widgets=widgets)

    async def upload(self, uploader_id: str, name: str, data: bytes, mime: str, *, page_hash: str,
                     widgets: list[WidgetState] = ()) -> tuple[int, Run | None, WidgetState | None]:
        """urls request → PUT → rerun. Returns (HTTP status of the PUT, the run or None, the uploader's state)."""
        t0 = time.perf_counter()
        request = BackMsg()
        rid = uuid.uuid4().hex
        request.file_urls_request.request_id = rid
        request.file_urls_request.file_names.append(name)
        request.file_urls_request.session_id = self.session_id or ""
        await self.ws.send(request.SerializeToString())
        deadline = time.monotonic() + self.timeout
        while True:
            m, _size = await self._recv(deadline)
            if m.WhichOneof("type") == "file_urls_response" and m.file_urls_response.response_id == rid:
                break
        response = m.file_urls_response
        if response.error_msg or not response.file_urls:
            raise ProtocolError(f"file_urls_response: {response.error_msg or 'no urls'}")
        urls = response.file_urls[0]
        body, ctype = multipart(name, data, mime)
        try:
            status, _h, _b = await http(self.host, self.port, "PUT", urls.upload_url, body=body, timeout=self.timeout,
                                        headers={"Content-Type": ctype, "X-Xsrftoken": self.token, "Cookie": self.cookie,
                                                 "Origin": f"http://{self.host}:{self.port}"})
        except (ConnectionError, OSError):
            return 0, None, None  # the server closed the connection (an oversized body)
        if status != 204:
            return status, None, None  # the browser shows the error on the widget and does not rerun
        state = WidgetState(id=uploader_id)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.file_id, info.name, info.size = urls.file_id, name, len(data)
        info.file_urls.CopyFrom(urls)
        widgets = [w for w in widgets if w.id != uploader_id] + [state]
        msg = BackMsg()
        rs = msg.rerun_script
        rs.query_string = self.query
        rs.page_script_hash = page_hash
        rs.context_info.locale = LOCALE
        rs.widget_states.widgets.extend(widgets)
        await self.ws.send(msg.SerializeToString())
        run = await self._read_run(t0)
        if run.query_string is not None:
            self.query = run.query_string
        return status, run, state

    async def get(self, url: str) -> tuple[int, bytes]:
        status, _h, body = await http(self.host, self.port, "GET", url, timeout=self.timeout,
                                      headers={"Cookie": self.cookie} if self.cookie else None)
        return status, body


# --- what a class does, and what it saw ----------------------------------------------------------------


@dataclass
class Behaviour:
    ramp: float = 10.0  # students join over this many seconds
    slider_think: tuple[float, float] = (2.0, 5.0)
    page_think: tuple[float, float] = (10.0, 20.0)
    hostile_pause: float = 1.0
    hostile_raw: bool = False  # upload even what the browser's uploader refuses (its file types)
    fetch_media: bool = True
    action_timeout: float = 60.0
    seed: int = 0


@dataclass
class Recorder:
    actions: list[tuple[str, float, float, str]] = field(default_factory=list)  # (kind, start offset s, latency s, page)
    errors: list[str] = field(default_factory=list)
    mixups: list[str] = field(default_factory=list)
    verified: Counter = field(default_factory=Counter)  # checks that passed
    hostile: Counter = field(default_factory=Counter)
    hostile_examples: dict[str, list[str]] = field(default_factory=dict)
    hostile_files: dict[str, dict] = field(default_factory=dict)  # name → last outcome and slowest answer
    media: Counter = field(default_factory=Counter)
    last_caption: dict[int, str | None] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)

    def action(self, kind: str, started: float, latency: float, page: str = "") -> None:
        self.actions.append((kind, started - self.t0, latency, page))

    def latencies(self, kind: str, page: str | None = None) -> list[float]:
        return [lat for k, _t, lat, p in self.actions if k == kind and (page is None or p == page)]


def _slider_value(el) -> float:
    return float((el.value if el.set_value and el.value else el.default)[0])


def slider_candidates(run: Run) -> list[tuple[str, object]]:
    """Single-value sliders of the main area, enabled: numeric ones (``st.slider``) and ``st.select_slider``."""
    out = []
    for wid, (kind, root, el) in run.widgets.items():
        if kind != "slider" or root != MAIN or el.disabled or len(el.default) != 1:
            continue
        if el.type == Slider.SELECT_SLIDER and len(el.options) > 1:
            out.append((wid, el))
        elif el.type != Slider.SELECT_SLIDER and el.data_type in (Slider.INT, Slider.FLOAT) and el.max > el.min:
            out.append((wid, el))
    return out


class Student:
    def __init__(self, i: int, k: int, host: str, port: int, rec: Recorder, beh: Behaviour, t_end: float,
                 expected: list[np.ndarray] | None):
        self.i, self.k, self.rec, self.beh, self.t_end = i, k, rec, beh, t_end
        self.rng = random.Random(beh.seed * 100_003 + i)
        self.session = Session(host, port, timeout=beh.action_timeout)
        self.data, _mean = student_image(i, k)
        self.expected = expected
        self.own_file: str | None = None
        self.uploads = 0
        self.page = ""
        self.run: Run | None = None
        self.values: dict[str, WidgetState] = {}  # widgets this student changed, by id
        self.thumb_checked: str | None = None
        self.runs = 0
        self.background: set[asyncio.Task] = set()

    # the widget states a browser would send: those it holds for widgets still on the page
    def active_states(self) -> list[WidgetState]:
        if self.run is None:
            return []
        self.values = {wid: st for wid, st in self.values.items() if wid in self.run.widgets}
        return list(self.values.values())

    def _check(self, run: Run, what: str) -> None:
        self.runs += 1
        expect = self.session.nav.get(self.page) if what != "join" else None
        errors, mixups = check_run(run, self.page, self.own_file, expect_page_hash=expect)
        self.rec.errors += [f"student {self.i} ({what}): {e}" for e in errors]
        self.rec.mixups += [f"student {self.i} ({what}): {m}" for m in mixups]
        if run.fragment_run:  # the fragment's own elements only: checked for errors above, nothing else to see
            self.rec.verified["fragment runs"] += 1
            return
        if not errors:
            self.rec.verified["page content"] += 1
        shown, url = run.upload_caption()
        self.rec.last_caption[self.i] = shown
        if self.own_file is not None and shown == self.own_file:
            self.rec.verified["own file in the sidebar"] += 1
            if url and url != self.thumb_checked and self.expected is not None:
                self.thumb_checked = url
                self._spawn(self._check_thumbnail(url, what))
        if self.beh.fetch_media:
            new = [u for u in dict.fromkeys(run.media) if u not in self.session.media_seen]
            self.session.media_seen.update(new)
            if new:
                self._spawn(self._fetch_media(new, self.runs))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _fetch_media(self, urls: list[str], run_no: int) -> None:
        """All at once, as a browser loads a page's images. A 404 after the student's next action is an
        image a later run replaced (Streamlit drops a session's media of the previous run): counted apart."""
        async def one(u: str) -> None:
            try:
                status, body = await self.session.get(u)
                key = "fetched" if status == 200 else f"HTTP {status}"
                if status == 404:
                    key += " (current run)" if self.runs == run_no else " (a later run had replaced it)"
                self.rec.media[key] += 1
                self.rec.media["bytes"] += len(body)
            except Exception as e:  # noqa: BLE001  (counted, not fatal)
                self.rec.media[type(e).__name__] += 1

        await asyncio.gather(*(one(u) for u in urls))

    async def _check_thumbnail(self, url: str, what: str) -> None:
        try:
            status, body = await self.session.get(url)
        except Exception as e:  # noqa: BLE001
            self.rec.errors.append(f"student {self.i} ({what}): thumbnail {url}: {type(e).__name__}")
            return
        if status != 200:
            self.rec.errors.append(f"student {self.i} ({what}): thumbnail {url}: HTTP {status}")
            return
        mean = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0)
        distances = [float(np.abs(mean - e).max()) for e in self.expected]
        closest = int(np.argmin(distances))
        if closest != self.i:
            self.rec.mixups.append(f"student {self.i} ({what}): its thumbnail has student {closest}'s colour")
        elif distances[self.i] > COLOUR_TOLERANCE:
            self.rec.errors.append(f"student {self.i} ({what}): thumbnail colour off by {distances[self.i]:.0f}")
        else:
            self.rec.verified["own colour in the thumbnail"] += 1

    async def join(self) -> None:
        t0 = time.perf_counter()
        await self.session.connect()
        self.page = ""
        run = await self.session.open_page("", first=True)
        lat = time.perf_counter() - t0
        self.rec.action("join", t0, lat)
        self.run = run
        self._check(run, "join")

    async def upload(self) -> None:
        uploader = next((wid for wid, (kind, _r, _e) in self.run.widgets.items() if kind == "file_uploader"), None)
        if uploader is None:
            self.rec.errors.append(f"student {self.i}: no file uploader on the start page")
            return
        self.uploads += 1
        name = f"student-{self.i}-{self.uploads}.png"
        t0 = time.perf_counter()
        status, run, state = await self.session.upload(uploader, name, self.data, "image/png",
                                                       page_hash=self.session.nav.get("", ""), widgets=self.active_states())
        if run is None:
            self.rec.errors.append(f"student {self.i} (upload): HTTP {status} for the PUT")
            return
        self.rec.action("upload", t0, run.latency)
        self.own_file = name
        self.run = run
        self.values[uploader] = state
        self._check(run, "upload")

    async def open_next_page(self) -> None:
        self.page = PAGES[(PAGES.index(self.page) + 1) % len(PAGES)]
        run = await self.session.open_page(self.page, widgets=self.active_states())
        self.rec.action("page", time.perf_counter() - run.latency, run.latency, self.page or "start")
        self.run = run
        self.values = {}  # a new page: its widgets start from the app's values
        self._check(run, f"open {self.page or 'start'}")

    async def slider_step(self) -> bool:
        candidates = slider_candidates(self.run)
        if not candidates:
            return False
        wid, el = self.rng.choice(candidates)
        state = WidgetState(id=wid)
        if el.type == Slider.SELECT_SLIDER:  # its value is the option's text (string_array_value)
            options = list(el.options)
            current = (options.index(self.values[wid].string_array_value.data[0]) if wid in self.values
                       else int(_slider_value(el)))
            new = current + self.rng.choice((-1, 1))
            new = new if 0 <= new < len(options) else current - (new - current)
            state.string_array_value.data.append(options[min(max(new, 0), len(options) - 1)])
        else:  # st.slider: the number itself (double_array_value)
            current = self.values[wid].double_array_value.data[0] if wid in self.values else _slider_value(el)
            step = el.step or (1.0 if el.data_type == Slider.INT else (el.max - el.min) / 20)
            new = current + step * self.rng.choice((-1, 1))
            if not el.min <= new <= el.max:
                new = current - (new - current)
            new = min(max(new, el.min), el.max)
            state.double_array_value.data.append(round(new, 10) if el.data_type == Slider.FLOAT else new)
        self.values[wid] = state
        fragment = self.run.fragments.get(wid, "")
        run = await self.session.rerun(page_hash=self.session.nav.get(self.page, ""), widgets=self.active_states(),
                                       fragment_id=fragment)
        self.rec.action("slider", time.perf_counter() - run.latency, run.latency, self.page or "start")
        if fragment:  # the page keeps everything outside the fragment
            self.run.widgets.update(run.widgets)
            self.run.fragments.update(run.fragments)
        else:
            self.run = run
        self._check(run, f"slider on {self.page or 'start'}")
        return True

    async def _sleep_until(self, t: float) -> None:
        await asyncio.sleep(max(0.0, min(t, self.t_end) - time.monotonic()))

    async def live(self, start_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        step = "joining"
        try:
            await self.join()
            step = "uploading"
            await self.upload()
            next_page = time.monotonic() + self.rng.uniform(*self.beh.page_think)
            while time.monotonic() < self.t_end:
                think = time.monotonic() + self.rng.uniform(*self.beh.slider_think)
                if self.page == "" or think >= next_page or not slider_candidates(self.run):
                    await self._sleep_until(next_page)
                    if time.monotonic() >= self.t_end:
                        break
                    step = "opening a page"
                    await self.open_next_page()
                    if self.page == "":
                        step = "uploading"
                        await self.upload()
                    next_page = time.monotonic() + self.rng.uniform(*self.beh.page_think)
                else:
                    await self._sleep_until(think)
                    if time.monotonic() >= self.t_end:
                        break
                    step = "moving a slider"
                    await self.slider_step()
        except TimeoutError:
            self.rec.errors.append(f"student {self.i}: no answer within {self.beh.action_timeout:.0f} s while {step}")
        except Exception as e:  # noqa: BLE001  (one student's failure is a result)
            self.rec.errors.append(f"student {self.i}: {type(e).__name__} while {step}: {str(e)[:200]}")
        finally:
            if self.background:
                await asyncio.wait(list(self.background), timeout=10)
            for task in list(self.background):
                task.cancel()
            await self.session.close()


def load_hostile_files() -> dict[str, bytes]:
    try:
        from hostile_files import hostile_files  # tests/hostile_files.py
    except ImportError as e:
        raise SystemExit(f"--hostile needs tests/hostile_files.py with hostile_files() -> dict[str, bytes]: {e}")
    files = hostile_files()
    if not files:
        raise SystemExit("tests/hostile_files.py: hostile_files() returned no files")
    return files


def _mime(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
            "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff", "heic": "image/heic", "heif": "image/heif",
            "svg": "image/svg+xml"}.get(ext, "application/octet-stream")


async def hostile_student(host: str, port: int, rec: Recorder, beh: Behaviour, t_end: float,
                          files: dict[str, bytes]) -> None:
    """Uploads every hostile file in turn, in a loop, on the start page; reconnects if the session dies."""
    items = list(files.items())
    n = 0
    session: Session | None = None
    run: Run | None = None
    while time.monotonic() < t_end:
        try:
            if session is None:
                session = Session(host, port, timeout=beh.action_timeout)
                await session.connect()
                run = await session.open_page("", first=True)
                rec.hostile["sessions"] += 1
            uploader = next((wid for wid, (kind, _r, _e) in run.widgets.items() if kind == "file_uploader"), None)
            if uploader is None:  # its own session is broken: reload the tab (a new session)
                rec.hostile["no uploader: reloaded the tab"] += 1
                await session.close()
                session = None
                await asyncio.sleep(beh.hostile_pause)
                continue
            name, data = items[n % len(items)]
            n += 1
            allowed = tuple(t.lower() for t in run.widgets[uploader][2].type)
            if allowed and not name.lower().endswith(allowed) and not beh.hostile_raw:
                outcome = "refused by the browser (file type)"  # the browser's uploader never sends it
                rec.hostile[outcome] += 1
                per = rec.hostile_files.setdefault(name, {"outcome": outcome, "uploads": 0, "slowest_s": 0.0, "bytes": len(data)})
                per["uploads"] += 1
                await asyncio.sleep(min(beh.hostile_pause, max(0.0, t_end - time.monotonic())))
                continue
            t0 = time.perf_counter()
            status, new_run, _state = await session.upload(uploader, name, data, _mime(name), page_hash=session.nav.get("", ""))
            if new_run is None:
                outcome = f"refused by HTTP {status}" if status else "connection closed by the server"
            else:
                run = new_run
                rec.action("hostile upload", t0, new_run.latency)
                shown, _url = new_run.upload_caption()
                if new_run.exceptions or any(APOLOGY in body for _f, body in new_run.alerts):
                    outcome = "crashed (exception or apology)"
                    what = new_run.exceptions[0] if new_run.exceptions else "the app's apology"
                    rec.errors.append(f"hostile student: {name!r}: {what}")
                elif any(f == Alert.ERROR for f, _b in new_run.alerts):
                    outcome = "refused by the app with a message"
                elif shown == name:
                    outcome = "accepted"
                else:
                    outcome = "no message, not taken"
            rec.hostile[outcome] += 1
            took = time.perf_counter() - t0
            per = rec.hostile_files.setdefault(name, {"outcome": outcome, "uploads": 0, "slowest_s": 0.0, "bytes": len(data)})
            per.update(outcome=outcome, uploads=per["uploads"] + 1, slowest_s=round(max(per["slowest_s"], took), 2))
            rec.hostile_examples.setdefault(outcome, [])
            if name not in rec.hostile_examples[outcome] and len(rec.hostile_examples[outcome]) < 50:
                rec.hostile_examples[outcome].append(name)
        except TimeoutError:
            rec.hostile["no answer (timeout)"] += 1
            name = items[(n - 1) % len(items)][0] if n else "(joining)"
            if n:
                per = rec.hostile_files.setdefault(name, {"outcome": "", "uploads": 0, "slowest_s": 0.0, "bytes": len(files[name])})
                per.update(outcome=f"no answer within {beh.action_timeout:.0f} s", uploads=per["uploads"] + 1)
            rec.errors.append(f"hostile student: no answer within {beh.action_timeout:.0f} s for {name!r}")
            if session:
                await session.close()
            session = None
        except Exception as e:  # noqa: BLE001
            rec.hostile[f"session lost ({type(e).__name__})"] += 1
            if session:
                await session.close()
            session = None
        await asyncio.sleep(min(beh.hostile_pause, max(0.0, t_end - time.monotonic())))
    if session:
        await session.close()
    rec.hostile["files tried"] = n


# --- the server's resources ----------------------------------------------------------------------------


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (and their waited-for children)."""
    total = 0
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, IndexError, ValueError):
            continue
    return total / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (not idle, not iowait)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return (sum(parts[:8]) - parts[3] - parts[4]) / CLK_TCK


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class Sampler(threading.Thread):
    """Every ``every`` s: (monotonic time, server CPU s, server RSS MiB, machine busy s, own CPU s)."""

    def __init__(self, pid: int | None, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float, float, float, float]] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def sample(self) -> tuple[float, float, float, float, float]:
        s = (time.monotonic(), tree_cpu_s(self.pid) if self.pid else 0.0, tree_rss_mib(self.pid) if self.pid else 0.0,
             machine_busy_s(), self_cpu_s())
        with self._lock:
            self.samples.append(s)
        return s

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def window(self, t0: float, t1: float) -> dict:
        with self._lock:
            s = [x for x in self.samples if t0 <= x[0] <= t1]
        if len(s) < 2:
            return {}
        wall = s[-1][0] - s[0][0]
        server = (s[-1][1] - s[0][1]) / wall
        busy = (s[-1][3] - s[0][3]) / wall
        own = (s[-1][4] - s[0][4]) / wall
        peak = 0.0  # the busiest ~2 s of the server
        j = 0
        for i in range(len(s)):
            while s[i][0] - s[j][0] > 2.0:
                j += 1
            if s[i][0] - s[j][0] >= 1.5:
                peak = max(peak, (s[i][1] - s[j][1]) / (s[i][0] - s[j][0]))
        return {"server_cpu_cores": round(server, 2), "server_cpu_cores_peak_2s": round(peak, 2),
                "server_rss_mib_peak": round(max(x[2] for x in s), 1), "server_rss_mib_end": round(s[-1][2], 1),
                "load_generator_cpu_cores": round(own, 2), "machine_busy_cores": round(busy, 2),
                "other_processes_cpu_cores": round(max(0.0, busy - server - own), 2), "seconds": round(wall, 1)}


# --- levels, search, memory ----------------------------------------------------------------------------


def stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
            "max": max(values), "mean": float(np.mean(values))}


async def warm_up(host: str, port: int, timeout: float = 120.0) -> None:
    """One unmeasured session that opens every page and uploads once: models loaded, code compiled."""
    rec = Recorder()
    st = Student(0, 1, host, port, rec, Behaviour(action_timeout=timeout), time.monotonic() + timeout, None)
    try:
        await st.join()
        await st.upload()
        for _ in PAGES[1:]:
            await st.open_next_page()
            await st.slider_step()
    finally:
        await st.session.close()
    if rec.errors:
        print("warm-up saw errors:\n  " + "\n  ".join(rec.errors[:10]), file=sys.stderr)


async def run_level(host: str, port: int, k: int, duration: float, beh: Behaviour, sampler: Sampler | None = None,
                    hostile: dict[str, bytes] | None = None, page_p95: float = 1.0, slider_p95: float = 0.3) -> dict:
    """K students (and maybe a hostile one) for ``duration`` seconds; their numbers and the server's."""
    rec = Recorder()
    expected = [student_image(i, k)[1] for i in range(k)]
    t_start = time.monotonic()
    t_end = t_start + duration
    if sampler:
        sampler.sample()
    students = [Student(i, k, host, port, rec, beh, t_end, expected) for i in range(k)]
    tasks = [asyncio.create_task(s.live(t_start + beh.ramp * i / max(k, 1))) for i, s in enumerate(students)]
    if hostile:
        tasks.append(asyncio.create_task(hostile_student(host, port, rec, beh, t_end, hostile)))
    await asyncio.gather(*tasks)
    t_stop = time.monotonic()
    if sampler:
        sampler.sample()
    for s in students:  # a student who uploaded must end up seeing its own file
        own = (f"student {s.i} ", f"student {s.i}:")
        if s.own_file and rec.last_caption.get(s.i) != s.own_file and not any(e.startswith(own) for e in rec.errors):
            rec.errors.append(f"student {s.i}: last sidebar caption {rec.last_caption.get(s.i)!r}, not {s.own_file!r}")
    lat = {kind: stats(rec.latencies(kind)) for kind in ("join", "page", "slider", "upload", "hostile upload")}
    if not hostile:
        lat.pop("hostile upload")
    out = {
        "students": k,
        "duration_s": round(t_stop - t_start, 1),
        "latency_s": lat,
        "actions_per_s": round(len(rec.actions) / max(t_stop - t_start, 1e-9), 2),
        "errors": len(rec.errors),
        "mixups": len(rec.mixups),
        "failures": (rec.errors + rec.mixups)[:40],
        "by_page_s": {kind: {(p or "start"): stats(rec.latencies(kind, p or "start")) for p in PAGES
                             if rec.latencies(kind, p or "start")} for kind in ("page", "slider")},
        "verified": dict(rec.verified),
        "uploads_per_student": [s.uploads for s in students],
        "media": dict(rec.media),
        "resources": sampler.window(t_start, t_stop) if sampler else {},
    }
    if hostile:
        out["hostile"] = {"outcomes": dict(rec.hostile), "examples": rec.hostile_examples, "per_file": rec.hostile_files}
    out["pass"] = bool(lat["page"]["n"] and lat["slider"]["n"] and lat["page"]["p95"] <= page_p95
                       and lat["slider"]["p95"] <= slider_p95 and not rec.errors and not rec.mixups)
    return out


def _metrics_cache_mib(body: bytes) -> float:
    total = 0.0
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("cache_memory_bytes{"):
            with suppress(ValueError):
                total += float(line.rsplit(" ", 1)[1])
    return total / 2**20


async def run_sessions(host: str, port: int, n: int, every: int, pid: int | None, beh: Behaviour,
                       settle: float = 0.0) -> dict:
    """N sessions one after another (connect, start page, upload, 4. Attention, close); RSS every ``every``."""
    rec = Recorder()
    t0 = time.monotonic()

    async def row(done: int) -> dict:
        cache = None
        with suppress(Exception):
            status, _h, body = await http(host, port, "GET", "/_stcore/metrics", timeout=10)
            cache = round(_metrics_cache_mib(body), 1) if status == 200 else None
        r = {"sessions": done, "t_s": round(time.monotonic() - t0, 1),
             "server_rss_mib": round(tree_rss_mib(pid), 1) if pid else None, "st_caches_mib": cache}
        print(f"  {r}", file=sys.stderr, flush=True)
        return r

    rows = [await row(0)]
    for j in range(n):
        st = Student(j, max(n, 1), host, port, rec, beh, time.monotonic() + 3600, None)
        try:
            await st.join()
            await st.upload()
            st.page = "positions"  # the next page is 4. Attention
            await st.open_next_page()
        except Exception as e:  # noqa: BLE001
            rec.errors.append(f"session {j}: {type(e).__name__}: {str(e)[:200]}")
        finally:
            await st.session.close()
        if (j + 1) % every == 0 or j + 1 == n:
            rows.append(await row(j + 1))
    if settle > 0:
        await asyncio.sleep(settle)
        r = await row(n)
        r["after_settle_s"] = settle
        rows.append(r)
    return {"sessions": n, "rss": rows, "errors": len(rec.errors), "mixups": len(rec.mixups),
            "failures": (rec.errors + rec.mixups)[:40],
            "latency_s": {kind: stats(rec.latencies(kind)) for kind in ("join", "upload", "page")},
            "verified": dict(rec.verified)}


# --- report --------------------------------------------------------------------------------------------


def _f(v, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _ppp(s: dict) -> str:
    return f"{_f(s['p50'])} / {_f(s['p95'])} / {_f(s['p99'])} (n={s['n']})"


def markdown_levels(levels: list[dict], args) -> str:
    lines = [f"Protocol load test: {os.cpu_count()} CPUs, levels of {args.duration:.0f} s, ramp {args.ramp:.0f} s, "
             f"slider every {args.slider_think[0]:g}–{args.slider_think[1]:g} s, page every "
             f"{args.page_think[0]:g}–{args.page_think[1]:g} s; pass: page p95 ≤ {args.page_p95:g} s, "
             f"slider p95 ≤ {args.slider_p95:g} s" + (" ; + 1 hostile student" if args.hostile else ""),
             "",
             ("| students | page open p50 / p95 / p99 (s) | slider step p50 / p95 / p99 (s) | upload p50 / p95 / p99 (s) "
              "| join p95 (s) | actions/s | server CPU mean / peak (cores) | server RSS peak (MiB) | load generator CPU "
              "| other processes CPU | errors | mix-ups | pass |"),
             "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for lv in levels:
        r, lat = lv.get("resources", {}), lv["latency_s"]
        lines.append(f"| {lv['students']} | {_ppp(lat['page'])} | {_ppp(lat['slider'])} | {_ppp(lat['upload'])} "
                     f"| {_f(lat['join']['p95'])} | {lv['actions_per_s']:.1f} | {_f(r.get('server_cpu_cores'))} / "
                     f"{_f(r.get('server_cpu_cores_peak_2s'))} | {_f(r.get('server_rss_mib_peak'), 0)} "
                     f"| {_f(r.get('load_generator_cpu_cores'))} | {_f(r.get('other_processes_cpu_cores'))} "
                     f"| {lv['errors']} | {lv['mixups']} | {'yes' if lv['pass'] else 'no'} |")
    for lv in levels:
        if lv.get("hostile"):
            h = lv["hostile"]["outcomes"]
            lines += ["", f"Hostile student ({lv['students']} students): " + ", ".join(f"{k}: {v}" for k, v in sorted(h.items()))]
            hl = lv["latency_s"].get("hostile upload")
            if hl and hl["n"]:
                lines.append(f"hostile upload latency p50 / p95 / max: {_f(hl['p50'])} / {_f(hl['p95'])} / {_f(hl['max'])} s")
            lines += ["", "| hostile file | bytes | uploads | outcome | slowest answer (s) |", "|---|---:|---:|---|---:|"]
            lines += [f"| `{name!r}` | {v['bytes']:,} | {v['uploads']} | {v['outcome']} | {_f(v['slowest_s'])} |"
                      for name, v in lv["hostile"]["per_file"].items()]
        if lv["failures"]:
            lines += ["", f"Failures with {lv['students']} students:"] + [f"- {x}" for x in lv["failures"][:15]]
    return "\n".join(lines)


async def run_costs(host: str, port: int, pid: int | None, repeat: int, beh: Behaviour) -> dict:
    """One student alone: every page opened ``repeat`` times, ``repeat`` slider steps on each; per action
    the latency and the server CPU seconds it cost (nothing else talks to the server meanwhile)."""
    rec = Recorder()
    quiet = Behaviour(**{**beh.__dict__, "fetch_media": False})
    st = Student(0, 1, host, port, rec, quiet, time.monotonic() + 3600, None)
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}

    async def measure(kind: str, page: str, action) -> None:
        cpu0 = tree_cpu_s(pid) if pid else 0.0
        await action()
        cpu = (tree_cpu_s(pid) - cpu0) if pid else float("nan")
        lat = rec.actions[-1][2]
        rows.setdefault(page or "start", {}).setdefault(kind, []).append((lat, cpu))

    try:
        await st.join()
        await measure("upload", "", st.upload)
        for _ in range(repeat):
            for _page in PAGES:
                await measure("page", PAGES[(PAGES.index(st.page) + 1) % len(PAGES)], st.open_next_page)
                for _ in range(repeat if slider_candidates(st.run) else 0):
                    await measure("slider", st.page, st.slider_step)
    finally:
        await st.session.close()
    out = {page: {kind: {"n": len(v), "latency_p50_s": percentile([x[0] for x in v], 50),
                         "server_cpu_s_mean": float(np.mean([x[1] for x in v]))} for kind, v in kinds.items()}
           for page, kinds in rows.items()}
    return {"per_page": out, "errors": len(rec.errors), "mixups": len(rec.mixups), "failures": (rec.errors + rec.mixups)[:20]}


def markdown_costs(res: dict) -> str:
    lines = ["Cost of one action, one student alone (server CPU seconds per action, from /proc; latency p50)", "",
             "| page | page open: CPU s / latency s | slider step: CPU s / latency s | upload: CPU s / latency s |",
             "|---|---:|---:|---:|"]
    for page, kinds in res["per_page"].items():
        cells = []
        for kind in ("page", "slider", "upload"):
            v = kinds.get(kind)
            cells.append(f"{v['server_cpu_s_mean']:.2f} / {v['latency_p50_s']:.2f} (n={v['n']})" if v else "–")
        lines.append(f"| {page} | " + " | ".join(cells) + " |")
    lines += ["", f"errors: {res['errors']}, mix-ups: {res['mixups']}"] + [f"- {x}" for x in res["failures"]]
    return "\n".join(lines)


def markdown_sessions(res: dict) -> str:
    lines = [f"Memory over {res['sessions']} sessions, one after another (connect, start page, upload, 4. Attention, close)",
             "", "| sessions | t (s) | server RSS (MiB) | st caches (MiB) |", "|---:|---:|---:|---:|"]
    for r in res["rss"]:
        extra = f" (+{r['after_settle_s']:.0f} s idle)" if "after_settle_s" in r else ""
        lines.append(f"| {r['sessions']}{extra} | {r['t_s']:.0f} | {_f(r['server_rss_mib'], 0)} | {_f(r['st_caches_mib'], 1)} |")
    lat = res["latency_s"]
    lines += ["", f"join p50/p95/p99: {_ppp(lat['join'])}; upload: {_ppp(lat['upload'])}; 4. Attention: {_ppp(lat['page'])}",
              f"errors: {res['errors']}, mix-ups: {res['mixups']}"]
    if res["failures"]:
        lines += ["", "Failures:"] + [f"- {x}" for x in res["failures"][:15]]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------------


def _pair(text: str) -> tuple[float, float]:
    a, _s, b = text.partition(",")
    lo, hi = float(a), float(b or a)
    if not 0 <= lo <= hi:
        raise argparse.ArgumentTypeError("give LOW,HIGH seconds with 0 ≤ LOW ≤ HIGH")
    return lo, hi


def _levels(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",") if x.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("class sizes must be positive integers, e.g. 5,10,20")
    return levels


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="load_test.py --mode protocol", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=_levels, default=[10], help="class size(s), e.g. 5,10,20 (default 10)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per level, ramp included (default 60)")
    ap.add_argument("--ramp", type=float, default=10.0, help="students join over this many seconds (default 10)")
    ap.add_argument("--slider-think", type=_pair, default=(2.0, 5.0), help="LOW,HIGH s between slider steps (default 2,5)")
    ap.add_argument("--page-think", type=_pair, default=(10.0, 20.0), help="LOW,HIGH s on a page (default 10,20)")
    ap.add_argument("--page-p95", type=float, default=1.0, help="pass: page open p95 at most this (s, default 1)")
    ap.add_argument("--slider-p95", type=float, default=0.3, help="pass: slider step p95 at most this (s, default 0.3)")
    ap.add_argument("--search", action="store_true", help="after --students, double while passing, then bisect")
    ap.add_argument("--max-students", type=int, default=128, help="--search: never more than this (default 128)")
    ap.add_argument("--resolution", type=int, default=2, help="--search: stop when pass and fail are this close (default 2)")
    ap.add_argument("--hostile", action="store_true", help="one more student uploads tests/hostile_files.py in a loop")
    ap.add_argument("--hostile-pause", type=float, default=1.0, help="s between two hostile uploads (default 1)")
    ap.add_argument("--hostile-raw", action="store_true",
                    help="the hostile student also uploads files whose type the browser's uploader refuses")
    ap.add_argument("--sessions", type=int, help="memory mode: this many sessions one after another")
    ap.add_argument("--cost", type=int, metavar="REPEAT",
                    help="cost mode: one student alone opens every page REPEAT times, REPEAT slider steps on each; "
                         "server CPU seconds and latency per action")
    ap.add_argument("--rss-every", type=int, default=25, help="memory mode: RSS every this many sessions (default 25)")
    ap.add_argument("--settle", type=float, default=0.0, help="memory mode: RSS again after this many idle s (default 0)")
    ap.add_argument("--no-media", action="store_true", help="do not fetch the /media/ images runs name")
    ap.add_argument("--action-timeout", type=float, default=60.0, help="an action without answer this long is an error")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--url", help="use a running server (http://127.0.0.1:PORT) instead of starting one")
    ap.add_argument("--server-pid", type=int, help="with --url: the server's pid, for CPU and RSS")
    ap.add_argument("--port", type=int, help="port for the server this starts (default: a free one)")
    ap.add_argument("--json", type=Path, help="also write the results here as JSON")
    ap.add_argument("--timeout", type=float, default=3600.0, help="stop everything after this many seconds (default 3600)")
    return ap


async def _class_levels(host: str, port: int, args, beh: Behaviour, sampler: Sampler, hostile) -> list[dict]:
    levels: list[dict] = []

    async def level(k: int) -> dict:
        print(f"level: {k} students for {args.duration:.0f} s…", file=sys.stderr, flush=True)
        lv = await run_level(host, port, k, args.duration, beh, sampler, hostile, args.page_p95, args.slider_p95)
        lat = lv["latency_s"]
        print(f"  page p95 {_f(lat['page']['p95'])} s, slider p95 {_f(lat['slider']['p95'])} s, errors {lv['errors']}, "
              f"mix-ups {lv['mixups']}, server CPU {_f(lv['resources'].get('server_cpu_cores'))} cores → "
              f"{'pass' if lv['pass'] else 'FAIL'}", file=sys.stderr, flush=True)
        levels.append(lv)
        await asyncio.sleep(3)  # closed sessions wind down between levels
        return lv

    for k in args.students:
        await level(k)
    if args.search:
        passed = [lv["students"] for lv in levels if lv["pass"]]
        failed = [lv["students"] for lv in levels if not lv["pass"]]
        lo, hi = max(passed, default=0), min([f for f in failed if f > max(passed, default=0)], default=None)
        while hi is None and lo and lo * 2 <= args.max_students:
            k = lo * 2
            if (await level(k))["pass"]:
                lo = k
            else:
                hi = k
        while hi is not None and hi - lo > args.resolution:
            k = (lo + hi) // 2
            if (await level(k))["pass"]:
                lo = k
            else:
                hi = k
        levels.sort(key=lambda lv: lv["students"])
        args._capacity = (lo, hi)
    return levels


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    beh = Behaviour(ramp=args.ramp, slider_think=args.slider_think, page_think=args.page_think,
                    hostile_pause=args.hostile_pause, hostile_raw=args.hostile_raw, fetch_media=not args.no_media,
                    action_timeout=args.action_timeout, seed=args.seed)
    hostile = load_hostile_files() if args.hostile else None
    start = time.monotonic()
    server = None
    if args.url:
        from urllib.parse import urlparse

        u = urlparse(args.url)
        host, port, pid = u.hostname or "127.0.0.1", u.port or 80, args.server_pid
    else:
        server = Server(args.port or free_port(), env={})
        host, port, pid = "127.0.0.1", server.port, server.proc.pid

    def last_resort() -> None:
        try:
            if server is not None:
                os.killpg(server.proc.pid, signal.SIGKILL)
        finally:
            os._exit(3)

    watchdog = threading.Timer(args.timeout + 30, last_resort)
    watchdog.daemon = True
    watchdog.start()
    sampler = Sampler(pid)
    result: dict = {"mode": "protocol", "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                     "platform": platform.platform()},
                    "env": {k: v for k, v in os.environ.items() if k.startswith("VIT_EXPLORER_")},
                    "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    ok = False
    try:
        if server is not None:
            server.wait_healthy(min(start + args.timeout, time.monotonic() + 180))
        idle = tree_rss_mib(pid) if pid else None
        print(f"server at http://{host}:{port} (pid {pid}), idle RSS {_f(idle, 0)} MiB; warming up…",
              file=sys.stderr, flush=True)
        sampler.start()

        async def go() -> None:
            await warm_up(host, port)
            result["server_rss_mib_idle"] = round(idle, 1) if idle else None
            result["server_rss_mib_after_warm_up"] = round(tree_rss_mib(pid), 1) if pid else None
            if args.cost:
                result["cost"] = await run_costs(host, port, pid, args.cost, beh)
            elif args.sessions:
                result["memory"] = await run_sessions(host, port, args.sessions, args.rss_every, pid, beh, args.settle)
            else:
                result["levels"] = await _class_levels(host, port, args, beh, sampler, hostile)

        asyncio.run(asyncio.wait_for(go(), timeout=max(1.0, start + args.timeout - time.monotonic())))
        if args.cost:
            print(markdown_costs(result["cost"]))
            ok = result["cost"]["errors"] == 0 and result["cost"]["mixups"] == 0
        elif args.sessions:
            print(markdown_sessions(result["memory"]))
            ok = result["memory"]["errors"] == 0 and result["memory"]["mixups"] == 0
        else:
            print(markdown_levels(result["levels"], args))
            if args.search:
                lo, hi = args._capacity
                result["capacity"] = {"largest_passing_class": lo, "smallest_failing_class": hi}
                print(f"\nLargest class that passed: {lo} students"
                      + (f" (first failure: {hi})" if hi else f" (none failed up to {args.max_students})"))
            ok = all(lv["errors"] == 0 and lv["mixups"] == 0 for lv in result["levels"])
    except TimeoutError:
        print(f"TIMED OUT after {args.timeout:.0f} s", file=sys.stderr)
    except Exception:  # noqa: BLE001  (reported, then the server is stopped)
        traceback.print_exc()
    finally:
        sampler.stop()
        if server is not None:
            tail = server.log_tail()
            server.stop()
            if not ok:
                result["server_log_tail"] = tail
        watchdog.cancel()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
