"""Playlist subscriptions against a local HTTP server whose list changes between
refreshes: additions, renames, new ids and removals land with entity ids kept;
failures keep the list and the third raises a repair; a 304 does no work."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import aiohttp
from aiohttp import web
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.acestream_proxy import playlist as playlist_module
from custom_components.acestream_proxy.channel import Channel
from custom_components.acestream_proxy.const import DOMAIN
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.subscription import subscription_issue_id
from tests.ha_fixtures import add_channel
from tests.helpers import find_device


def cid(number: int) -> str:
    return f"{number:040x}"


def m3u(*channels: tuple[str, int, str | None]) -> str:
    lines = ['#EXTM3U url-tvg="http://epg.example/guide.xml"']
    for name, number, tvg in channels:
        attrs = f' tvg-id="{tvg}"' if tvg else ""
        lines += [
            f'#EXTINF:-1{attrs} tvg-logo="http://logo/{number}.png" group-title="Sports",{name}',
            f"acestream://{cid(number)}",
        ]
    return "\n".join(lines) + "\n"


V1 = m3u(
    ("Sport 1", 1, "s1"), ("Sport 2", 2, "s2"), ("Films", 3, None), ("Old", 4, None)
)
# Sport 1 renamed; Sport 2 and Films on new ids; Old gone; New added; 9 is a
# channel added by hand.
V2 = m3u(
    ("Sport 1 HD", 1, "s1"),
    ("Sport 2", 12, "s2"),
    ("Films", 13, None),
    ("New", 5, None),
    ("Mine", 9, None),
)


@dataclass
class ListServer:
    """The list a local HTTP server answers; tests change it between refreshes."""

    text: str = V1
    status: int = 200
    hang: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    not_modified: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        if self.hang:
            await asyncio.Event().wait()
        if self.status != 200:
            return web.Response(status=self.status, text="broken")
        etag = f'"{hash(self.text)}"'
        if request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return web.Response(status=304)
        return web.Response(text=self.text, headers={"ETag": etag})


@pytest.fixture
async def server(aiohttp_server: Any) -> ListServer:
    state = ListServer()
    app = web.Application()
    app.router.add_get("/list.m3u", state.handle)
    running = await aiohttp_server(app)
    state.url = str(running.make_url("/list.m3u"))
    return state


async def subscribe(
    hass: HomeAssistant, entry: MockConfigEntry, url: str, **data: Any
) -> str:
    """A subscription added as its flow adds it; refreshed at once."""
    subentry = ConfigSubentry(
        data=MappingProxyType({"url": url, "refresh_hours": 24, **data}),
        subentry_type="subscription",
        title="Daily sports",
        unique_id=None,
    )
    hass.config_entries.async_add_subentry(entry, subentry)
    await hass.async_block_till_done(wait_background_tasks=True)
    return subentry.subentry_id


async def refresh(hass: HomeAssistant, name: str | None = None) -> dict[str, Any]:
    data = {"subscription": name} if name else {}
    response = await hass.services.async_call(
        DOMAIN, "refresh_playlist", data, blocking=True, return_response=True
    )
    await hass.async_block_till_done()
    assert response is not None
    return dict(response)


def channels(entry: MockConfigEntry) -> dict[str, Channel]:
    """The entry's channels by name."""
    return {
        sub.title: Channel.from_data(sub.data)
        for sub in entry.subentries.values()
        if sub.subentry_type == "channel"
    }


