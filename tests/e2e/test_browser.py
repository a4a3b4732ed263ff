"""A real browser (headless Chromium + hls.js) plays a stream through Home Assistant.

Home Assistant runs with the integration loaded against the engine simulator; the test
signs the HLS playlist path, serves a tiny page (tests/e2e/page.html) and hls.js from
a second loopback server (another origin, so CORS is exercised), opens it in headless
Chromium with ``?src=<signed playlist URL>`` and reads the ``<video>`` element over
the DevTools protocol (aiohttp's websocket client: no extra Python packages).

Needs /usr/bin/chromium and hls.js: ``bash script/e2e_setup.sh`` installs both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
from pathlib import Path
import time
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from yarl import URL

from custom_components.acestream_proxy.const import DEFAULT_HLS_SEGMENT
from custom_components.acestream_proxy.hub import get_hub
from tests.e2e.chromium import CHROMIUM, HLS_JS, Chromium, page_server
from tests.ha_fixtures import CID, PREFIX
from tests.helpers import signed_path
from tests.simulator import EngineSimulator

SETUP_HINT = "run `bash script/e2e_setup.sh` (as root) to install Chromium and hls.js"

HLS = f"{PREFIX}/hls/{CID}/index.m3u8"

# How long the page gets to play more than PLAYED seconds, counted from launch.
PLAY_DEADLINE = 30.0
PLAYED = 2.0
# The fixture's picture (script/make_fixture.sh).
FIXTURE_SIZE = (640, 360)


def _require(path: Path, what: str) -> None:
    if not path.exists():
        pytest.fail(f"{what} not found at {path}: {SETUP_HINT}", pytrace=False)


async def _wait_for(
    browser: Chromium,
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """Poll the page's state until ``done(state)``; fail with diagnostics."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state = None
    while True:
        state = await browser.state()
        if state is not None and done(state):
            return state
        if loop.time() > deadline:
            pytest.fail(
                f"{what}: not within {timeout} s\n"
                f"page state: {json.dumps(state, indent=1)}\n"
                f"chromium output (tail):\n{browser.log_tail()}",
                pytrace=False,
            )
        await asyncio.sleep(0.1)


@pytest.fixture
def browser(tmp_path: Path) -> Chromium:
    """Headless Chromium, hls.js at hand (the test fails, saying how to set them up,
    when either is missing)."""
    _require(CHROMIUM, "Chromium")
    _require(HLS_JS, "hls.js")
    return Chromium(tmp_path)


@pytest.fixture
def src(hass: HomeAssistant, owner_client: TestClient, hass_access_token: str) -> str:
    """The signed URL of the playlist of ``CID`` on Home Assistant."""
    return str(owner_client.make_url(signed_path(hass, HLS, hass_access_token)))


@pytest.mark.timeout(120)
async def test_chromium_plays_hls_through_home_assistant(
    hass: HomeAssistant, engine_sim: EngineSimulator, browser: Chromium, src: str
) -> None:
    """hls.js in headless Chromium plays the signed playlist URL, cross-origin."""
    async with page_server() as page_url:
        assert page_url.origin() != URL(src).origin()  # cross-origin: CORS applies
        loop = asyncio.get_running_loop()
        launched_wall = time.time()
        launched = loop.time()
        try:
            await browser.start(str(page_url.with_query(src=src)))
            # Plays: more than PLAYED seconds within PLAY_DEADLINE of the launch.
            state = await _wait_for(
                browser,
                lambda s: s["played"] > PLAYED,
                PLAY_DEADLINE - (loop.time() - launched),
                f"more than {PLAYED} s of playback",
            )
            played_at = loop.time() - launched
            first = state["currentTime"]
            # Keeps playing live: the playlist is reloaded, the next segment (its own
            # signed URL from the reloaded playlist) loads, and currentTime advances
            # past the first segment.
            state = await _wait_for(
                browser,
                lambda s: (
                    s["currentTime"] > first + 2.0
                    and s["counts"]["fragments"] >= 2
                    and s["counts"]["playlists"] >= 2
                ),
                15.0,
                f"playback advancing from {first:.2f} s into the next segment",
            )
            assert (state["videoWidth"], state["videoHeight"]) == FIXTURE_SIZE, state
            assert state["error"] is None, state
            fatal = [e for e in state["errors"] if " fatal:" in e]
            assert not fatal, state
        finally:
            await browser.close()

    # One engine session, one HLS output, the browser counted as its client.
    assert engine_sim.counters.sessions_opened == 1
    [item] = get_hub(hass).broadcasts.values()
    assert item.hls is not None
    assert item.hls.clients

    marks = {name: ms / 1000 for name, ms in state["marks"].items()}
    navigation = state["timeOrigin"] / 1000 - launched_wall
    first_frame = navigation + marks["firstProgress"]
    print(
        "\n>>> cold start through HA, simulator cold start 0.3 s "
        f"(Chromium headless, hls.js {state['hlsVersion']},"
        f" {DEFAULT_HLS_SEGMENT} s segments):\n"
        f"    browser launch -> first frame (currentTime > 0): {first_frame:.2f} s\n"
        f"      launch -> page navigation start {navigation:.2f} s; then "
        + ", ".join(f"{name} +{t:.2f} s" for name, t in marks.items())
        + "\n      (first playlist request -> parsed; HA waits for the first segment:"
        f" {marks['manifestParsed'] - marks['loadSource']:.2f} s)\n"
        f"    currentTime > {PLAYED} s at {played_at:.2f} s after launch;"
        f" at the end {state['currentTime']:.2f} s played,"
        f" {state['counts']['fragments']} segments,"
        f" {state['counts']['playlists']} playlist loads;"
        f" stalls after the first frame (ms): {state['stalls'] or 'none'}\n"
        f"    non-fatal hls.js errors: {state['errors'] or 'none'}"
    )


