"""The subscription subentry flow: every error the form can show, a subscription
that imports at once, and edits (a new URL refreshed at once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy import playlist as playlist_module
from tests.test_subscription import V1, V2, channels


@pytest.fixture
async def lists(aiohttp_server: Any) -> AsyncIterator[Any]:
    """/v1.m3u, /v2.m3u, an empty list, an HTML page, a 404, a slow answer."""
    texts = {"/v1.m3u": V1, "/v2.m3u": V2, "/empty.m3u": "#EXTM3U\n"}

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/slow.m3u":
            response = web.StreamResponse()
            await response.prepare(request)
            await response.write(b"#EXTM3U\n")
            await never.wait()
            return response
        if request.path == "/page":
            return web.Response(text="<html>log in</html>", content_type="text/html")
        if request.path not in texts:
            return web.Response(status=404)
        return web.Response(text=texts[request.path])

    app = web.Application()
    never = asyncio.Event()
    app.router.add_get("/{name}", handle)
    server = await aiohttp_server(app)
    yield server
    never.set()


def form(url: str, name: str = "Daily sports", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": url,
        "refresh_hours": 24,
        "keep_removed": False,
        **extra,
    }


async def start(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "subscription"), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    return dict(result)


async def submit(
    hass: HomeAssistant, flow_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_configure(flow_id, data)
    await hass.async_block_till_done(wait_background_tasks=True)
    return dict(result)


async def test_every_error_then_a_subscription(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    lists: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each bad answer is a form error on the URL and adds nothing; a good list
    becomes a subscription whose channels come in at once."""
    monkeypatch.setattr(
        playlist_module, "FETCH_TIMEOUT", aiohttp.ClientTimeout(total=0.3)
    )
    flow_id = (await start(hass, loaded_entry))["flow_id"]
    result = await submit(hass, flow_id, form(str(lists.make_url("/v1.m3u")), name=" "))
    assert result["errors"] == {"name": "invalid_name"}
    for path, error in (
        ("/missing.m3u", "cannot_fetch"),
        ("/page", "not_playlist"),
        ("/empty.m3u", "empty_playlist"),
        ("/slow.m3u", "fetch_timeout"),
    ):
        result = await submit(hass, flow_id, form(str(lists.make_url(path))))
        assert result["errors"] == {"url": error}, path
    result = await submit(hass, flow_id, form("file:///etc/passwd"))
    assert result["errors"] == {"url": "bad_address"}
    with monkeypatch.context() as patch:
        patch.setattr(playlist_module, "MAX_PLAYLIST_BYTES", 100)
        result = await submit(hass, flow_id, form(str(lists.make_url("/v1.m3u"))))
    assert result["errors"] == {"url": "too_large"}
    assert not loaded_entry.subentries

    monkeypatch.setattr(playlist_module, "MAX_CHANNELS_PER_ENGINE", 3)
    result = await submit(hass, flow_id, form(str(lists.make_url("/v1.m3u"))))
    assert result["errors"] == {"base": "too_many_channels"}
    assert result["description_placeholders"]["count"] == "4"
    assert result["description_placeholders"]["room"] == "3"
    monkeypatch.undo()

    result = await submit(hass, flow_id, form(str(lists.make_url("/v1.m3u"))))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Daily sports"
    assert result["data"] == {
        "url": str(lists.make_url("/v1.m3u")),
        "refresh_hours": 24,
        "keep_removed": False,
    }
    assert set(channels(loaded_entry)) == {"Sport 1", "Sport 2", "Films", "Old"}

    # One subscription per name and per URL.
    flow_id = (await start(hass, loaded_entry))["flow_id"]
    result = await submit(
        hass, flow_id, form(str(lists.make_url("/v1.m3u")), name="DAILY sports")
    )
    assert result["errors"] == {"name": "name_taken", "url": "already_subscribed"}


async def test_edit_a_subscription(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, lists: Any
) -> None:
    """A new name or interval is stored without a download; a new URL is
    checked and refreshed at once."""
    flow_id = (await start(hass, loaded_entry))["flow_id"]
    await submit(hass, flow_id, form(str(lists.make_url("/v1.m3u"))))
    subentry = next(
        s for s in loaded_entry.subentries.values() if s.subentry_type == "subscription"
    )

    async def reconfigure(data: dict[str, Any]) -> dict[str, Any]:
        result = await hass.config_entries.subentries.async_init(
            (loaded_entry.entry_id, "subscription"),
            context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
        )
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "reconfigure"
        return await submit(hass, result["flow_id"], data)

    result = await reconfigure(
        form(str(lists.make_url("/v1.m3u")), name="Sports", refresh_hours=6)
    )
    assert result["reason"] == "reconfigure_successful"
    assert subentry.title == "Sports"
    assert subentry.data["refresh_hours"] == 6

    result = await reconfigure(form(str(lists.make_url("/missing.m3u")), name="Sports"))
    assert result["errors"] == {"url": "cannot_fetch"}
    result = await reconfigure(
        form(str(lists.make_url("/v2.m3u")), name="Sports", keep_removed=True)
    )
    assert result["reason"] == "reconfigure_successful"
    # The new list, at once: Old kept (keep_removed), New added, Sport 1 renamed.
    assert set(channels(loaded_entry)) == {
        "Sport 1 HD",
        "Sport 2",
        "Films",
        "Old",
        "New",
        "Mine",
    }
