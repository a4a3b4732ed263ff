"""What Home Assistant shows and does: entities, events, triggers, actions,
media browser, playlist, diagnostics and repairs, with real streams playing."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from datetime import timedelta
import itertools
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import media_source
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.core import HomeAssistant
from homeassistant.core_config import async_process_ha_core_config
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import (
    entity_registry as er,
    issue_registry as ir,
)
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from yarl import URL

from custom_components.acestream_proxy import compat, events as bus_events
from custom_components.acestream_proxy.const import CONF_LINGER, DOMAIN, EVENT_TYPE
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.ha_fixtures import (
    CID,
    CID2,
    PREFIX,
    ClientFactory,
    Owned,
    add_channel,
    entities_of,
    until,
    wait_state,
)
from tests.helpers import find_device, read_bytes, strip_nulls
from tests.simulator import EngineSimulator

pytestmark = pytest.mark.usefixtures("fast_tick")


@pytest.fixture
async def long_outage(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    freezer: FrozenDateTimeFactory,
) -> str:
    """The engine down for six minutes of health checks; the issue id of its repair."""
    await engine_sim.stop()
    for _ in range(12):
        freezer.tick(timedelta(seconds=31))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
    return loaded_entry.runtime_data.coordinator.issue_id


async def test_channel_entities_follow_a_playing_broadcast(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    channel: Owned,
) -> None:
    """Viewers, bitrate, status, peers, speed move within seconds; engine totals too."""
    ids = channel.entities
    engine = {
        e.translation_key: e.entity_id
        for e in er.async_entries_for_config_entry(
            er.async_get(hass), loaded_entry.entry_id
        )
        if e.config_subentry_id is None
    }
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as one:
        await read_bytes(one, 50_000)
        async with owner_client.get(f"{PREFIX}/stream/{CID}") as two:
            await read_bytes(two, 50_000)
            await wait_state(hass, ids["viewers"], lambda s: s == "2")
            await wait_state(hass, ids["status"], lambda s: s == "playing")
            bitrate = await wait_state(hass, ids["bitrate"], lambda s: float(s) > 0)
            # Mbit/s suggested unit; the fixture plays at about 1.4 Mbit/s.
            assert 0.5 < float(bitrate) < 20
            await wait_state(hass, ids["bitrate"], lambda s: 1.0 < float(s) < 2.0)
            assert hass.states.get(ids["bitrate"]).attributes[
                "unit_of_measurement"
            ] == ("Mbit/s")
            await wait_state(hass, ids["peers"], lambda s: s.isdigit())
            await wait_state(hass, ids["download_speed"], lambda s: s != "unknown")
            assert hass.states.get(engine["active_broadcasts"]).state == "1"
            assert hass.states.get(engine["total_viewers"]).state == "2"
    await wait_state(hass, ids["viewers"], lambda s: s == "0")
    await wait_state(hass, ids["status"], lambda s: s == "lingering")
    assert engine_sim.counters.sessions_opened == 1

    # The stop button ends it now.
    await hass.services.async_call(
        "button", "press", {"entity_id": ids["stop"]}, blocking=True
    )
    await wait_state(hass, ids["status"], lambda s: s == "idle")
    assert engine_sim.counters.sessions_stopped == 1
    with pytest.raises(HomeAssistantError, match="is not playing"):
        await hass.services.async_call(
            "button", "press", {"entity_id": ids["stop"]}, blocking=True
        )


async def test_events_and_device_trigger_automation(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
    channel: Owned,
) -> None:
    """Bus events carry the channel's device; a device-trigger automation fires."""
    device = channel.device
    from homeassistant.components.device_automation import (
        DeviceAutomationType,
        async_get_device_automations,
    )

    triggers = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, [device.id]
    )
    assert {t["type"] for t in triggers[device.id] if t["domain"] == DOMAIN} == {
        "stream_started",
        "stream_stopped",
        "stream_failed",
        "stream_recovered",
        "stream_failover",
        "viewer_joined",
        "viewer_left",
        "recording_started",
        "recording_finished",
        "recording_failed",
    }
    engine_device = find_device(hass, loaded_entry.entry_id)
    assert engine_device is not None
    none = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, [engine_device.id]
    )
    assert not [t for t in none[engine_device.id] if t["domain"] == DOMAIN]

    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "trigger": {
                    "platform": "device",
                    "domain": DOMAIN,
                    "device_id": device.id,
                    "type": "stream_started",
                },
                "action": {
                    "event": "match_started",
                    "event_data": {"viewers": "{{ trigger.event.data.viewers }}"},
                },
            }
        },
    )
    fired = async_capture_events(hass, "match_started")
    events = async_capture_events(hass, EVENT_TYPE)
    client = await hass_client()
    async with client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 100_000)
        await hass.async_block_till_done()
    broadcaster = get_hub(hass).find(ContentRef.parse(ContentKind.CONTENT_ID, CID))
    assert broadcaster is not None
    async with asyncio.timeout(5):
        while broadcaster.viewer_count:
            await asyncio.sleep(0.05)
    await get_hub(hass).async_stop(ContentRef.parse(ContentKind.CONTENT_ID, CID))
    await hass.async_block_till_done()
    types = [event.data["type"] for event in events]
    assert types[:2] == ["viewer_joined", "stream_started"]
    assert "viewer_left" in types
    assert types[-1] == "stream_stopped"
    started = events[1].data
    assert started["device_id"] == device.id
    assert started["channel"] == "Sports 1"
    assert started["content_id"] == CID
    assert started["infohash"] == engine_sim.infohash_for(CID)
    assert started["viewers"] == 1
    assert len(fired) == 1


