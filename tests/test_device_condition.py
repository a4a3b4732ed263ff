"""Device conditions of channels and broadcasts, listed and checked through Home
Assistant's own device automation and automation machinery."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.device_automation import (
    DeviceAutomationType,
    async_get_device_automations,
)
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.acestream_proxy.const import CONF_LINGER, DOMAIN
from custom_components.acestream_proxy.device_condition import CONDITION_TYPES
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.helpers import read_bytes
from tests.simulator import EngineSimulator

CID = "0a4848271c91ce2d8965ce416267c25047dc8141"
ADHOC = "1b4848271c91ce2d8965ce416267c25047dc8142"

type ClientFactory = Callable[[], Awaitable[TestClient]]


def _device_of(hass: HomeAssistant, identifier: str) -> dr.DeviceEntry | None:
    entries = hass.config_entries.async_entries(DOMAIN)
    assert len(entries) == 1
    return next(
        (
            device
            for device in dr.async_entries_for_config_entry(
                dr.async_get(hass), entries[0].entry_id
            )
            if (DOMAIN, identifier) in device.identifiers
        ),
        None,
    )


async def _channel_device(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "channel"), context={"source": SOURCE_USER}
    )
    await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Match", "content": CID}
    )
    await hass.async_block_till_done()
    subentry_id = next(iter(entry.subentries))
    device = _device_of(hass, f"channel_{subentry_id}")
    assert device is not None
    return device.id


async def _our_conditions(hass: HomeAssistant, device_id: str) -> list[str]:
    listed = await async_get_device_automations(
        hass, DeviceAutomationType.CONDITION, [device_id]
    )
    return [c["type"] for c in listed[device_id] if c["domain"] == DOMAIN]


async def _automations(hass: HomeAssistant, device_id: str, name: str) -> None:
    """One automation per condition type: on the event `check_<name>`, each whose
    condition holds fires `held` with its type."""
    automations = [
        {
            "id": f"{name}_{condition_type}",
            "triggers": [{"trigger": "event", "event_type": f"check_{name}"}],
            "conditions": [
                {
                    "condition": "device",
                    "domain": DOMAIN,
                    "device_id": device_id,
                    "type": condition_type,
                }
            ],
            "actions": [
                {
                    "event": "held",
                    "event_data": {"device": name, "type": condition_type},
                }
            ],
        }
        for condition_type in CONDITION_TYPES
    ]
    assert await async_setup_component(hass, "automation", {"automation": automations})
    await hass.async_block_till_done()


class Checker:
    """Fires the check event and tells which conditions held."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.held = async_capture_events(hass, "held")

    async def holding(self, name: str) -> set[str]:
        self.held.clear()
        self.hass.bus.async_fire(f"check_{name}")
        await self.hass.async_block_till_done()
        return {e.data["type"] for e in self.held if e.data["device"] == name}

    async def until(self, name: str, expected: set[str], timeout: float = 8) -> None:
        async with asyncio.timeout(timeout):
            while await self.holding(name) != expected:
                await asyncio.sleep(0.05)


@pytest.mark.parametrize("entry_options", [{CONF_LINGER: 30}])
async def test_channel_conditions_follow_its_broadcast(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """Idle, then playing with a viewer, then lingering with none, then stopped:
    the automations' conditions hold exactly as the channel is at each step."""
    device_id = await _channel_device(hass, loaded_entry)
    assert await _our_conditions(hass, device_id) == list(CONDITION_TYPES)
    engine = _device_of(hass, loaded_entry.entry_id)
    assert engine is not None
    assert await _our_conditions(hass, engine.id) == []
    await _automations(hass, device_id, "match")
    checker = Checker(hass)

    assert await checker.holding("match") == {"is_not_playing", "has_no_viewers"}
    client = await hass_client()
    async with client.get(f"/api/acestream_proxy/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        assert await checker.holding("match") == {"is_playing", "has_viewers"}
    # Nobody watches: the broadcast lingers, which is not playing.
    await checker.until("match", {"is_not_playing", "has_no_viewers"})
    assert get_hub(hass).find(ContentRef(ContentKind.CONTENT_ID, CID)) is not None
    assert await get_hub(hass).async_stop(ContentRef(ContentKind.CONTENT_ID, CID))
    assert await checker.holding("match") == {"is_not_playing", "has_no_viewers"}


async def test_adhoc_broadcast_conditions_and_a_device_gone(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """A broadcast started by id has the conditions while it plays; once its
    device is gone with it, the automation sees nothing playing."""
    infohash = engine_sim.infohash_for(ADHOC)
    client = await hass_client()
    checker = Checker(hass)
    async with client.get(f"/api/acestream_proxy/stream/{ADHOC}") as resp:
        await read_bytes(resp, 50_000)
        device = _device_of(hass, f"broadcast_{infohash}")
        assert device is not None
        assert await _our_conditions(hass, device.id) == list(CONDITION_TYPES)
        await _automations(hass, device.id, "adhoc")
        assert await checker.holding("adhoc") == {"is_playing", "has_viewers"}
        ref = ContentRef(ContentKind.INFOHASH, infohash)
        assert await get_hub(hass).async_stop(ref)
    async with asyncio.timeout(5):
        while _device_of(hass, f"broadcast_{infohash}") is not None:
            await asyncio.sleep(0.05)
    assert await checker.holding("adhoc") == {"is_not_playing", "has_no_viewers"}


async def test_an_unknown_condition_type_is_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A condition type we do not have makes the automation invalid (unavailable,
    and the log says why), and it never runs its actions."""
    device_id = await _channel_device(hass, loaded_entry)
    config: dict[str, Any] = {
        "id": "bad",
        "alias": "bad",
        "triggers": [{"trigger": "event", "event_type": "check_bad"}],
        "conditions": [
            {
                "condition": "device",
                "domain": DOMAIN,
                "device_id": device_id,
                "type": "is_on_fire",
            }
        ],
        "actions": [{"event": "held", "event_data": {"device": "bad", "type": "x"}}],
    }
    assert await async_setup_component(hass, "automation", {"automation": [config]})
    await hass.async_block_till_done()
    assert hass.states.get("automation.bad").state == "unavailable"
    assert "Automation with alias 'bad' failed to setup conditions" in caplog.text
    assert await Checker(hass).holding("bad") == set()