def status_entities(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    """Each channel subentry's status entity id."""
    return {
        e.config_subentry_id: e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.translation_key == "status" and e.config_subentry_id
    }


async def test_a_refresh_follows_the_list(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: ListServer
) -> None:
    """Rename, new id (by tvg-id and by name), removal and addition land; the
    entities of changed channels keep their ids; a channel added by hand is
    never touched; a broadcast playing under an old id plays on."""
    hand_id = await add_channel(hass, loaded_entry, "Mine", cid(9))
    sub_id = await subscribe(hass, loaded_entry, server.url)
    before = channels(loaded_entry)
    assert set(before) == {"Sport 1", "Sport 2", "Films", "Old", "Mine"}
    assert before["Sport 1"].tvg_id == "s1"
    assert before["Sport 1"].guide == "http://epg.example/guide.xml"
    assert before["Sport 1"].subscription == sub_id
    assert before["Mine"].subscription is None
    ids = {sub.title: sid for sid, sub in loaded_entry.subentries.items()}
    entities = status_entities(hass, loaded_entry)
    assert len(entities) == 5

    hub = get_hub(hass)
    old_ref = before["Sport 2"].ref
    viewer = await hub.async_open_viewer(old_ref)

    server.text = V2
    response = await refresh(hass, "daily SPORTS")
    assert response == {
        "subscriptions": [
            {
                "name": "Daily sports",
                "not_modified": False,
                "added": 1,
                "updated": 3,
                "removed": 1,
                "kept": 0,
                "unchanged": 0,
                "conflicts": 1,
                "left_out": 0,
            }
        ]
    }
    after = channels(loaded_entry)
    assert set(after) == {"Sport 1 HD", "Sport 2", "Films", "New", "Mine"}
    assert after["Sport 2"].ref.value == cid(12)
    assert after["Films"].ref.value == cid(13)
    # The same subentries, so the same entities, under their old ids.
    now = {sub.title: sid for sid, sub in loaded_entry.subentries.items()}
    for old, new in (
        ("Sport 1", "Sport 1 HD"),
        ("Sport 2", "Sport 2"),
        ("Films", "Films"),
    ):
        assert now[new] == ids[old]
        assert status_entities(hass, loaded_entry)[ids[old]] == entities[ids[old]]
    device = find_device(hass, f"channel_{ids['Sport 1']}")
    assert device is not None
    assert device.name == "Sport 1 HD"
    assert find_device(hass, f"channel_{ids['Old']}") is None
    assert ids["Old"] not in status_entities(hass, loaded_entry)
    assert now["Mine"] == hand_id
    assert after["Mine"] == before["Mine"]
    # Still playing under its old id until stopped.
    assert hub.find(old_ref) is not None
    viewer.leave()
    await hub.async_stop(old_ref)


async def test_gone_channels_can_be_kept(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: ListServer
) -> None:
    await subscribe(hass, loaded_entry, server.url, keep_removed=True)
    server.text = V2
    result = (await refresh(hass))["subscriptions"][0]
    assert (result["removed"], result["kept"]) == (0, 1)
    assert "Old" in channels(loaded_entry)


async def test_failures_keep_the_list_and_the_third_raises_a_repair(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: ListServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 500, a timeout and an empty list each change nothing; the third in a
    row raises a repair issue tied to the subscription; a success clears it."""
    sub_id = await subscribe(hass, loaded_entry, server.url)
    kept = channels(loaded_entry)
    issues = ir.async_get(hass)
    issue_id = subscription_issue_id(sub_id)
    monkeypatch.setattr(
        playlist_module, "FETCH_TIMEOUT", aiohttp.ClientTimeout(total=0.3)
    )

    server.status = 500
    with pytest.raises(HomeAssistantError, match="HTTP 500"):
        await refresh(hass, "Daily sports")
    server.status, server.hang = 200, True
    with pytest.raises(HomeAssistantError, match="in time"):
        await refresh(hass, "Daily sports")
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    server.hang, server.text = False, "#EXTM3U\n"
    # All subscriptions at once: a failure is in the answer, not raised.
    result = (await refresh(hass))["subscriptions"][0]
    assert result == {
        "name": "Daily sports",
        "error": "the list has no AceStream channel",
    }
    assert channels(loaded_entry) == kept
    issue = issues.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "subscription_failing"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["failures"] == "3"

    server.text = V1 + m3u(("Extra", 7, None)).removeprefix(
        m3u().splitlines()[0] + "\n"
    )
    result = (await refresh(hass, "Daily sports"))["subscriptions"][0]
    assert result["added"] == 1
    assert issues.async_get_issue(DOMAIN, issue_id) is None


async def test_a_304_does_no_work(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: ListServer
) -> None:
    """The ETag goes back; the server's 304 leaves every subentry as it was."""
    await subscribe(hass, loaded_entry, server.url)
    modified = loaded_entry.modified_at
    result = (await refresh(hass))["subscriptions"][0]
    assert result == {"name": "Daily sports", "not_modified": True}
    assert server.not_modified == 1
    assert "If-None-Match" not in server.requests[0]
    assert server.requests[1]["If-None-Match"] == f'"{hash(V1)}"'
    assert loaded_entry.modified_at == modified


async def test_refreshes_on_its_interval_and_stops_when_removed(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: ListServer
) -> None:
    """Daily by default; a removed subscription's timer and repair go, its
    channels stay (as channels of no subscription, never refreshed again)."""
    sub_id = await subscribe(hass, loaded_entry, server.url)
    assert len(server.requests) == 1
    server.text = V2
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=24, seconds=1))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(server.requests) == 2
    assert "New" in channels(loaded_entry)

    assert hass.config_entries.async_remove_subentry(loaded_entry, sub_id)
    await hass.async_block_till_done()
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=49))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(server.requests) == 2
    assert "New" in channels(loaded_entry)
    assert (await refresh(hass)) == {"subscriptions": []}
    with pytest.raises(ServiceValidationError):
        await refresh(hass, "Daily sports")