async def test_viewer_events_scale_with_people_not_connections(
    hass: HomeAssistant,
    owner_client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    channel: Owned,
) -> None:
    """200 quick reconnects: a few coalesced events, and the sensor stays exact."""
    hold = 1.0
    monkeypatch.setattr(bus_events, "VIEWER_EVENT_HOLD", hold)
    ids = channel.entities
    events = async_capture_events(hass, EVENT_TYPE)
    url = f"{PREFIX}/stream/{CID}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with owner_client.get(url) as first:
        await read_bytes(first, 50_000)
        for _ in range(200):  # an IPTV app that keeps reconnecting
            async with owner_client.get(url) as again:
                assert again.status == 200
                assert await again.content.readany()
        async with owner_client.get(url) as second, owner_client.get(url) as third:
            assert await second.content.readany()
            assert await third.content.readany()
            await wait_state(hass, ids["viewers"], lambda s: s == "3")
    await wait_state(hass, ids["viewers"], lambda s: s == "0")

    def told() -> list[dict[str, Any]]:
        return [
            dict(e.data)
            for e in events
            if e.data["type"] in ("viewer_joined", "viewer_left")
        ]

    async with asyncio.timeout(hold + 5):
        while not told() or told()[-1]["viewers"] != 0:
            await asyncio.sleep(0.05)
    elapsed = loop.time() - started
    viewer_events = told()
    # The first viewer is told at once, then at most one event per hold.
    assert viewer_events[0]["type"] == "viewer_joined"
    assert viewer_events[0]["viewers"] == 1
    assert viewer_events[-1]["type"] == "viewer_left"
    assert len(viewer_events) <= 2 + elapsed / hold
    assert len(viewer_events) < 0.1 * 2 * 203
    for before, after in itertools.pairwise(viewer_events):
        # Each event tells a change of the count, in its direction.
        assert before["viewers"] != after["viewers"]
        assert (after["type"] == "viewer_joined") == (
            after["viewers"] > before["viewers"]
        )


async def test_hls_clients_are_told_as_viewers(
    hass: HomeAssistant, owner_client: TestClient
) -> None:
    """An HLS client has no connection to follow; it is told by the next tick."""
    events = async_capture_events(hass, EVENT_TYPE)
    playlist = await owner_client.get(f"{PREFIX}/hls/{CID}/index.m3u8")
    assert playlist.status == 200
    async with asyncio.timeout(5):
        while not any(e.data["type"] == "viewer_joined" for e in events):
            await asyncio.sleep(0.05)
    joined = [e.data for e in events if e.data["type"] == "viewer_joined"]
    assert joined == [joined[0]]
    assert joined[0]["viewers"] == 1


@pytest.mark.parametrize("entry_options", [{CONF_LINGER: 0}])
async def test_adhoc_broadcast_device_comes_and_goes(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
) -> None:
    """A broadcast that is no channel gets a device while it plays."""
    infohash = engine_sim.infohash_for(CID2)
    async with owner_client.get(f"{PREFIX}/stream/{CID2}") as resp:
        await read_bytes(resp, 50_000)
        device = find_device(hass, f"broadcast_{infohash}")
        assert device is not None
        assert device.via_device_id == find_device(hass, loaded_entry.entry_id).id
        ids = entities_of(hass, device.id)
        await wait_state(hass, ids["viewers"], lambda s: s == "1")
    async with asyncio.timeout(5):
        while find_device(hass, f"broadcast_{infohash}") is not None:
            await asyncio.sleep(0.05)
    assert er.async_get(hass).async_get(ids["viewers"]) is None