@pytest.mark.timeout(150)
async def test_chromium_plays_across_a_discontinuity(
    hass: HomeAssistant, engine_sim: EngineSimulator, browser: Chromium, src: str
) -> None:
    """The engine cuts the stream: hls.js plays on past the discontinuity."""
    async with page_server() as page_url:
        try:
            await browser.start(str(page_url.with_query(src=src)))
            state = await _wait_for(
                browser,
                lambda s: s["played"] > PLAYED,
                PLAY_DEADLINE,
                f"more than {PLAYED} s of playback",
            )
            assert engine_sim.cut_readers() == 1
            # Plays into the fragments after the discontinuity (cc 1), and on.
            state = await _wait_for(
                browser,
                lambda s: s["counts"]["playingCc"] >= 1,
                60.0,
                "playing the segments after the discontinuity",
            )
            resumed = state["currentTime"]
            state = await _wait_for(
                browser,
                lambda s: s["currentTime"] > resumed + 3.0,
                20.0,
                f"currentTime advancing from {resumed:.2f} s after the discontinuity",
            )
            assert state["error"] is None, state
            fatal = [e for e in state["errors"] if " fatal:" in e]
            assert not fatal, state
            # hls.js retries a reload it cannot merge with the one before (a
            # "media sequence mismatch") and stops after a few: none at all.
            merge = [e for e in state["errors"] if "levelParsingError" in e]
            assert not merge, "\n".join(state["errors"])
        finally:
            await browser.close()
    [item] = get_hub(hass).broadcasts.values()
    assert item.hls is not None
    assert item.broadcaster.stats.upstream_restarts == 1
    print(
        f"\n>>> across an upstream cut: playing cc {state['counts']['playingCc']} "
        f"from {state['counts']['ccStartedAt']:.2f} s, now {state['currentTime']:.2f} s;"
        f" stalls (ms): {state['stalls'] or 'none'};"
        f" non-fatal hls.js errors: {state['errors'] or 'none'}"
    )


@pytest.mark.timeout(120)
async def test_chromium_starts_a_warm_broadcast_at_once(
    hass: HomeAssistant, owner_client: TestClient, browser: Chromium, src: str
) -> None:
    """Somebody watches over MPEG-TS: hls.js starts from the replay window."""
    client = owner_client
    async with (
        client.get(f"{PREFIX}/stream/{CID}") as ts,
        page_server() as page_url,
    ):
        assert ts.status == 200
        await ts.content.readany()
        [item] = get_hub(hass).broadcasts.values()
        ring = item.broadcaster.ring
        async with asyncio.timeout(30):
            while ring.age(ring.first_seq, time.monotonic()) < 9:
                await asyncio.sleep(0.2)
        try:
            await browser.start(str(page_url.with_query(src=src)))
            state = await _wait_for(
                browser,
                lambda s: s["played"] > PLAYED,
                PLAY_DEADLINE,
                f"more than {PLAYED} s of playback",
            )
            assert state["error"] is None, state
        finally:
            await browser.close()
    marks = {name: ms / 1000 for name, ms in state["marks"].items()}
    print(
        "\n>>> warm start through HA (a TS viewer watched for 9 s; "
        f"{DEFAULT_HLS_SEGMENT} s segments): hls.js given the URL -> first frame "
        f"{marks['firstProgress'] - marks['loadSource']:.2f} s (first playlist "
        f"{marks['manifestParsed'] - marks['loadSource']:.2f} s); stalls (ms): "
        f"{state['stalls'] or 'none'}"
    )
