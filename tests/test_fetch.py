"""Fetching a playlist: redirects checked hop by hop, Home Assistant's own
address refused, any encoding read, conditional requests answered by a 304."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.acestream_proxy.playlist import (
    MAX_PLAYLIST_BYTES,
    PlaylistAddressError,
    PlaylistFetchError,
    Validators,
    fetch_playlist_if_changed,
)

CID = "0a4848271c91ce2d8965ce416267c25047dc8141"
M3U = f"#EXTM3U\n#EXTINF:-1,Café Sport\nacestream://{CID}\n"


async def _import_url(
    hass: HomeAssistant, entry: MockConfigEntry, user_input: dict[str, str]
) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    return dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], user_input
        )
    )


@pytest.fixture
async def server(aiohttp_server: Any) -> Any:
    """Redirects of every kind, and the list in Windows-1252."""

    def redirect(to: str, status: int = 302) -> Any:
        async def handler(_: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": to})

        return handler

    async def latin(_: web.Request) -> web.Response:
        return web.Response(body=M3U.encode("cp1252"), content_type="audio/x-mpegurl")

    async def koi8(_: web.Request) -> web.Response:
        body = f"#EXTM3U\n#EXTINF:-1,Спорт\nacestream://{CID}\n".encode("koi8-r")
        return web.Response(
            body=body, headers={"Content-Type": "audio/x-mpegurl; charset=koi8-r"}
        )

    app = web.Application()
    app.router.add_get("/latin.m3u", latin)
    app.router.add_get("/koi8.m3u", koi8)
    app.router.add_get("/to-latin", redirect("/latin.m3u", 301))
    app.router.add_get("/to-ftp", redirect("ftp://example.com/list.m3u"))
    app.router.add_get("/to-file", redirect("file:///etc/passwd", 307))
    app.router.add_get("/loop", redirect("/loop"))

    async def no_location(_: web.Request) -> web.Response:
        return web.Response(status=302)

    app.router.add_get("/no-location", no_location)
    return await aiohttp_server(app)


async def test_redirects_are_followed_and_checked(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: Any
) -> None:
    """An http redirect is followed; one to another scheme is a clear error, as
    is a loop; a redirect without a Location is an HTTP error."""
    for path in ("/to-ftp", "/to-file"):
        result = await _import_url(
            hass, loaded_entry, {"url": str(server.make_url(path))}
        )
        assert result["errors"] == {"url": "bad_address"}, path
    with pytest.raises(PlaylistAddressError, match="not an http"):
        await fetch_playlist_if_changed(hass, str(server.make_url("/to-ftp")))
    with pytest.raises(PlaylistFetchError, match="too many redirects"):
        await fetch_playlist_if_changed(hass, str(server.make_url("/loop")))
    with pytest.raises(PlaylistFetchError, match="HTTP 302"):
        await fetch_playlist_if_changed(hass, str(server.make_url("/no-location")))
    result = await _import_url(hass, loaded_entry, {"url": "ftp://example.com/a.m3u"})
    assert result["errors"] == {"url": "bad_address"}
    assert not loaded_entry.subentries
    result = await _import_url(
        hass, loaded_entry, {"url": str(server.make_url("/to-latin"))}
    )
    assert result["reason"] == "imported"
    # Not UTF-8: read as Windows-1252, the name intact.
    assert [s.title for s in loaded_entry.subentries.values()] == ["Café Sport"]


async def test_the_servers_charset_is_read(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: Any
) -> None:
    """A charset in Content-Type decodes a list that is not UTF-8."""
    fetched = await fetch_playlist_if_changed(hass, str(server.make_url("/koi8.m3u")))
    assert fetched.encoding == "koi8-r"
    assert fetched.text is not None
    assert "Спорт" in fetched.text


async def test_home_assistant_itself_is_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """Our own playlist, on any host, and any URL of this Home Assistant: a
    subscription would feed on itself. Refused before a request is sent."""
    client = await hass_client()
    origin = str(client.make_url("/")).rstrip("/")
    await async_process_ha_core_config(
        hass,
        {"internal_url": origin, "external_url": "https://my.home.example"},
    )
    for url in (
        f"{origin}/local/list.m3u",
        "https://my.home.example/local/list.m3u",
        "https://proxy.example/api/acestream_proxy/playlist.m3u",
        f"http://127.0.0.1:{hass.http.server_port}/local/list.m3u",
    ):
        result = await _import_url(hass, loaded_entry, {"url": url})
        assert result["errors"] == {"url": "bad_address"}, url
    assert not loaded_entry.subentries


async def test_pasted_text_over_5_mb_is_refused(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The limit a download has holds for pasted text too."""
    text = M3U + "#" * MAX_PLAYLIST_BYTES
    result = await _import_url(hass, loaded_entry, {"playlist": text})
    assert result["errors"] == {"base": "too_large"}
    assert not loaded_entry.subentries


async def test_conditional_requests(
    hass: HomeAssistant, socket_enabled: None, aiohttp_server: Any
) -> None:
    """ETag and Last-Modified go back to the server; its 304 reads nothing."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304)
        return web.Response(
            text=M3U,
            headers={"ETag": '"v1"', "Last-Modified": "Wed, 02 Dec 2026 10:00:00 GMT"},
        )

    app = web.Application()
    app.router.add_get("/list.m3u", handler)
    server = await aiohttp_server(app)
    url = str(server.make_url("/list.m3u"))
    first = await fetch_playlist_if_changed(hass, url, Validators())
    assert first.text == M3U
    assert first.validators == Validators('"v1"', "Wed, 02 Dec 2026 10:00:00 GMT")
    again = await fetch_playlist_if_changed(hass, url, first.validators)
    assert again.text is None
    assert again.validators == first.validators
    assert seen[1]["If-None-Match"] == '"v1"'
    assert seen[1]["If-Modified-Since"] == "Wed, 02 Dec 2026 10:00:00 GMT"
    assert "If-None-Match" not in seen[0]
