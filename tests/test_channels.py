"""Channels: subentry flows, M3U parsing and import, channel entities."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
from aiohttp import web
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy import playlist as playlist_module
from custom_components.acestream_proxy.channel import parse_m3u, ref_from_link
from custom_components.acestream_proxy.const import (
    CONF_MAX_BROADCASTS,
    MAX_CHANNELS_PER_ENGINE,
    TUNABLES,
)
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.ha_fixtures import CID, CID2, Owned
from tests.helpers import find_device

IH = "2c4848271c91ce2d8965ce416267c25047dc8143"

M3U = f"""#EXTM3U
#EXTINF:-1 tvg-logo="http://logo/a.png" group-title="Sports",Sports 1
acestream://{CID}
#EXTINF:-1,Movies
#EXTGRP:Films
http://127.0.0.1:6878/ace/getstream?id={CID2}
#EXTINF:-1,By infohash
http://127.0.0.1:6878/ace/getstream?infohash={IH}
#EXTINF:-1,Duplicate
acestream://{CID.upper()}
#EXTINF:-1,Not acestream
http://example.com/video.mp4
"""


def test_parse_m3u() -> None:
    """Names, groups, logos and both id kinds; duplicates and others skipped."""
    channels, skipped = parse_m3u("\ufeff" + M3U)
    assert [c.name for c in channels] == ["Sports 1", "Movies", "By infohash"]
    assert channels[0].group == "Sports"
    assert channels[0].logo == "http://logo/a.png"
    assert channels[1].group == "Films"
    assert channels[2].ref == ContentRef(ContentKind.INFOHASH, IH)
    assert [(s.line, s.reason) for s in skipped] == [
        (10, "duplicate"),
        (12, "not an AceStream link"),
    ]


def test_ref_from_link() -> None:
    """Every form a user may paste."""
    assert ref_from_link(CID) == ContentRef(ContentKind.CONTENT_ID, CID)
    assert ref_from_link(f"acestream://{CID}") == ContentRef(
        ContentKind.CONTENT_ID, CID
    )
    assert ref_from_link(
        f"http://ha:8123/api/acestream_proxy/stream/infohash/{IH}?authSig=x"
    ) == ContentRef(ContentKind.INFOHASH, IH)
    assert ref_from_link(f"http://h/ace/getstream?content_id={CID}") == ContentRef(
        ContentKind.CONTENT_ID, CID
    )
    assert ref_from_link("ftp://x") is None
    assert ref_from_link("http://h/nothing") is None


async def _add_channel(hass: HomeAssistant, entry: MockConfigEntry, **data: str):
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "channel"), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    return await hass.config_entries.subentries.async_configure(result["flow_id"], data)


async def test_add_channel_and_its_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A channel gets a device with viewers, bitrate, status... and a stop button."""
    result = await _add_channel(
        hass,
        loaded_entry,
        name="Sports 1",
        content=f"acestream://{CID}",
        group="Sports",
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    subentry = next(iter(loaded_entry.subentries.values()))
    assert subentry.unique_id == f"content_id:{CID}"
    assert subentry.data["content"] == CID

    device = find_device(hass, f"channel_{subentry.subentry_id}")
    assert device is not None
    assert device.name == "Sports 1"
    entities = {
        e.translation_key: e
        for e in er.async_entries_for_device(er.async_get(hass), device.id, True)
    }
    assert set(entities) == {
        "viewers",
        "bitrate",
        "status",
        "peers",
        "download_speed",
        "live_delay",
        "recording",
        "stop",
    }
    assert entities["live_delay"].disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert entities["recording"].disabled_by is er.RegistryEntryDisabler.INTEGRATION
    for entity in entities.values():
        assert entity.config_subentry_id == subentry.subentry_id
    assert hass.states.get(entities["status"].entity_id).state == "idle"
    assert hass.states.get(entities["viewers"].entity_id).state == "0"
    assert hass.states.get(entities["bitrate"].entity_id).state == "0.0"
    assert hass.states.get(entities["peers"].entity_id).state == "unknown"


async def test_channel_errors_then_success(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Bad ids, blank names and duplicates are form errors."""
    result = await _add_channel(hass, loaded_entry, name="A", content="nope")
    assert result["errors"] == {"content": "invalid_id"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "  ", "content": CID}
    )
    assert result["errors"] == {"name": "invalid_name"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "A", "content": IH, "kind": "infohash"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY

    result = await _add_channel(
        hass, loaded_entry, name="B", content=f"/stream/infohash/{IH}"
    )
    assert result["errors"] == {"content": "invalid_id"}  # not a URL: no id found
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {"name": "B", "content": f"http://x/api/acestream_proxy/stream/infohash/{IH}"},
    )
    assert result["errors"] == {"content": "already_configured"}


async def test_reconfigure_channel(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, channel: Owned
) -> None:
    """Editing a channel updates it and renames its device (no reload)."""
    assert channel.device.name == "Sports 1"
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "channel"),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": channel.subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "New", "content": CID2, "logo": "http://l/x.png"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    subentry = loaded_entry.subentries[channel.subentry_id]
    assert subentry.title == "New"
    assert subentry.data["content"] == CID2
    assert subentry.data["logo"] == "http://l/x.png"
    device = find_device(hass, f"channel_{subentry.subentry_id}")
    assert device is not None
    assert device.name == "New"


async def test_import_playlist_text(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Pasted M3U: channels added, a summary of what was skipped and why."""
    await _add_channel(hass, loaded_entry, name="Existing", content=CID2)
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {})
    assert result["errors"] == {"base": "no_playlist"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"playlist": M3U}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "imported"
    placeholders = result["description_placeholders"]
    assert placeholders["imported"] == "2"
    assert placeholders["skipped"] == "3"
    assert "already a channel" in placeholders["details"]
    assert "not an AceStream link" in placeholders["details"]
    await hass.async_block_till_done()
    titles = sorted(sub.title for sub in loaded_entry.subentries.values())
    assert titles == ["By infohash", "Existing", "Sports 1"]
    # The imported channels got their entities without a reload.
    registry = er.async_get(hass)
    statuses = [
        e
        for e in er.async_entries_for_config_entry(registry, loaded_entry.entry_id)
        if e.translation_key == "status"
    ]
    assert len(statuses) == 3


async def test_import_playlist_url(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, aiohttp_server
) -> None:
    """A playlist URL is downloaded over HTTP; a failing one is a form error."""

    async def good(_request: web.Request) -> web.Response:
        return web.Response(text=M3U)

    app = web.Application()
    app.router.add_get("/good.m3u", good)
    server = await aiohttp_server(app)
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"url": str(server.make_url("/missing.m3u"))}
    )
    assert result["errors"] == {"url": "cannot_fetch"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"url": "http://127.0.0.1:1/refused.m3u"}
    )
    assert result["errors"] == {"url": "cannot_fetch"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"url": str(server.make_url("/good.m3u"))}
    )
    assert result["reason"] == "imported"
    assert result["description_placeholders"]["imported"] == "3"


