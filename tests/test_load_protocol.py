"""The protocol-level load test (``scripts/load_protocol.py``) against the real server.

Three simulated students speak Streamlit's websocket protocol for a few seconds: each joins, uploads
its own picture, walks the pages and moves sliders. Nobody may see an error or another student's
file; and the checks that say so must really have run (the page titles, the sidebar caption with the
student's own file name, the thumbnail's colour). Timings are not asserted: they depend on the
machine. The checker itself is tested on hand-made answers first, so a silent checker cannot pass.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import load_protocol as lp
from streamlit.proto.Alert_pb2 import Alert

HOSTILE = Path(__file__).resolve().parent / "hostile_files.py"


def _run(**kw) -> lp.Run:
    run = lp.Run(headings=["ViT Explorer", "1. Choose an image"], status=0)
    for k, v in kw.items():
        setattr(run, k, v)
    return run


# --- the checker, without a server ------------------------------------------------------------------


def test_the_checker_accepts_a_good_answer() -> None:
    run = _run(sidebar_images=[("upload: student\\-0\\-1\\.png", "/media/a.png")])
    assert lp.check_run(run, "", "student-0-1.png") == ([], [])
    assert run.upload_caption() == ("student-0-1.png", "/media/a.png")


def test_the_checker_sees_another_students_file() -> None:
    run = _run(sidebar_images=[("upload: student\\-1\\-1\\.png", "/media/b.png")])
    errors, mixups = lp.check_run(run, "", "student-0-1.png")
    assert errors == [] and len(mixups) == 1 and "student-1-1.png" in mixups[0]
    # before its own upload, a student must not see anybody's upload either
    assert len(lp.check_run(run, "", None)[1]) == 1


def test_the_checker_sees_errors_a_lost_upload_and_a_wrong_page() -> None:
    sample = [("sample: 3", "/media/c.png")]
    assert any("lost its upload" in e for e in lp.check_run(_run(sidebar_images=sample), "", "student-0-1.png")[0])
    apology = _run(alerts=[(Alert.ERROR, lp.APOLOGY + ". Starting over…")])
    assert lp.check_run(apology, "", None)[0] == ["the app's apology"]
    assert lp.check_run(_run(exceptions=["ValueError: boom"]), "", None)[0] == ["exception element: ValueError: boom"]
    assert "error alert" in lp.check_run(_run(alerts=[(Alert.ERROR, "bad file")]), "", None)[0][0]
    assert lp.check_run(_run(alerts=[(Alert.INFO, "Live shapes")]), "", None) == ([], [])
    assert "without its title" in lp.check_run(_run(), "attention", None)[0][0]
    assert "another page ran" in lp.check_run(_run(page_hash="h1"), "", None, expect_page_hash="h2")[0][0]
    assert lp.check_run(_run(page_not_found=True), "", None)[0] == ["page not found"]


# --- the real server ----------------------------------------------------------------------------------


def _address(url: str) -> tuple[str, int]:
    u = urlparse(url)
    return u.hostname, u.port


FAST = lp.Behaviour(ramp=1.0, slider_think=(0.2, 0.6), page_think=(0.8, 1.5), action_timeout=60.0, seed=1)


@pytest.fixture(scope="module")
def warm(server) -> tuple[str, int]:
    """The server, after one session opened every page (models loaded), as the load test does first."""
    host, port = _address(server)
    asyncio.run(lp.warm_up(host, port))
    return host, port


@pytest.mark.slow
def test_three_students_see_their_own_pages_and_uploads(warm) -> None:
    host, port = warm
    level = asyncio.run(lp.run_level(host, port, 3, 8.0, FAST))
    assert level["errors"] == 0 and level["mixups"] == 0, "\n".join(level["failures"])
    lat, seen = level["latency_s"], level["verified"]
    assert lat["join"]["n"] == 3 and lat["upload"]["n"] >= 3
    assert lat["page"]["n"] >= 3 and lat["slider"]["n"] >= 3, lat
    # every run was checked: its page's title, and after the upload the student's own file name; a slider
    # inside an st.fragment reruns only the fragment, which has neither
    fragments = seen.get("fragment runs", 0)
    assert seen["page content"] == lat["join"]["n"] + lat["upload"]["n"] + lat["page"]["n"] + lat["slider"]["n"] - fragments
    assert seen["own file in the sidebar"] == lat["upload"]["n"] + lat["page"]["n"] + lat["slider"]["n"] - fragments
    assert seen["own colour in the thumbnail"] >= 3  # each student's thumbnail, fetched and compared by colour
    assert len(level["by_page_s"]["page"]) >= 2  # the students really walked from page to page
    assert level["media"].get("fetched", 0) > 0  # the images runs name, fetched as a browser would


@pytest.mark.slow
@pytest.mark.skipif(not HOSTILE.exists(), reason="tests/hostile_files.py is not there yet")
def test_a_hostile_student_does_not_disturb_the_class(warm) -> None:
    files = lp.load_hostile_files()
    host, port = warm
    # 20 s without an answer is a failure: each hostile file must be refused or decoded within ~2 s
    beh = lp.Behaviour(ramp=0.5, slider_think=(0.3, 0.8), page_think=(1.0, 2.0), hostile_pause=0.2,
                       action_timeout=20.0, seed=2)
    level = asyncio.run(lp.run_level(host, port, 2, 8.0, beh, hostile=files))
    class_errors = [e for e in level["failures"] if not e.startswith("hostile")]
    assert level["mixups"] == 0 and not class_errors, "\n".join(level["failures"])
    outcomes = level["hostile"]["outcomes"]
    assert outcomes["files tried"] >= 1 and not outcomes.get("no answer (timeout)"), outcomes
    assert not outcomes.get("crashed (exception or apology)"), level["hostile"]
