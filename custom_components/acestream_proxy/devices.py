"""Device registry upkeep.

An engine entry's device is registered when the entry sets up, so the devices
of its channels, keys and broadcasts can name it as their hub by device id.
Ad-hoc broadcast devices (a broadcast that is no channel gets one while it plays)
are removed when the broadcast ends; the ones a crash left behind are removed at
setup or by the user, and a failover moves one to the engine entry now serving it.
Channel devices are renamed in place when their channel is edited.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_send

from .compat import (
    async_get_device,
    async_move_device,
    async_remove_device_of_entry,
)
from .const import DOMAIN
from .entity import ADHOC_ENTITIES, engine_device_info, signal_channel_edited
from .hub import channel_target, get_hub, signal_new_broadcast

if TYPE_CHECKING:
    from .channel import Channel
    from .data import AceStreamConfigEntry
    from .hub import BroadcastTarget

CHANNEL_PREFIX: Final = "channel_"
BROADCAST_PREFIX: Final = "broadcast_"
ACCESS_KEY_PREFIX: Final = "access_key_"


def _plays_on(hass: HomeAssistant, identifier: str, entry_id: str) -> bool:
    """Whether the ad-hoc broadcast of a device identifier plays on this entry."""
    item = get_hub(hass).broadcasts.get(identifier.removeprefix(BROADCAST_PREFIX))
    return (
        item is not None and not item.broadcaster.closed and item.entry_id == entry_id
    )


@callback
def async_setup_devices(hass: HomeAssistant, entry: AceStreamConfigEntry) -> None:
    """Register the engine's device; drop the broadcast devices a crash left."""
    registry = dr.async_get(hass)
    registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        **engine_device_info(entry.runtime_data.coordinator),
    )
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if any(
            domain == DOMAIN
            and ident.startswith(BROADCAST_PREFIX)
            and not _plays_on(hass, ident, entry.entry_id)
            for domain, ident in device.identifiers
        ):
            async_remove_device_of_entry(hass, device.id, entry.entry_id)


@callback
def device_is_removable(
    hass: HomeAssistant, entry: AceStreamConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Stale devices may be deleted by the user; live ones and the engine not."""
    for domain, ident in device.identifiers:
        if domain != DOMAIN:
            continue
        if ident == entry.entry_id:
            return False  # the engine itself: delete the entry instead
        if ident.startswith(CHANNEL_PREFIX):
            return ident.removeprefix(CHANNEL_PREFIX) not in entry.subentries
        if ident.startswith(ACCESS_KEY_PREFIX):
            return ident.removeprefix(ACCESS_KEY_PREFIX) not in entry.subentries
        if ident.startswith(BROADCAST_PREFIX):
            return not _plays_on(hass, ident, entry.entry_id)
    return True


async def async_move_adhoc(
    hass: HomeAssistant, target: BroadcastTarget, from_entry_id: str, to_entry_id: str
) -> None:
    """An ad-hoc broadcast failed over: its device and entities follow it.

    The old entry's entities go first (same unique ids), then the device changes
    entry and the new entry's platforms add their entities. The device keeps its
    id, so automations on it keep working.
    """
    live = hass.data.get(ADHOC_ENTITIES, {}).get(target.device_identifier, set())
    old = [entity for entity in live if entity.engine_entry_id == from_entry_id]
    await asyncio.gather(*(entity.async_remove(force_remove=True) for entity in old))
    entities = er.async_get(hass)
    for entity in old:
        if entities.async_get(entity.entity_id) is not None:
            entities.async_remove(entity.entity_id)
    item = get_hub(hass).record(target)
    if item is None or item.adhoc_device_id is None:
        return  # the broadcast ended meanwhile
    engine = async_get_device(hass, to_entry_id, to_entry_id)
    async_move_device(
        hass,
        item.adhoc_device_id,
        from_entry_id,
        to_entry_id,
        engine.id if engine else None,
    )
    async_dispatcher_send(hass, signal_new_broadcast(to_entry_id), target)


@callback
def async_channel_edited(
    hass: HomeAssistant, entry_id: str, subentry_id: str, channel: Channel
) -> None:
    """Rename the channel's device and point its entities at what it plays now.

    No reload: a broadcast playing under the old name goes on.
    """
    target = channel_target(subentry_id, channel)
    device = async_get_device(hass, target.device_identifier, entry_id)
    if device is not None and device.name != channel.name:
        dr.async_get(hass).async_update_device(device.id, name=channel.name)
    if (item := get_hub(hass).record(target)) is not None:
        item.broadcaster.name = channel.name
    async_dispatcher_send(hass, signal_channel_edited(subentry_id), target)