async def test_a_failing_subscription_goes_with_its_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: ListServer
) -> None:
    """Its repair goes when the engine entry is deleted."""
    sub_id = await subscribe(hass, loaded_entry, server.url)
    server.status = 404
    for _ in range(3):
        with pytest.raises(HomeAssistantError, match="HTTP 404"):
            await refresh(hass, "Daily sports")
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, subscription_issue_id(sub_id)) is not None
    await hass.config_entries.async_remove(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert issues.async_get_issue(DOMAIN, subscription_issue_id(sub_id)) is None


async def test_a_full_engine_leaves_new_channels_out(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    server: ListServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Near MAX_CHANNELS_PER_ENGINE a refresh still applies: changes and
    removals land, new channels are added while there is room, the rest are
    counted as left out, and come in once room is made."""
    monkeypatch.setattr(playlist_module, "MAX_CHANNELS_PER_ENGINE", 4)
    await subscribe(hass, loaded_entry, server.url)
    assert len(channels(loaded_entry)) == 4
    # Old gone (room for one), New and Mine new: one of them fits.
    server.text = V2
    result = (await refresh(hass))["subscriptions"][0]
    assert (result["updated"], result["removed"]) == (3, 1)
    assert (result["added"], result["left_out"]) == (1, 1)
    assert set(channels(loaded_entry)) == {"Sport 1 HD", "Sport 2", "Films", "New"}
    # Left out, so the list is read whole again (no 304): Mine comes in once
    # there is room.
    monkeypatch.setattr(playlist_module, "MAX_CHANNELS_PER_ENGINE", 5)
    result = (await refresh(hass))["subscriptions"][0]
    assert (result["added"], result["left_out"], result["unchanged"]) == (1, 0, 4)
    assert "Mine" in channels(loaded_entry)
    assert (await refresh(hass))["subscriptions"][0]["not_modified"] is True


async def test_swapped_ids_and_a_restart(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, server: ListServer
) -> None:
    """Two channels that swap ids keep their entities (Home Assistant refuses
    two subentries with one unique id even for a moment); a restart (here a
    reload) refreshes the list."""
    await subscribe(hass, loaded_entry, server.url)
    ids = {sub.title: sid for sid, sub in loaded_entry.subentries.items()}
    server.text = m3u(("Sport 1", 2, "s1"), ("Sport 2", 1, "s2"), ("Films", 3, None))
    await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(server.requests) == 2
    swapped = {sub.title: sid for sid, sub in loaded_entry.subentries.items()}
    assert swapped["Sport 1"] == ids["Sport 1"]
    assert channels(loaded_entry)["Sport 1"].ref.value == cid(2)
    assert channels(loaded_entry)["Sport 2"].ref.value == cid(1)
    assert loaded_entry.subentries[ids["Sport 1"]].unique_id == f"content_id:{cid(2)}"
