"""Entry setup, engine entities, outages and unload."""

from __future__ import annotations

from datetime import timedelta
import logging

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from tests.helpers import find_device
from tests.simulator import EngineSimulator


def _entity_ids(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    registry = er.async_get(hass)
    return {
        ent.translation_key or "": ent.entity_id
        for ent in er.async_entries_for_config_entry(registry, entry.entry_id)
    }


async def test_setup_creates_engine_device_and_entities(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """One service device per engine, with connectivity, version and broadcasts."""
    assert loaded_entry.state is ConfigEntryState.LOADED
    device = find_device(hass, loaded_entry.entry_id)
    assert device is not None
    assert device.entry_type is dr.DeviceEntryType.SERVICE
    assert device.sw_version == "3.2.12"

    ids = _entity_ids(hass, loaded_entry)
    assert set(ids) == {"connectivity", "version", "active_broadcasts", "total_viewers"}
    assert hass.states.get(ids["connectivity"]).state == STATE_ON
    assert hass.states.get(ids["version"]).state == "3.2.12"
    assert hass.states.get(ids["active_broadcasts"]).state == "0"
    for ent in er.async_entries_for_config_entry(
        er.async_get(hass), loaded_entry.entry_id
    ):
        # Unique ids never carry the host or port.
        assert "127.0.0.1" not in ent.unique_id
        assert ent.unique_id.startswith(loaded_entry.entry_id)


async def test_setup_retries_while_engine_down(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An engine that does not answer makes setup retry later; Home Assistant
    says so ("not ready yet"), the integration adds nothing of its own."""
    await engine_sim.stop()
    config_entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    assert not [r for r in caplog.records if "is unreachable" in r.getMessage()]


async def test_outage_and_recovery(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Down: connectivity off, other entities unavailable, logged once at INFO (an
    engine going away is what failover is for, not an error); back: once."""
    ids = _entity_ids(hass, loaded_entry)
    await engine_sim.stop()
    for minutes in (1, 2, 3):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=minutes))
        await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(ids["connectivity"]).state == STATE_OFF
    assert hass.states.get(ids["version"]).state == STATE_UNAVAILABLE
    assert hass.states.get(ids["active_broadcasts"]).state == STATE_UNAVAILABLE
    failures = [r for r in caplog.records if "is unreachable" in r.getMessage()]
    assert [r.levelno for r in failures] == [logging.INFO]
    assert failures[0].getMessage().startswith(f"{loaded_entry.title} is unreachable: ")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    await engine_sim.start()
    for minutes in (4, 5):
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=minutes))
        await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(ids["connectivity"]).state == STATE_ON
    assert hass.states.get(ids["version"]).state == "3.2.12"
    recovered = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert [r.levelno for r in recovered] == [logging.INFO]


async def test_unload(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Unloading leaves the entry not loaded and its entities unavailable."""
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    ids = _entity_ids(hass, loaded_entry)
    assert hass.states.get(ids["connectivity"]).state == STATE_UNAVAILABLE
