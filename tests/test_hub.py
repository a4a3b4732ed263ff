"""The hub: several engines, unload during a start, Home Assistant stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient
from homeassistant.const import CONF_HOST, CONF_PORT, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy.const import DOMAIN
from custom_components.acestream_proxy.hub import get_hub
from tests.helpers import read_bytes, strip_nulls
from tests.simulator import EngineSimulator

CID = "0123456789abcdef0123456789abcdef01234567"

type ClientFactory = Callable[[], Awaitable[TestClient]]


async def test_one_broadcast_across_two_engines(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """An infohash playing on engine A stays there when its content id lands on B."""
    async with EngineSimulator(cold_start=0.2) as other:
        second = MockConfigEntry(
            domain=DOMAIN,
            title="second",
            data={CONF_HOST: "127.0.0.1", CONF_PORT: other.port},
        )
        second.add_to_hass(hass)
        assert await hass.config_entries.async_setup(second.entry_id)
        await hass.async_block_till_done()

        infohash = engine_sim.infohash_for(CID)
        client = await hass_client()
        async with client.get(f"/api/acestream_proxy/stream/infohash/{infohash}") as a:
            await read_bytes(a, 20_000)
            hub = get_hub(hass)
            first_engine = hub.broadcasts[infohash].entry_id
            # The least loaded engine gets the next start: the other one.
            async with client.get(f"/api/acestream_proxy/stream/{CID}") as b:
                assert b.status == 200
                assert strip_nulls(await read_bytes(b, 50_000))
            assert hub.broadcasts[infohash].entry_id == first_engine
        sims = {loaded_entry.entry_id: engine_sim, second.entry_id: other}
        idle = sims[
            second.entry_id
            if first_engine == loaded_entry.entry_id
            else loaded_entry.entry_id
        ]
        # The duplicate session on the other engine was stopped at once.
        assert idle.counters.sessions_opened == 1
        assert idle.counters.sessions_stopped == 1
        assert await hass.config_entries.async_unload(second.entry_id)


async def test_unload_during_start_is_503(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """A viewer waiting on getstream gets 503 when the engine is unloaded."""
    engine_sim.getstream_hang = True
    client = await hass_client()
    request = asyncio.create_task(client.get(f"/api/acestream_proxy/stream/{CID}"))
    async with asyncio.timeout(5):
        while engine_sim.counters.getstream_calls == 0:
            await asyncio.sleep(0.02)
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    resp = await request
    assert resp.status == 503
    assert "unloaded" in await resp.text()
    engine_sim.getstream_hang = False


async def test_home_assistant_stop_stops_engine_sessions(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """Stopping Home Assistant ends the broadcasts and their engine sessions."""
    client = await hass_client()
    async with client.get(f"/api/acestream_proxy/stream/{CID}") as resp:
        await read_bytes(resp, 20_000)
        hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
        async with asyncio.timeout(5):
            while await resp.content.readany():
                pass
        await hass.async_block_till_done()
    assert engine_sim.counters.sessions_stopped == 1
    assert engine_sim.active_sessions() == 0
    assert get_hub(hass).broadcasts == {}
