"""Availability of channel and broadcast entities: they follow their engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy import updates
from tests.helpers import find_device, read_bytes
from tests.simulator import EngineSimulator

CID = "0a4848271c91ce2d8965ce416267c25047dc8141"

type ClientFactory = Callable[[], Awaitable[TestClient]]


@pytest.fixture(autouse=True)
def fast_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Engine statistics are read every second here instead of every 15."""
    monkeypatch.setattr(updates, "TICK", timedelta(seconds=1))
    monkeypatch.setattr(updates, "STATS_EVERY_TICKS", 1)


async def _channel_entities(
    hass: HomeAssistant, entry: MockConfigEntry, name: str = "Match"
) -> dict[str, str]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "channel"), context={"source": SOURCE_USER}
    )
    await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": name, "content": CID}
    )
    await hass.async_block_till_done()
    subentry_id = next(iter(entry.subentries))
    device = find_device(hass, f"channel_{subentry_id}")
    assert device is not None
    return {
        e.translation_key: e.entity_id
        for e in er.async_entries_for_device(er.async_get(hass), device.id, True)
    }


def _number(state: str) -> bool:
    try:
        float(state)
    except ValueError:
        return False
    return True


async def _wait_state(
    hass: HomeAssistant, entity_id: str, check: Callable[[str], bool]
) -> str:
    async with asyncio.timeout(10):
        while True:
            state = hass.states.get(entity_id)
            if state is not None and check(state.state):
                return state.state
            await asyncio.sleep(0.05)


async def test_idle_channel_unavailable_while_its_engine_is_unreachable(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, engine_sim: EngineSimulator
) -> None:
    """No more 'idle' and '0' for a channel whose engine is down."""
    ids = await _channel_entities(hass, loaded_entry)
    assert hass.states.get(ids["status"]).state == "idle"
    coordinator = loaded_entry.runtime_data.coordinator
    await engine_sim.stop()
    await coordinator.async_refresh()
    for key in ("status", "viewers", "bitrate", "peers", "download_speed", "stop"):
        await _wait_state(hass, ids[key], lambda s: s == STATE_UNAVAILABLE)
    await engine_sim.start()
    await coordinator.async_refresh()
    await _wait_state(hass, ids["status"], lambda s: s == "idle")
    await _wait_state(hass, ids["viewers"], lambda s: s == "0")
    await _wait_state(hass, ids["stop"], lambda s: s != STATE_UNAVAILABLE)


async def test_playing_broadcast_unavailable_while_its_engine_is_unreachable(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """The engine stops answering its health check: the broadcast's entities go
    unavailable; when it answers again they show the broadcast again."""
    ids = await _channel_entities(hass, loaded_entry)
    coordinator = loaded_entry.runtime_data.coordinator
    client = await hass_client()
    async with client.get(f"/api/acestream_proxy/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        await _wait_state(hass, ids["viewers"], lambda s: s == "1")
        engine_sim.version_mode = "html500"
        await coordinator.async_refresh()
        for key in ("status", "viewers", "bitrate", "peers"):
            await _wait_state(hass, ids[key], lambda s: s == STATE_UNAVAILABLE)
        engine_sim.version_mode = "ok"
        await coordinator.async_refresh()
        await _wait_state(hass, ids["viewers"], lambda s: s == "1")
        await _wait_state(hass, ids["status"], lambda s: s == "playing")


async def test_engine_statistics_unavailable_while_stat_url_fails(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """Peers, download speed and live delay are unavailable, not unknown, while the
    engine's statistics fail; the stream and the other sensors go on."""
    ids = await _channel_entities(hass, loaded_entry)
    # Live delay is disabled by default: enable it (takes a reload).
    er.async_get(hass).async_update_entity(ids["live_delay"], disabled_by=None)
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    stats = ("peers", "download_speed", "live_delay")
    client = await hass_client()
    async with client.get(f"/api/acestream_proxy/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        for key in stats:
            await _wait_state(hass, ids[key], _number)
        engine_sim.stat_error = "unknown playback session id"
        for key in stats:
            await _wait_state(hass, ids[key], lambda s: s == STATE_UNAVAILABLE)
        assert hass.states.get(ids["viewers"]).state == "1"
        assert hass.states.get(ids["status"]).state == "playing"
        assert await read_bytes(resp, 50_000)
        engine_sim.stat_error = None
        for key in stats:
            await _wait_state(hass, ids[key], _number)


async def test_channel_of_an_unloaded_engine_entry_is_unavailable(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Unloading the engine entry leaves its channels' entities unavailable."""
    ids = await _channel_entities(hass, loaded_entry)
    assert hass.states.get(ids["status"]).state == "idle"
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    for entity_id in ids.values():
        state = hass.states.get(entity_id)
        assert state is None or state.state == STATE_UNAVAILABLE
    assert hass.states.get(ids["status"]).state == STATE_UNAVAILABLE