async def test_removing_a_channel_removes_its_device(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, channel: Owned
) -> None:
    """Deleting the subentry takes its device and entities away."""
    assert hass.config_entries.async_remove_subentry(loaded_entry, channel.subentry_id)
    await hass.async_block_till_done()
    assert find_device(hass, f"channel_{channel.subentry_id}") is None
    registry = er.async_get(hass)
    assert all(registry.async_get(e) is None for e in channel.entities.values())


async def _import_url(
    hass: HomeAssistant, entry: MockConfigEntry, url: str
) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    return dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"url": url}
        )
    )


async def _stream_text(
    request: web.Request, parts: Iterable[bytes]
) -> web.StreamResponse:
    """Send a body in many small chunked writes, as a slow CDN would."""
    response = web.StreamResponse(headers={"Content-Type": "audio/x-mpegurl"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        for part in parts:
            await response.write(part)
            await asyncio.sleep(0)
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response


async def _serve(
    aiohttp_server: Any,
    path: str,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> str:
    """The URL of ``handler`` on a web server of its own."""
    app = web.Application()
    app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    return str(server.make_url(path))


def _padded_m3u(size: int) -> list[bytes]:
    """About ``size`` bytes of comments, then the channels at the very end."""
    pad = b"#EXTVLCOPT:http-user-agent=" + b"x" * 200 + b"\n"
    lines = [b"#EXTM3U\n"] + [pad] * (size // len(pad))
    body = b"".join(lines) + M3U.removeprefix("#EXTM3U\n").encode()
    return [body[i : i + 8192] for i in range(0, len(body), 8192)]


async def test_import_reads_a_chunked_multi_megabyte_playlist(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, aiohttp_server
) -> None:
    """3 MB in 8 KiB chunked writes: read to EOF, the channels at the end found."""
    parts = _padded_m3u(3 * 1024 * 1024)
    assert sum(map(len, parts)) > 3 * 1024 * 1024

    async def big(request: web.Request) -> web.StreamResponse:
        return await _stream_text(request, parts)

    url = await _serve(aiohttp_server, "/big.m3u", big)
    result = await _import_url(hass, loaded_entry, url)
    assert result["reason"] == "imported"
    assert result["description_placeholders"]["imported"] == "3"


async def test_import_refuses_an_oversized_playlist(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, aiohttp_server
) -> None:
    """Past 5 MB the download stops with a form error; nothing is imported."""
    parts = _padded_m3u(6 * 1024 * 1024)

    async def huge(request: web.Request) -> web.StreamResponse:
        return await _stream_text(request, parts)

    url = await _serve(aiohttp_server, "/huge.m3u", huge)
    result = await _import_url(hass, loaded_entry, url)
    assert result["errors"] == {"url": "too_large"}
    assert not loaded_entry.subentries


async def test_import_gives_up_on_a_slow_server(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    aiohttp_server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that sends the start and then nothing: a timeout error."""
    monkeypatch.setattr(
        playlist_module, "FETCH_TIMEOUT", aiohttp.ClientTimeout(total=0.5)
    )
    never = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"#EXTM3U\n")
        await never.wait()
        return response

    url = await _serve(aiohttp_server, "/slow.m3u", slow)
    result = await _import_url(hass, loaded_entry, url)
    assert result["errors"] == {"url": "fetch_timeout"}
    never.set()


async def test_import_refuses_an_answer_that_is_no_playlist(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, aiohttp_server
) -> None:
    """An HTML page (a login portal, a 200 error page) is not imported as nothing."""

    async def portal(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><body>Please log in</body></html>", content_type="text/html"
        )

    url = await _serve(aiohttp_server, "/portal", portal)
    result = await _import_url(hass, loaded_entry, url)
    assert result["errors"] == {"url": "not_playlist"}


def _m3u(first: int, count: int) -> str:
    """A playlist of ``count`` channels with distinct content ids."""
    lines = ["#EXTM3U"]
    for number in range(first, first + count):
        lines += [f"#EXTINF:-1,Channel {number}", f"acestream://{number:040x}"]
    return "\n".join(lines) + "\n"


async def _import(
    hass: HomeAssistant, entry: MockConfigEntry, text: str
) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"playlist": text}
    )


def _channel_count(entry: MockConfigEntry) -> int:
    return sum(1 for s in entry.subentries.values() if s.subentry_type == "channel")


async def test_import_refuses_what_does_not_fit(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An engine entry takes MAX_CHANNELS_PER_ENGINE channels: an import that does
    not fit adds nothing and says how many would; a single channel is refused
    once the entry is full."""
    monkeypatch.setattr(playlist_module, "MAX_CHANNELS_PER_ENGINE", 3)
    assert (await _import(hass, loaded_entry, _m3u(1, 1)))["reason"] == "imported"

    # Three new ones (the known one is skipped as before) with room for two.
    result = await _import(hass, loaded_entry, _m3u(1, 4))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "too_many_channels"}
    assert result["description_placeholders"] == {
        "count": "3",
        "room": "2",
        "max": "3",
    }
    assert _channel_count(loaded_entry) == 1
    # The same form takes a playlist that fits.
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"playlist": _m3u(1, 3)}
    )
    assert result["reason"] == "imported"
    assert result["description_placeholders"]["imported"] == "2"
    assert _channel_count(loaded_entry) == 3

    # Full: only known channels (nothing new) still import, as a no-op.
    assert (await _import(hass, loaded_entry, _m3u(1, 3)))["reason"] == "imported"
    monkeypatch.setattr(
        "custom_components.acestream_proxy.flows.channel.MAX_CHANNELS_PER_ENGINE", 3
    )
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "channel"), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "too_many_channels"
    assert result["description_placeholders"] == {"max": "3"}
    await hass.async_block_till_done()


# 1,500 channels make 9,000 entities: about 25 s alone, over a minute when the
# machine runs other suites too.
@pytest.mark.timeout(240)
async def test_a_full_engine_keeps_every_channels_entities(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """MAX_CHANNELS_PER_ENGINE channels imported at once all get their entities,
    with room left under Home Assistant's cap of enabled entities per config entry
    (10,000 from 2026.7) for the engine's own, its ad-hoc broadcasts and keys."""
    from homeassistant.helpers import entity_platform

    cap = getattr(entity_platform, "MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY", 10_000)
    assert cap == 10_000
    engine_entities = len(
        er.async_entries_for_config_entry(er.async_get(hass), loaded_entry.entry_id)
    )
    result = await _import(hass, loaded_entry, _m3u(1, MAX_CHANNELS_PER_ENGINE))
    assert result["description_placeholders"]["imported"] == str(
        MAX_CHANNELS_PER_ENGINE
    )
    await hass.async_block_till_done()
    entities = er.async_entries_for_config_entry(
        er.async_get(hass), loaded_entry.entry_id
    )
    enabled = [e for e in entities if e.disabled_by is None]
    per_channel = (len(enabled) - engine_entities) / MAX_CHANNELS_PER_ENGINE
    assert per_channel == 6
    statuses = [e for e in entities if e.translation_key == "status"]
    assert len(statuses) == MAX_CHANNELS_PER_ENGINE
    # Ad-hoc broadcasts (as many as an engine may play) and 100 access keys
    # (2 entities each) still fit.
    assert len(enabled) + TUNABLES[CONF_MAX_BROADCASTS].high * per_channel + 200 <= cap
    assert "maximum" not in caplog.text
    # One more is refused.
    result = await _import(hass, loaded_entry, _m3u(10_000, 1))
    assert result["errors"] == {"base": "too_many_channels"}
