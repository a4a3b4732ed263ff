"""Devices: stale broadcast devices, user deletion, failover, channel edits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import (
    ConfigEntryState,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.acestream_proxy.const import DOMAIN, SUBENTRY_ACCESS_KEY
from custom_components.acestream_proxy.devices import adhoc_target, async_move_adhoc
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.ha_fixtures import (
    CID,
    CID2,
    PREFIX,
    Engines,
    add_channel,
    add_key,
    edit_channel,
    until,
)
from tests.helpers import (
    device_entries,
    find_device,
    read_bytes,
    read_for,
    strip_nulls,
)
from tests.simulator import EngineSimulator

STALE = "5e" * 20

type ClientFactory = Callable[[], Awaitable[TestClient]]


def _device(hass: HomeAssistant, identifier: str) -> dr.DeviceEntry | None:
    return find_device(hass, identifier)


def _entities(hass: HomeAssistant, device_id: str) -> list[er.RegistryEntry]:
    return er.async_entries_for_device(er.async_get(hass), device_id, True)


def _leftover(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    """What a crash leaves: an ad-hoc broadcast device with an entity, no broadcast."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, f"broadcast_{STALE}")},
        name=f"AceStream {STALE[:8]}",
    )
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        f"broadcast_{STALE}_viewers",
        config_entry=entry,
        device_id=device.id,
    )
    return device


async def test_crash_leftover_broadcast_device_removed_at_setup(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """A broadcast device (and its entities) with nothing playing goes at setup;
    the engine and channel devices stay."""
    config_entry.add_to_hass(hass)
    stale = _leftover(hass, config_entry)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    assert _device(hass, f"broadcast_{STALE}") is None
    assert _entities(hass, stale.id) == []
    assert (
        er.async_get(hass).async_get_entity_id(
            "sensor", DOMAIN, f"broadcast_{STALE}_viewers"
        )
        is None
    )
    assert _device(hass, config_entry.entry_id) is not None
    subentry_id = await add_channel(hass, config_entry, "Match")
    assert await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done()
    assert _device(hass, f"channel_{subentry_id}") is not None


async def _remove_device(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    entry: MockConfigEntry,
    device: dr.DeviceEntry,
) -> bool:
    """What the device page's Delete button does."""
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "config/device_registry/remove_config_entry",
            "config_entry_id": entry.entry_id,
            "device_id": device.id,
        }
    )
    response = await client.receive_json()
    await hass.async_block_till_done()
    return bool(response["success"])


async def test_user_deletes_only_stale_devices(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """A stale broadcast device can be deleted; the engine, a channel and a playing
    broadcast cannot."""
    assert await async_setup_component(hass, "config", {})
    stale = _leftover(hass, loaded_entry)
    assert await _remove_device(hass, hass_ws_client, loaded_entry, stale)
    assert _device(hass, f"broadcast_{STALE}") is None

    engine = _device(hass, loaded_entry.entry_id)
    assert engine is not None
    assert not await _remove_device(hass, hass_ws_client, loaded_entry, engine)
    subentry_id = await add_channel(hass, loaded_entry, "Match")
    channel = _device(hass, f"channel_{subentry_id}")
    assert channel is not None
    assert not await _remove_device(hass, hass_ws_client, loaded_entry, channel)

    infohash = engine_sim.infohash_for(CID2)
    client = await hass_client()
    async with client.get(f"{PREFIX}/stream/{CID2}") as resp:
        await read_bytes(resp, 20_000)
        playing = _device(hass, f"broadcast_{infohash}")
        assert playing is not None
        assert not await _remove_device(hass, hass_ws_client, loaded_entry, playing)
        assert _device(hass, f"broadcast_{infohash}") is not None
    await get_hub(hass).async_stop(ContentRef(ContentKind.INFOHASH, infohash))
    await hass.async_block_till_done()

    # A channel device whose channel is gone (here: its subentry removed while the
    # device was kept) may go too.
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        identifiers={(DOMAIN, "channel_gone")},
        name="Gone",
    )
    assert await _remove_device(hass, hass_ws_client, loaded_entry, other)
    # So may a device of ours that no code of ours knows (nothing would recreate it).
    unknown = dr.async_get(hass).async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        identifiers={("elsewhere", "x"), (DOMAIN, "older_kind")},
        name="Unknown",
    )
    assert await _remove_device(hass, hass_ws_client, loaded_entry, unknown)


