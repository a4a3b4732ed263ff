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
from homeassistant.core import HomeAssistant
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
from tests.ha_fixtures import CID, PREFIX, Owned, until
from tests.helpers import find_device, read_bytes
from tests.simulator import EngineSimulator

ADHOC = "1b4848271c91ce2d8965ce416267c25047dc8142"

type ClientFactory = Callable[[], Awaitable[TestClient]]


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
    owner_client: TestClient,
    channel: Owned,
) -> None:
    """Idle, then playing with a viewer, then lingering with none, then stopped:
    the automations' conditions hold exactly as the channel is at each step."""
    device_id = channel.device.id
    assert await _our_conditions(hass, device_id) == list(CONDITION_TYPES)
    engine = find_device(hass, loaded_entry.entry_id)
    assert engine is not None
    assert await _our_conditions(hass, engine.id) == []
    await _automations(hass, device_id, "match")
    checker = Checker(hass)

    assert await checker.holding("match") == {"is_not_playing", "has_no_viewers"}
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        assert await checker.holding("match") == {"is_playing", "has_viewers"}
    # Nobody watches: the broadcast lingers, which is not playing.
    await checker.until("match", {"is_not_playing", "has_no_viewers"})
    assert get_hub(hass).find(ContentRef(ContentKind.CONTENT_ID, CID)) is not None
    assert await get_hub(hass).async_stop(ContentRef(ContentKind.CONTENT_ID, CID))
    assert await checker.holding("match") == {"is_not_playing", "has_no_viewers"}


async def test_adhoc_broadcast_conditions_and_a_device_gone(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
) -> None:
    """A broadcast started by id has the conditions while it plays; once its
    device is gone with it, the automation sees nothing playing."""
    infohash = engine_sim.infohash_for(ADHOC)
    checker = Checker(hass)
    async with owner_client.get(f"{PREFIX}/stream/{ADHOC}") as resp:
        await read_bytes(resp, 50_000)
        device = find_device(hass, f"broadcast_{infohash}")
        assert device is not None
        assert await _our_conditions(hass, device.id) == list(CONDITION_TYPES)
        await _automations(hass, device.id, "adhoc")
        assert await checker.holding("adhoc") == {"is_playing", "has_viewers"}
        ref = ContentRef(ContentKind.INFOHASH, infohash)
        assert await get_hub(hass).async_stop(ref)
    await until(lambda: find_device(hass, f"broadcast_{infohash}") is None, 5, 0.05)
    assert await checker.holding("adhoc") == {"is_not_playing", "has_no_viewers"}


async def test_an_unknown_condition_type_is_refused(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
    channel: Owned,
) -> None:
    """A condition type we do not have makes the automation invalid (unavailable,
    and the log says why), and it never runs its actions."""
    device_id = channel.device.id
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
