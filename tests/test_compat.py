"""The device-registry gates: each leg runs these on the branch its release takes.

On Home Assistant 2026.8 and later the new device-registry API is taken (the
deprecation guard of conftest fails any test it would report); before it, the
old calls do the same work.
"""

from __future__ import annotations

from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy import compat
from custom_components.acestream_proxy.const import DOMAIN
from tests.deprecations import DeprecationGuard
from tests.helpers import device_entries


def test_gates_follow_the_running_release() -> None:
    """Found by what the release offers; all of them turned at 2026.8."""
    new = AwesomeVersion(HA_VERSION) >= AwesomeVersion("2026.8.0")
    assert compat.VIA_DEVICE_ID is new
    assert compat.SINGLE_ENTRY_DEVICES is new
    assert compat.LOOKUP_BY_ENTRY is new


async def test_via_engine_links_to_the_engine_device(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A device registered with ``via_engine`` has the engine's device as hub."""
    engine = compat.async_get_device(hass, loaded_entry.entry_id, loaded_entry.entry_id)
    assert engine is not None
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=loaded_entry.entry_id,
        **compat.via_engine(
            hass,
            dr.DeviceInfo(identifiers={(DOMAIN, "linked")}, name="Linked"),
            loaded_entry.entry_id,
        ),
    )
    assert device.via_device_id == engine.id


async def test_via_engine_of_an_engine_without_device(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """No engine device: 2026.8+ leaves the link out (a guess could be wrong);
    older releases carry the identifier, which they resolve (or drop) later."""
    info = dr.DeviceInfo(identifiers={(DOMAIN, "orphan")}, name="Orphan")
    linked = compat.via_engine(hass, info, "no-such-entry")
    if compat.VIA_DEVICE_ID:
        assert linked == info
    else:
        assert linked == {**info, "via_device": (DOMAIN, "no-such-entry")}


def _found_through_its_entry_only(
    hass: HomeAssistant, entry: MockConfigEntry, other: MockConfigEntry, name: str
) -> dr.DeviceEntry:
    """A new device ``name`` of ``entry``: found through it, not through ``other``."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, name)}
    )
    found = compat.async_get_device(hass, name, entry.entry_id)
    assert found is not None
    assert found.id == device.id
    assert compat.async_get_device(hass, name, other.entry_id) is None
    assert compat.async_get_device(hass, "nothing", entry.entry_id) is None
    return device


@pytest.fixture
def other_entry(hass: HomeAssistant) -> MockConfigEntry:
    """Another entry of ours, not set up."""
    other = MockConfigEntry(domain=DOMAIN, title="other")
    other.add_to_hass(hass)
    return other


async def test_lookup_is_per_config_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, other_entry: MockConfigEntry
) -> None:
    """A device is found through the entry that has it, not through another."""
    _found_through_its_entry_only(hass, loaded_entry, other_entry, "mine")


async def test_move_keeps_the_device_id(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    other_entry: MockConfigEntry,
) -> None:
    """A move changes the device's entry and hub; its id stays."""
    registry = dr.async_get(hass)
    hub = registry.async_get_or_create(
        config_entry_id=other_entry.entry_id,
        identifiers={(DOMAIN, other_entry.entry_id)},
    )
    device = registry.async_get_or_create(
        config_entry_id=loaded_entry.entry_id, identifiers={(DOMAIN, "moving")}
    )
    compat.async_move_device(
        hass, device.id, loaded_entry.entry_id, other_entry.entry_id, hub.id
    )
    moved = registry.async_get(device.id)
    assert moved is not None
    assert moved.via_device_id == hub.id
    assert device_entries(hass, moved) == {other_entry.entry_id}
    assert compat.async_get_device(hass, "moving", other_entry.entry_id) == moved
    assert compat.async_get_device(hass, "moving", loaded_entry.entry_id) is None


async def test_remove_device_of_entry(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The entry's device goes, and its entities with it."""
    registry = dr.async_get(hass)
    device = registry.async_get_or_create(
        config_entry_id=loaded_entry.entry_id, identifiers={(DOMAIN, "leaving")}
    )
    entity = er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        "leaving_viewers",
        config_entry=loaded_entry,
        device_id=device.id,
    )
    compat.async_remove_device_of_entry(hass, device.id, loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert registry.async_get(device.id) is None
    assert er.async_get(hass).async_get(entity.entity_id) is None


async def test_the_old_calls_still_do_the_work(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    deprecation_guard: DeprecationGuard,
    other_entry: MockConfigEntry,
) -> None:
    """Every gate forced to the old side: what 2025.x runs. From 2026.8 Home
    Assistant still honours these calls but reports them, which is why the gates
    exist: here (only here) those reports are the expected outcome, checked and
    then taken off the guard."""
    for gate in ("VIA_DEVICE_ID", "SINGLE_ENTRY_DEVICES", "LOOKUP_BY_ENTRY"):
        monkeypatch.setattr(compat, gate, False)
    info = dr.DeviceInfo(identifiers={(DOMAIN, "old")}, name="Old")
    linked = compat.via_engine(hass, info, loaded_entry.entry_id)
    assert linked == {**info, "via_device": (DOMAIN, loaded_entry.entry_id)}

    registry = dr.async_get(hass)
    device = _found_through_its_entry_only(hass, loaded_entry, other_entry, "old")

    compat.async_move_device(
        hass, device.id, loaded_entry.entry_id, other_entry.entry_id, None
    )
    moved = registry.async_get(device.id)
    assert moved is not None
    assert device_entries(hass, moved) == {other_entry.entry_id}

    compat.async_remove_device_of_entry(hass, device.id, other_entry.entry_id)
    assert registry.async_get(device.id) is None
    reports = list(deprecation_guard.problems)
    deprecation_guard.problems.clear()
    if AwesomeVersion(HA_VERSION) >= AwesomeVersion("2026.8.0"):
        assert reports
        assert all("acestream_proxy/compat.py" in report for report in reports)
    else:
        assert reports == []
