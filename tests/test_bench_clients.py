"""The bench's HLS clients load like hls.js (script/hls_load.py), its low-latency
clients like hls.js at the live edge of our own LL-HLS, and the zap
table's frontend run opens the media browser where the login page would
(script/zap_browser.py)."""

from __future__ import annotations

import base64
import importlib
import json
from pathlib import Path
import sys
import time
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
from aiohttp import web
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.ha_fixtures import CID, PREFIX, ClientFactory
from tests.helpers import signed_path

SCRIPT = Path(__file__).resolve().parent.parent / "script"


def _script(name: str) -> ModuleType:
    if str(SCRIPT) not in sys.path:
        sys.path.insert(0, str(SCRIPT))
    return importlib.import_module(name)


def _playlist(first: int, last: int) -> str:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for seq in range(first, last + 1):
        lines += ["#EXTINF:1.000,", f"/hls/x/{seq}.ts?authSig=s{seq}"]
    return "\n".join(lines) + "\n"


async def test_hls_client_starts_three_back_and_fetches_each_new_segment_once(
    socket_enabled: None, aiohttp_server: Any
) -> None:
    """First playlist 0-5: it fetches 3, 4, 5 in order; the next lists 8-13 (6 and 7
    left the window meanwhile): both are counted missed, 8-13 fetched once."""
    hls_load = _script("hls_load")
    playlists = [_playlist(0, 5), _playlist(8, 13)]
    served: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        if request.path.endswith(".m3u8"):
            served.append("playlist")
            text = playlists[min(served.count("playlist"), len(playlists)) - 1]
            return web.Response(text=text)
        assert request.query["authSig"] == f"s{request.match_info['seq']}"
        served.append(request.match_info["seq"])
        return web.Response(body=b"\x47" * 188 * 10)

    app = web.Application()
    app.router.add_get("/hls/x/index.m3u8", handle)
    app.router.add_get("/hls/x/{seq}.ts", handle)
    server = await aiohttp_server(app)
    client = hls_load.Client(0)
    async with aiohttp.ClientSession() as session:
        # Two playlist loads: the second one target duration (1 s) after the first.
        await client.run(
            session,
            str(server.make_url("")).rstrip("/"),
            "/hls/x/index.m3u8",
            time.monotonic(),
            1.5,
        )
    assert served[:4] == ["playlist", "3", "4", "5"]
    assert served[4:] == ["playlist", *map(str, range(8, 14))]
    assert client.missed == 2
    kinds = [kind for kind, *_ in client.requests]
    assert kinds == ["playlist", *["segment"] * 3, "playlist", *["segment"] * 6]
    assert {status for *_, status in client.requests} == {200}
    assert all(
        size == 1880 for kind, _, _, size, _ in client.requests if kind != "playlist"
    )


async def test_ll_client_follows_every_part_of_our_playlist(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client_no_auth: ClientFactory,
    hass_access_token: str,
) -> None:
    """Against the integration's own LL-HLS: blocking reloads for the hinted part,
    then each part once and in order, across a segment's end; nothing missed."""
    hls_load = _script("hls_load")
    playlist = signed_path(hass, f"{PREFIX}/hls/{CID}/index.m3u8", hass_access_token)
    http = await hass_client_no_auth()
    # The broadcast's cold start is over once its first playlist answers.
    first = await http.get(playlist)
    assert first.status == 200
    assert "#EXT-X-PRELOAD-HINT" in await first.text()
    client = hls_load.Client(0)
    # Long enough to cross from one 2 s segment's parts into the next ones'.
    await client.run_ll(
        http.session,
        str(http.make_url("")).rstrip("/"),
        playlist,
        time.monotonic(),
        7.0,
    )
    assert {status for *_, status in client.requests} == {200}
    reloads = [r for r in client.requests if r[0] == "playlist"]
    parts = [r for r in client.requests if r[0] == "segment"]
    assert len(parts) >= 8
    assert client.missed == 0
    assert all(size > 0 and size % 188 == 0 for _, _, _, size, _ in parts)
    # A blocking reload per part (the first load aside): none answered at once
    # while the part it asks for is being cut, so most wait.
    assert len(reloads) <= len(parts) + 2
    assert sum(ms > 100 for _, _, ms, _, _ in reloads) >= len(reloads) // 2
    # Each part once, in order, from one segment into the next.
    got = client.parts
    assert len(got) == len(parts) == len(set(got))
    assert got == sorted(got)
    assert got[-1][0] > got[0][0]
    assert any(index == 0 for _, index in got[1:])


def test_frontend_url_is_the_login_pages_redirect() -> None:
    """The media browser on our folder, "this browser" as the player, with the code
    and the state the frontend checks (its own URL and client id)."""
    zap_browser = _script("zap_browser")
    url = zap_browser.media_browser_url("http://127.0.0.1:8123", "code/1")
    parts = urlsplit(url)
    assert parts.path.startswith("/media-browser/browser/")
    folder = unquote(parts.path.removeprefix("/media-browser/browser/"))
    assert folder == "app,media-source://acestream_proxy"
    query = parse_qs(parts.query)
    assert query["auth_callback"] == ["1"]
    assert query["code"] == ["code/1"]
    assert query["storeToken"] == ["true"]
    state = json.loads(base64.b64decode(query["state"][0]))
    assert state == {
        "hassUrl": "http://127.0.0.1:8123",
        "clientId": "http://127.0.0.1:8123/",
    }