@pytest.mark.parametrize("second_strict", [False])
async def test_adhoc_device_follows_its_broadcast_on_failover(
    hass: HomeAssistant, owner_client: TestClient, engines: Engines
) -> None:
    """The engine under an ad-hoc broadcast dies: its device (same id) and entities
    move to the entry of the engine that now serves it."""
    sims = engines.sims
    infohash = engines.first_sim.infohash_for(CID2)
    async with owner_client.get(f"{PREFIX}/stream/{CID2}") as resp:
        await read_bytes(resp, 50_000)
        hub = get_hub(hass)
        item = hub.broadcasts[infohash]
        serving = item.entry_id
        survivor = next(e for e in sims if e != serving)
        device = _device(hass, f"broadcast_{infohash}")
        assert device is not None
        assert device_entries(hass, device) == {serving}
        await sims[serving].stop()
        await until(lambda: item.entry_id == survivor, 10, 0.05)

        def moved() -> bool:
            current = _device(hass, f"broadcast_{infohash}")
            entities = _entities(hass, device.id)
            return (
                current is not None
                and device_entries(hass, current) == {survivor}
                and len(entities) == 8
                and all(e.config_entry_id == survivor for e in entities)
            )

        await until(moved, 10, 0.05)
        moved_device = _device(hass, f"broadcast_{infohash}")
        assert moved_device is not None
        assert moved_device.id == device.id
        engine_device = _device(hass, survivor)
        assert engine_device is not None
        assert moved_device.via_device_id == engine_device.id
        viewers = next(
            e.entity_id
            for e in _entities(hass, device.id)
            if e.translation_key == "viewers"
        )
        await until(
            lambda: getattr(hass.states.get(viewers), "state", "") == "1", 10, 0.05
        )
        # The viewer never noticed.
        assert strip_nulls(await read_for(resp, 1.0))
    await hub.async_stop(ContentRef(ContentKind.INFOHASH, infohash))
    await hass.async_block_till_done()
    assert _device(hass, f"broadcast_{infohash}") is None
    assert await hass.config_entries.async_unload(engines.second.entry_id)


