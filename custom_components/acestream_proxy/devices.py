"""Device registry upkeep.

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

from .const import DOMAIN
from .entity import ADHOC_ENTITIES, signal_channel_edited
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
def async_remove_stale_devices(
    hass: HomeAssistant, entry: AceStreamConfigEntry
) -> None:
    """Take this entry off the ad-hoc broadcast devices nothing plays on it."""
    registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        if any(
            domain == DOMAIN
            and ident.startswith(BROADCAST_PREFIX)
            and not _plays_on(hass, ident, entry.entry_id)
            for domain, ident in device.identifiers
        ):
            # Removes the device (and its entities) when no other entry has it.
            registry.async_update_device(
                device.id, remove_config_entry_id=entry.entry_id
            )


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
    registry = dr.async_get(hass)
    device = registry.async_get_device(identifiers={(DOMAIN, target.device_identifier)})
    if device is None:
        return  # the broadcast ended meanwhile
    engine = registry.async_get_device(identifiers={(DOMAIN, to_entry_id)})
    registry.async_update_device(
        device.id,
        add_config_entry_id=to_entry_id,
        via_device_id=engine.id if engine else None,
    )
    registry.async_update_device(device.id, remove_config_entry_id=from_entry_id)
    async_dispatcher_send(hass, signal_new_broadcast(to_entry_id), target)


@callback
def async_channel_edited(
    hass: HomeAssistant, subentry_id: str, channel: Channel
) -> None:
    """Rename the channel's device and point its entities at what it plays now.

    No reload: a broadcast playing under the old name goes on.
    """
    target = channel_target(subentry_id, channel)
    registry = dr.async_get(hass)
    device = registry.async_get_device(identifiers={(DOMAIN, target.device_identifier)})
    if device is not None and device.name != channel.name:
        registry.async_update_device(device.id, name=channel.name)
    if (item := get_hub(hass).record(target)) is not None:
        item.broadcaster.name = channel.name
    async_dispatcher_send(hass, signal_channel_edited(subentry_id), target)
