"""Devices, and the broadcast entities on them, kept in step with what plays.

An engine entry's device is registered when the entry sets up, so the devices
of its channels, keys and broadcasts can name it as their hub by device id.
A channel's broadcast entities live on the channel's device; a broadcast that is
no channel gets a device of its own (ad-hoc) while it plays, with the same
entities. Ad-hoc devices are removed when the broadcast ends; the ones a crash
left behind are removed at setup or by the user, and a failover moves one to the
engine entry now serving it. Channel devices are renamed in place when their
channel is edited.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.util.hass_dict import HassKey

from .compat import (
    async_get_device,
    async_move_device,
    async_remove_device_of_entry,
    via_engine,
)
from .const import DOMAIN
from .data import get_hub
from .playlist import iter_channels
from .stream.engine import ContentKind, ContentRef

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry, ConfigSubentry

    from .channel import Channel
    from .coordinator import EngineCoordinator
    from .data import AceStreamConfigEntry
    from .entity import BroadcastEntity
    from .registry import BroadcastRegistry
    from .stream.broadcast import Broadcaster

CHANNEL_PREFIX: Final = "channel_"
BROADCAST_PREFIX: Final = "broadcast_"
ACCESS_KEY_PREFIX: Final = "access_key_"


@dataclass(frozen=True, slots=True)
class BroadcastTarget:
    """What a set of broadcast entities follows: a channel, or one ad-hoc infohash."""

    ref: ContentRef
    device_identifier: str
    name: str
    subentry_id: str | None = None


def channel_target(subentry_id: str, channel: Channel) -> BroadcastTarget:
    """The target of a configured channel."""
    return BroadcastTarget(
        channel.ref, f"{CHANNEL_PREFIX}{subentry_id}", channel.name, subentry_id
    )


def adhoc_target(infohash: str) -> BroadcastTarget:
    """The target of a broadcast that is not a channel (while it plays)."""
    return BroadcastTarget(
        ContentRef(ContentKind.INFOHASH, infohash),
        f"{BROADCAST_PREFIX}{infohash}",
        f"AceStream {infohash[:8]}",
    )


# Dispatcher signal: an ad-hoc broadcast moved to another engine entry
# (target, from entry id, to entry id); its device and entities follow it.
SIGNAL_ADHOC_MOVED: Final = f"{DOMAIN}_adhoc_moved"

# Ad-hoc broadcast entities alive now, by device identifier: on a failover the old
# engine entry's ones are removed before the new entry's platforms add theirs.
ADHOC_ENTITIES: HassKey[dict[str, set[BroadcastEntity]]] = HassKey(
    f"{DOMAIN}_adhoc_entities"
)


def signal_channels_changed(entry_id: str) -> str:
    """Dispatcher signal: channels were added to this entry."""
    return f"{DOMAIN}_channels_changed_{entry_id}"


def signal_new_broadcast(entry_id: str) -> str:
    """Dispatcher signal: an ad-hoc broadcast on this engine needs entities."""
    return f"{DOMAIN}_new_broadcast_{entry_id}"


def signal_channel_edited(subentry_id: str) -> str:
    """Dispatcher signal: a channel was edited; carries its new BroadcastTarget."""
    return f"{DOMAIN}_channel_edited_{subentry_id}"


def engine_device_info(coordinator: EngineCoordinator) -> DeviceInfo:
    """The device of an engine entry (registered at setup, before its entities)."""
    entry = coordinator.config_entry
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        entry_type=DeviceEntryType.SERVICE,
        manufacturer="AceStream",
        model="AceStream engine",
        name=entry.title,
        sw_version=coordinator.data.version if coordinator.data else None,
        configuration_url=f"{coordinator.client.base_url}/webui/app/",
    )


def target_device_info(
    hass: HomeAssistant, target: BroadcastTarget, engine_entry_id: str
) -> DeviceInfo:
    """The device of a channel or ad-hoc broadcast, under its engine's."""
    return via_engine(
        hass,
        DeviceInfo(
            identifiers={(DOMAIN, target.device_identifier)},
            name=target.name,
            manufacturer="AceStream",
            model="Channel" if target.subentry_id else "Broadcast",
        ),
        engine_entry_id,
    )


def channel_of(
    hass: HomeAssistant, registry: BroadcastRegistry, broadcaster: Broadcaster
) -> tuple[ConfigEntry, ConfigSubentry, Channel] | None:
    """The configured channel a broadcast plays, with its entry, if any."""
    for entry, subentry, channel in iter_channels(hass):
        if (
            channel.ref == broadcaster.content
            or registry.infohash_of(channel.ref) == broadcaster.infohash
        ):
            return entry, subentry, channel
    return None


def target_for(
    hass: HomeAssistant, registry: BroadcastRegistry, broadcaster: Broadcaster
) -> BroadcastTarget:
    """What a broadcast's entities follow: its channel, or the broadcast itself."""
    found = channel_of(hass, registry, broadcaster)
    if found is not None:
        return channel_target(found[1].subentry_id, found[2])
    return adhoc_target(broadcaster.infohash)


@callback
def async_adhoc_started(hass: HomeAssistant, entry_id: str, infohash: str) -> str:
    """A broadcast that is no channel plays: its device (returned) and entities."""
    target = adhoc_target(infohash)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry_id, **target_device_info(hass, target, entry_id)
    )
    async_dispatcher_send(hass, signal_new_broadcast(entry_id), target)
    return device.id


@callback
def async_adhoc_ended(hass: HomeAssistant, device_id: str) -> None:
    """An ad-hoc broadcast ended: its device goes, and its entities with it."""
    dr.async_get(hass).async_remove_device(device_id)


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