async def _sent_to(hass: HomeAssistant, player: str, part: str) -> str:
    """The URL a demo media player was sent, once it holds ``part``: the player
    writes its state from a worker thread, after the action has returned."""

    def url() -> str:
        state = hass.states.get(player)
        return str(state.attributes.get("media_content_id", "")) if state else ""

    await until(lambda: part in url())
    return url()


async def test_play_and_stop_actions(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_client: ClientFactory
) -> None:
    """play sends a signed URL to a media player; that URL streams without a header."""
    # Components with views first: the test server freezes the router.
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "demo", {})
    await hass.async_block_till_done()
    client = await hass_client()
    origin = str(client.make_url("/")).rstrip("/")
    await async_process_ha_core_config(hass, {"internal_url": origin})
    await add_channel(hass, loaded_entry, "Kitchen TV", CID)

    await hass.services.async_call(
        DOMAIN,
        "play",
        {"entity_id": "media_player.bedroom", "channel": "kitchen tv"},
        blocking=True,
    )
    url = await _sent_to(hass, "media_player.bedroom", f"/stream/{CID}?authSig=")
    assert url.startswith(f"{origin}/api/acestream_proxy/stream/{CID}?authSig=")
    async with aiohttp.ClientSession() as anonymous, anonymous.get(url) as resp:
        assert resp.status == 200
        assert strip_nulls(await read_bytes(resp, 50_000))

    await hass.services.async_call(
        DOMAIN,
        "play",
        {"entity_id": "media_player.bedroom", "infohash": CID2.upper()},
        blocking=True,
    )
    await _sent_to(hass, "media_player.bedroom", f"/stream/infohash/{CID2}?authSig=")

    # A Cast device among the targets gets HLS; the others still get TS.
    registry = er.async_get(hass)
    cast = registry.async_get_or_create("media_player", "cast", "uuid-2")
    hass.states.async_set(cast.entity_id, "idle")
    await hass.services.async_call(
        DOMAIN,
        "play",
        {
            "entity_id": ["media_player.living_room", cast.entity_id],
            "channel": "Kitchen TV",
        },
        blocking=True,
    )
    await _sent_to(hass, "media_player.living_room", f"/stream/{CID}?authSig=")

    bad_calls: list[tuple[dict[str, Any], str]] = [
        ({"entity_id": "media_player.bedroom"}, "Say what to play"),
        ({"entity_id": "media_player.bedroom", "channel": "nope"}, "No channel"),
        ({"entity_id": "media_player.bedroom", "content_id": "xyz"}, "40 hexadecimal"),
        ({"entity_id": "light.kitchen", "content_id": CID}, "at least one media"),
    ]
    for data, message in bad_calls:
        with pytest.raises(ServiceValidationError, match=message):
            await hass.services.async_call(DOMAIN, "play", data, blocking=True)

    await hass.services.async_call(
        DOMAIN, "stop", {"channel": "Kitchen TV"}, blocking=True
    )
    # Stopping what is not playing is done already: said, not raised.
    assert await hass.services.async_call(
        DOMAIN, "stop", {"content_id": CID}, blocking=True, return_response=True
    ) == {"stopped": False, "name": CID}
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    with pytest.raises(ServiceValidationError, match="No AceStream engine"):
        await hass.services.async_call(
            DOMAIN,
            "play",
            {"entity_id": "media_player.bedroom", "content_id": CID},
            blocking=True,
        )


