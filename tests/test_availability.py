"""Availability of channel and broadcast entities: they follow their engine."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.ha_fixtures import CID, PREFIX, Owned, Viewer, wait_state
from tests.helpers import read_bytes
from tests.simulator import EngineSimulator

pytestmark = pytest.mark.usefixtures("fast_tick")


def _number(state: str) -> bool:
    try:
        float(state)
    except ValueError:
        return False
    return True


async def test_idle_channel_unavailable_while_its_engine_is_unreachable(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    channel: Owned,
) -> None:
    """No more 'idle' and '0' for a channel whose engine is down."""
    ids = channel.entities
    assert hass.states.get(ids["status"]).state == "idle"
    coordinator = loaded_entry.runtime_data.coordinator
    await engine_sim.stop()
    await coordinator.async_refresh()
    for key in ("status", "viewers", "bitrate", "peers", "download_speed", "stop"):
        await wait_state(hass, ids[key], lambda s: s == STATE_UNAVAILABLE)
    await engine_sim.start()
    await coordinator.async_refresh()
    await wait_state(hass, ids["status"], lambda s: s == "idle")
    await wait_state(hass, ids["viewers"], lambda s: s == "0")
    await wait_state(hass, ids["stop"], lambda s: s != STATE_UNAVAILABLE)


async def test_playing_broadcast_unavailable_while_its_engine_is_unreachable(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    channel: Owned,
    playing: Viewer,
) -> None:
    """The engine stops answering its health check: the broadcast's entities go
    unavailable; when it answers again they show the broadcast again."""
    ids = channel.entities
    coordinator = loaded_entry.runtime_data.coordinator
    await wait_state(hass, ids["viewers"], lambda s: s == "1")
    engine_sim.version_mode = "html500"
    await coordinator.async_refresh()
    for key in ("status", "viewers", "bitrate", "peers"):
        await wait_state(hass, ids[key], lambda s: s == STATE_UNAVAILABLE)
    engine_sim.version_mode = "ok"
    await coordinator.async_refresh()
    await wait_state(hass, ids["viewers"], lambda s: s == "1")
    await wait_state(hass, ids["status"], lambda s: s == "playing")


async def test_engine_statistics_unavailable_while_stat_url_fails(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    channel: Owned,
) -> None:
    """Peers, download speed and live delay are unavailable, not unknown, while the
    engine's statistics fail; the stream and the other sensors go on."""
    ids = channel.entities
    # Live delay is disabled by default: enable it (takes a reload).
    er.async_get(hass).async_update_entity(ids["live_delay"], disabled_by=None)
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    stats = ("peers", "download_speed", "live_delay")
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        for key in stats:
            await wait_state(hass, ids[key], _number)
        engine_sim.stat_error = "unknown playback session id"
        for key in stats:
            await wait_state(hass, ids[key], lambda s: s == STATE_UNAVAILABLE)
        assert hass.states.get(ids["viewers"]).state == "1"
        assert hass.states.get(ids["status"]).state == "playing"
        assert await read_bytes(resp, 50_000)
        engine_sim.stat_error = None
        for key in stats:
            await wait_state(hass, ids[key], _number)


async def test_channel_of_an_unloaded_engine_entry_is_unavailable(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, channel: Owned
) -> None:
    """Unloading the engine entry leaves its channels' entities unavailable."""
    ids = channel.entities
    assert hass.states.get(ids["status"]).state == "idle"
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    for entity_id in ids.values():
        state = hass.states.get(entity_id)
        assert state is None or state.state == STATE_UNAVAILABLE
    assert hass.states.get(ids["status"]).state == STATE_UNAVAILABLE