async def test_move_of_a_broadcast_that_ended_meanwhile(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A failover move that runs after its broadcast ended leaves nothing behind."""
    target = adhoc_target(STALE)
    devices = dr.async_get(hass)
    before = dr.async_entries_for_config_entry(devices, loaded_entry.entry_id)
    await async_move_adhoc(hass, target, loaded_entry.entry_id, "other-entry")
    await hass.async_block_till_done()
    assert _device(hass, target.device_identifier) is None
    assert dr.async_entries_for_config_entry(devices, loaded_entry.entry_id) == before
    assert dr.async_entries_for_config_entry(devices, "other-entry") == []


async def test_renaming_a_playing_channel_does_not_cut_it(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
) -> None:
    """Editing a channel renames its device in place: no reload, the match goes on;
    a new id is followed by the channel's entities at once."""
    subentry_id = await add_channel(hass, loaded_entry, "Match")
    device = _device(hass, f"channel_{subentry_id}")
    assert device is not None
    status = next(
        e.entity_id for e in _entities(hass, device.id) if e.translation_key == "status"
    )
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        broadcaster = get_hub(hass).find(ContentRef(ContentKind.CONTENT_ID, CID))
        assert broadcaster is not None
        await until(
            lambda: getattr(hass.states.get(status), "state", "") == "playing", 10, 0.05
        )

        result = await edit_channel(
            hass, loaded_entry, subentry_id, name="Final", content=CID
        )
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert loaded_entry.state is ConfigEntryState.LOADED
        renamed = _device(hass, f"channel_{subentry_id}")
        assert renamed is not None
        assert renamed.name == "Final"
        assert renamed.id == device.id
        state = hass.states.get(status)
        assert state is not None
        assert state.attributes["friendly_name"] == "Final Status"
        assert state.state == "playing"
        assert broadcaster.name == "Final"
        # Same broadcast, same engine session, still streaming.
        assert get_hub(hass).find(ContentRef(ContentKind.CONTENT_ID, CID)) is (
            broadcaster
        )
        assert engine_sim.counters.sessions_opened == 1
        assert strip_nulls(await read_for(resp, 1.0))

        # Pointing the channel at another broadcast: its entities follow the new
        # one (idle), while the old broadcast plays on for its viewer.
        result = await edit_channel(
            hass, loaded_entry, subentry_id, name="Final", content=CID2
        )
        assert result["reason"] == "reconfigure_successful"
        await until(
            lambda: getattr(hass.states.get(status), "state", "") == "idle", 10, 0.05
        )
        assert loaded_entry.state is ConfigEntryState.LOADED
        assert strip_nulls(await read_for(resp, 1.0))
        assert engine_sim.counters.sessions_opened == 1


async def test_renamed_entity_ids_keep_working(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
) -> None:
    """Renaming an entity id in the UI re-adds the entity under the new id (on
    Home Assistant's side, not ours): engine, channel, ad-hoc broadcast and key
    entities come back available and go on following what they follow."""
    assert await async_setup_component(hass, "config", {})
    subentry_id = await add_channel(hass, loaded_entry, "Match")
    add_key(hass, loaded_entry, hass_admin_user.id, "Hall TV")
    await hass.async_block_till_done()
    ws = await hass_ws_client(hass)

    async def rename(identifier: str, key: str) -> str:
        device = _device(hass, identifier)
        assert device is not None
        old = next(
            e.entity_id for e in _entities(hass, device.id) if e.translation_key == key
        )
        new = f"{old}_renamed"
        await ws.send_json_auto_id(
            {
                "type": "config/entity_registry/update",
                "entity_id": old,
                "new_entity_id": new,
            }
        )
        assert (await ws.receive_json())["success"]
        await until(
            lambda: (
                getattr(hass.states.get(new), "state", "unavailable") != "unavailable"
            ),
            10,
            0.05,
        )
        assert hass.states.get(old) is None
        return new

    engine_count = await rename(loaded_entry.entry_id, "active_broadcasts")
    status = await rename(f"channel_{subentry_id}", "status")
    key_id = next(
        sub.subentry_id
        for sub in loaded_entry.subentries.values()
        if sub.subentry_type == SUBENTRY_ACCESS_KEY
    )
    key_streams = await rename(f"access_key_{key_id}", "key_streams")
    assert hass.states.get(status).state == "idle"
    assert hass.states.get(key_streams).state == "0"

    infohash = engine_sim.infohash_for(CID2)
    client = await hass_client()
    async with (
        client.get(f"{PREFIX}/stream/{CID}") as channel,
        client.get(f"{PREFIX}/stream/{CID2}") as adhoc,
    ):
        await read_bytes(channel, 20_000)
        await read_bytes(adhoc, 20_000)
        await until(
            lambda: getattr(hass.states.get(status), "state", "") == "playing", 10, 0.05
        )
        await until(
            lambda: getattr(hass.states.get(engine_count), "state", "") == "2", 10, 0.05
        )
        viewers = await rename(f"broadcast_{infohash}", "viewers")
        await until(
            lambda: getattr(hass.states.get(viewers), "state", "") == "1", 10, 0.05
        )
    await get_hub(hass).async_stop(ContentRef(ContentKind.INFOHASH, infohash))
    await get_hub(hass).async_stop(ContentRef(ContentKind.CONTENT_ID, CID))
    await until(
        lambda: getattr(hass.states.get(status), "state", "") == "idle", 10, 0.05
    )
    await until(
        lambda: getattr(hass.states.get(engine_count), "state", "") == "0", 10, 0.05
    )
