"""The zap table's browser rows: hls.js in headless Chromium, and Home Assistant's
own frontend playing a channel from its media browser.

Used by script/zap.py when Chromium and hls.js are there (``bash
script/e2e_setup.sh`` installs both); it drives Chromium with the e2e tests'
helper (tests/e2e/chromium.py) and measures in the page:

- hls.js: tests/e2e/page.html given a signed playlist URL; from ``hls.loadSource``
  (hls.js given the URL) to the first frame the ``<video>`` presents
  (``requestVideoFrameCallback``), and the live delay at that moment by the
  playlist's EXT-X-PROGRAM-DATE-TIME.
- Home Assistant's frontend: the user signs in through Home Assistant's login flow
  (the steps its login page takes; the frontend trades the code for its tokens),
  the media browser opens on the integration's folder with "this browser" as the
  player, and the channel is clicked; from the click to the first frame the
  frontend's own HLS player presents.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from pathlib import Path
import sys
import tempfile
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.chromium import CHROMIUM, HLS_JS, Chromium, page_server  # noqa: E402

FRAME_TIMEOUT = 45.0
POLL = 0.05
# After the first frame, playback is watched this long for stalls (a player that
# starts too close to the live edge freezes within its first seconds).
WATCH = 10.0
DOMAIN = "acestream_proxy"

# Helpers put into Home Assistant's frontend page: its elements live in shadow
# roots, so they are searched through every one of them.
FRONTEND_JS = r"""
(() => {
  if (window.__zapState) return true;
  const deep = (root, pred, out = []) => {
    for (const el of root.querySelectorAll("*")) {
      if (pred(el)) out.push(el);
      if (el.shadowRoot) deep(el.shadowRoot, pred, out);
    }
    return out;
  };
  window.__zap = { clicked: null, frame: null, progress: null, watched: false,
                   frameWall: null, stalls: [], stalledAt: null };
  window.__zapClick = (title) => {
    const [item] = deep(document, (el) => el.item && el.item.title === title &&
      (el.classList.contains("child") || el.localName === "mwc-list-item"));
    if (!item) return false;
    window.__zap = { clicked: performance.now(), frame: null, progress: null,
                     watched: false, frameWall: null, stalls: [], stalledAt: null };
    item.click();
    return true;
  };
  window.__zapState = () => {
    const z = window.__zap;
    const [video] = deep(document, (el) => el.localName === "video");
    if (video && !z.watched && video.requestVideoFrameCallback) {
      z.watched = true;
      video.requestVideoFrameCallback(() => {
        z.frame = performance.now();
        z.frameWall = Date.now();
      });
      video.addEventListener("waiting", () => {
        if (video.currentTime > 0 && z.stalledAt === null) z.stalledAt = performance.now();
      });
      video.addEventListener("playing", () => {
        if (z.stalledAt !== null) {
          z.stalls.push(Math.round(performance.now() - z.stalledAt));
          z.stalledAt = null;
        }
      });
    }
    const [player] = deep(document, (el) => el.localName === "ha-hls-player");
    const hls = player && player._hls;
    const level = hls && hls.levels && hls.levels[hls.currentLevel];
    const first = level && level.details && level.details.fragments[0];
    const firstDate = first && first.sn === 1 ? first.programDateTime : null;
    const delay = hls && hls.playingDate
      ? (Date.now() - hls.playingDate.getTime()) / 1000 : null;
    if (video && video.currentTime > 0 && z.progress === null) {
      z.progress = performance.now();
    }
    const [dialog] = deep(document,
      (el) => el.localName === "hui-dialog-web-browser-play-media");
    return { clicked: z.clicked, frame: z.frame, progress: z.progress,
             frameWall: z.frameWall, stalls: z.stalls, firstDate, delay,
             video: !!video, path: location.pathname,
             dialog: dialog && dialog.shadowRoot
               ? dialog.shadowRoot.textContent.replace(/\s+/g, " ").trim() : null };
  };
  return true;
})()
"""


def missing() -> str | None:
    """Why the browser rows cannot be measured here, or None."""
    for path, what in ((CHROMIUM, "Chromium"), (HLS_JS, "hls.js")):
        if not path.exists():
            return f"{what} not found at {path} (bash script/e2e_setup.sh)"
    return None


def _fresh(workdir: Path, name: str) -> Path:
    """A folder of its own for each browser (a profile is never reused: its
    DevToolsActivePort would name the port of the browser before)."""
    return Path(tempfile.mkdtemp(prefix=f"chromium-{name}-", dir=workdir))


async def _poll(browser: Chromium, expression: str, done: Any, what: str) -> Any:
    """Evaluate until ``done(value)``; fail with the last value."""
    value = None
    try:
        async with asyncio.timeout(FRAME_TIMEOUT):
            while True:
                with contextlib.suppress(AssertionError):  # a page still loading
                    value = await browser.evaluate(expression)
                    if done(value):
                        return value
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise RuntimeError(
            f"{what}: not within {FRAME_TIMEOUT:g} s; page: {json.dumps(value)[:400]}; "
            f"chromium: {browser.log_tail(400)}"
        ) from None


async def hlsjs_first_frame(url: str, workdir: Path) -> dict[str, Any]:
    """hls.js given ``url``: seconds to its first frame ("frame"); after the
    broadcast's first keyframe ("after key", when segment 0 is still listed);
    the live delay at the first frame and WATCH s later ("delay", "delay
    later"); its stalls in those seconds ("stalls", ms each)."""
    browser = Chromium(_fresh(workdir, "hlsjs"))
    async with page_server() as page_url:
        try:
            await browser.start(str(page_url.with_query(src=url)))
            state = await _poll(
                browser,
                "window.e2eState ? window.e2eState() : null",
                lambda s: s is not None and "firstFrame" in s["marks"],
                "hls.js' first frame",
            )
            first = state
            await asyncio.sleep(WATCH)
            state = await browser.evaluate("window.e2eState()")
        finally:
            await browser.close()
    marks = state["marks"]
    got: dict[str, Any] = {
        "frame": (marks["firstFrame"] - marks["loadSource"]) / 1000,
        "delay": first.get("liveDelay"),
        "delay later": state.get("liveDelay"),
        "stalls": state["stalls"],
    }
    if state.get("firstSegmentDate") and state.get("firstFrameWall"):
        got["after key"] = (state["firstFrameWall"] - state["firstSegmentDate"]) / 1000
    return got


async def login_code(hass: Any) -> str:
    """An authorization code for the frontend, from Home Assistant's login flow."""
    harness = sys.modules.get("harness") or __import__("harness")
    client_id = f"{hass.url}/"
    async with hass.http.post(
        f"{hass.url}/auth/login_flow",
        json={
            "client_id": client_id,
            "handler": ["homeassistant", None],
            "redirect_uri": f"{hass.url}/?auth_callback=1",
        },
    ) as resp:
        flow = await resp.json()
    async with hass.http.post(
        f"{hass.url}/auth/login_flow/{flow['flow_id']}",
        json={
            "client_id": client_id,
            "username": harness.USER,
            "password": harness.PASSWORD,
        },
    ) as resp:
        result = await resp.json()
    if result.get("type") != "create_entry":
        raise RuntimeError(f"login flow: {result}")
    return str(result["result"])


def media_browser_url(base: str, code: str) -> str:
    """The media browser on the integration's folder, "this browser" playing; with
    the login's code, as the login page redirects to it."""
    state = base64.b64encode(
        json.dumps({"hassUrl": base, "clientId": f"{base}/"}).encode()
    ).decode()
    folder = quote(f"app,media-source://{DOMAIN}", safe="")
    return (
        f"{base}/media-browser/browser/{folder}?auth_callback=1"
        f"&code={quote(code)}&state={quote(state)}&storeToken=true"
    )


async def frontend_first_frame(hass: Any, title: str, workdir: Path) -> dict[str, Any]:
    """Clicking channel ``title`` in the media browser: seconds to the first frame
    in Home Assistant's own player ("frame"), after the broadcast's first
    keyframe ("after key"), the live delay WATCH s later ("delay later"), its
    stalls then ("stalls", ms each)."""
    url = media_browser_url(hass.url, await login_code(hass))
    browser = Chromium(_fresh(workdir, "frontend"))
    try:
        await browser.start(url)
        await _poll(
            browser,
            f"{FRONTEND_JS} && window.__zapClick({json.dumps(title)})",
            bool,
            f"the channel {title!r} in the media browser",
        )
        state = await _poll(
            browser,
            f"{FRONTEND_JS} && window.__zapState()",
            lambda s: s["frame"] is not None or s["progress"] is not None,
            "the first frame in Home Assistant's player",
        )
        await asyncio.sleep(WATCH)
        later = await browser.evaluate(f"{FRONTEND_JS} && window.__zapState()")
    finally:
        await browser.close()
    frame = state["frame"] if state["frame"] is not None else state["progress"]
    got: dict[str, Any] = {
        "frame": float(frame - state["clicked"]) / 1000,
        "stalls": later["stalls"],
        "delay later": later["delay"],
    }
    if later["firstDate"] and later["frameWall"]:
        got["after key"] = (later["frameWall"] - later["firstDate"]) / 1000
    return got