async def test_playlist(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    owner_client: TestClient,
    hass_client_no_auth: ClientFactory,
) -> None:
    """The signed playlist URL serves an M3U whose signed entries play."""
    origin = str(owner_client.make_url("/")).rstrip("/")
    await async_process_ha_core_config(hass, {"internal_url": origin})
    await add_channel(
        hass, loaded_entry, "Sports 1", CID, group="Sports", logo="http://l/s.png"
    )
    await add_channel(hass, loaded_entry, "News", CID2, kind="infohash")
    response = await hass.services.async_call(
        DOMAIN, "playlist_url", {"days": 2}, blocking=True, return_response=True
    )
    assert response is not None
    url = str(response["url"])
    assert url.startswith(f"{origin}/api/acestream_proxy/playlist.m3u?authSig=")
    anonymous = await hass_client_no_auth()
    assert (await anonymous.get(f"{PREFIX}/playlist.m3u")).status == 401
    resp = await anonymous.get(URL(url).path_qs)
    assert resp.status == 200
    assert resp.content_type == "audio/x-mpegurl"
    lines = (await resp.text()).splitlines()
    assert lines[0] == "#EXTM3U"
    # tvg-id is the source's (for guides), absent on channels added by hand.
    assert lines[1] == f'#EXTINF:-1 acestream-infohash="{CID2}",News'
    assert lines[3] == (
        '#EXTINF:-1 tvg-logo="http://l/s.png" group-title="Sports" '
        f'acestream-content-id="{CID}",Sports 1'
    )
    assert lines[4:6] == ["#EXTGRP:Sports", "#EXTALBUMARTURL:http://l/s.png"]
    assert "/stream/infohash/" in lines[2]
    stream = URL(lines[6])
    assert stream.path == f"{PREFIX}/stream/{CID}"
    assert "authSig" in stream.query
    async with anonymous.get(stream.path_qs) as played:
        assert played.status == 200
        assert strip_nulls(await read_bytes(played, 50_000))


async def test_media_browser(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Channels grouped; each resolves to our TS path."""
    await add_channel(hass, loaded_entry, "Sports 1", CID, group="Sports")
    await add_channel(hass, loaded_entry, "News", CID2)
    root = await media_source.async_browse_media(hass, f"media-source://{DOMAIN}")
    assert root.title == "AceStream"
    assert [child.title for child in root.children] == ["Sports", "News"]
    assert root.children[1].can_play
    group = await media_source.async_browse_media(
        hass, root.children[0].media_content_id
    )
    assert [child.title for child in group.children] == ["Sports 1"]
    item_id = group.children[0].media_content_id
    played = await media_source.async_resolve_media(hass, item_id, "media_player.tv")
    assert played.url == f"{PREFIX}/stream/{CID}"
    assert played.mime_type == "video/mp2t"
    # The browser (no target) and Cast devices get HLS; the browser under the type
    # Home Assistant's frontend hands to its HLS player.
    played = await media_source.async_resolve_media(hass, item_id, None)
    assert played.url == f"{PREFIX}/hls/{CID}/index.m3u8"
    assert played.mime_type == "application/x-mpegURL"
    cast = er.async_get(hass).async_get_or_create("media_player", "cast", "uuid-1")
    played = await media_source.async_resolve_media(hass, item_id, cast.entity_id)
    assert played.mime_type == "application/vnd.apple.mpegurl"
    news = await media_source.async_resolve_media(
        hass, root.children[1].media_content_id, cast.entity_id
    )
    assert news.url == f"{PREFIX}/hls/{CID2}/index.m3u8"
    with pytest.raises(BrowseError):
        await media_source.async_browse_media(hass, f"media-source://{DOMAIN}/group/x")
    with pytest.raises(media_source.Unresolvable):
        await media_source.async_resolve_media(
            hass, f"media-source://{DOMAIN}/channel/bad/zz", None
        )


async def test_diagnostics_are_redacted(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_client: ClientFactory
) -> None:
    """Broadcast stats are there; hosts and session URLs are not."""
    assert await async_setup_component(hass, "diagnostics", {})
    client = await hass_client()
    async with client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        hls = await client.get(f"{PREFIX}/hls/{CID}/index.m3u8")
        assert hls.status == 200
        diagnostics = await get_diagnostics_for_config_entry(
            hass, hass_client, loaded_entry
        )
    text = str(diagnostics)
    assert "127.0.0.1" not in text
    assert "/ace/r/" not in text
    assert diagnostics["engine"]["reachable"] is True
    [broadcast] = diagnostics["broadcasts"]
    assert broadcast["viewers"] == 2  # one TS, one HLS client
    assert broadcast["hls"]["segments"] >= 2
    assert broadcast["stats"]["bytes_in"] > 0
    assert broadcast["session"]["playback_url"] == "**REDACTED**"


async def test_diagnostics_show_only_the_entrys_broadcasts(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """With two engines, each entry's diagnostics list the broadcasts it serves."""
    assert await async_setup_component(hass, "diagnostics", {})
    async with EngineSimulator() as other:
        second = MockConfigEntry(
            domain=DOMAIN,
            title="second engine",
            data={"host": "127.0.0.1", "port": other.port},
        )
        second.add_to_hass(hass)
        assert await hass.config_entries.async_setup(second.entry_id)
        await hass.async_block_till_done()
        client = await hass_client()
        async with client.get(f"{PREFIX}/stream/{CID}") as resp:
            await read_bytes(resp, 20_000)
            serving = get_hub(hass).broadcasts[engine_sim.infohash_for(CID)].entry_id
            counts = {}
            for entry in (loaded_entry, second):
                diagnostics = await get_diagnostics_for_config_entry(
                    hass, hass_client, entry
                )
                counts[entry.entry_id] = len(diagnostics["broadcasts"])
        assert counts == {
            loaded_entry.entry_id: int(serving == loaded_entry.entry_id),
            second.entry_id: int(serving == second.entry_id),
        }
        assert await hass.config_entries.async_unload(second.entry_id)


async def test_repair_issue_for_a_long_outage(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, long_outage: str
) -> None:
    """Down for minutes: a fixable issue; the fix flow moves the entry; it clears."""
    registry = ir.async_get(hass)
    issue = registry.async_get_issue(DOMAIN, long_outage)
    assert issue is not None
    assert issue.is_fixable
    # Linked to its entry where Home Assistant links issues (and the gate agrees).
    linkable = "config_entry_id" in {f.name for f in fields(ir.IssueEntry)}
    assert compat.ISSUE_CONFIG_ENTRY is linkable
    assert getattr(issue, "config_entry_id", None) == (
        loaded_entry.entry_id if linkable else None
    )

    async with EngineSimulator() as moved:
        assert await async_setup_component(hass, "repairs", {})
        manager = repairs_flow_manager(hass)
        assert manager is not None
        flow = await manager.async_init(DOMAIN, data={"issue_id": long_outage})
        assert flow["step_id"] == "address"
        flow = await manager.async_configure(
            flow["flow_id"], {"host": "127.0.0.1", "port": 1}
        )
        assert flow["errors"] == {"base": "cannot_connect"}
        flow = await manager.async_configure(
            flow["flow_id"], {"host": "127.0.0.1", "port": moved.port}
        )
        assert flow["type"] == "create_entry"
        await hass.async_block_till_done()
        assert loaded_entry.data["port"] == moved.port
        assert registry.async_get_issue(DOMAIN, long_outage) is None
        assert await hass.config_entries.async_unload(loaded_entry.entry_id)


async def test_repair_clears_itself_when_the_engine_is_back(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    freezer: FrozenDateTimeFactory,
    long_outage: str,
) -> None:
    """The engine comes back: the issue disappears without a fix."""
    registry = ir.async_get(hass)
    assert registry.async_get_issue(DOMAIN, long_outage) is not None
    await engine_sim.start()
    freezer.tick(timedelta(seconds=31))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert registry.async_get_issue(DOMAIN, long_outage) is None


async def test_repair_of_an_engine_removed_meanwhile(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    long_outage: str,
) -> None:
    """The engine's entry is deleted while its repair is open: the repair ends."""
    assert ir.async_get(hass).async_get_issue(DOMAIN, long_outage)
    assert await async_setup_component(hass, "repairs", {})
    manager = repairs_flow_manager(hass)
    assert manager is not None
    flow = await manager.async_init(DOMAIN, data={"issue_id": long_outage})
    assert flow["step_id"] == "address"
    assert await hass.config_entries.async_remove(loaded_entry.entry_id)
    await hass.async_block_till_done()
    # The issue went with its entry; the flow the user had open ends cleanly.
    assert ir.async_get(hass).async_get_issue(DOMAIN, long_outage) is None
    flow = await manager.async_configure(
        flow["flow_id"], {"host": "127.0.0.1", "port": engine_sim.port}
    )
    assert flow["type"] == "abort"
    assert flow["reason"] == "entry_removed"


async def test_a_reload_clears_the_repair_of_an_engine_back(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    long_outage: str,
) -> None:
    """The engine is back and the user reloads before the next health check: the
    new coordinator, which never saw the outage, closes the issue all the same;
    while the engine stays down, a reload leaves the issue open."""
    registry = ir.async_get(hass)
    assert registry.async_get_issue(DOMAIN, long_outage) is not None
    assert not await hass.config_entries.async_reload(loaded_entry.entry_id)
    assert registry.async_get_issue(DOMAIN, long_outage) is not None
    await engine_sim.start()
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert registry.async_get_issue(DOMAIN, long_outage) is None
