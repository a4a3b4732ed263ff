"""Base entities: engine entities on the engine's device, broadcast entities on
a channel's (or an ad-hoc broadcast's) device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .channel import Channel
from .const import DOMAIN, SUBENTRY_CHANNEL
from .coordinator import EngineCoordinator
from .hub import (
    SIGNAL_UPDATED,
    BroadcastRecord,
    BroadcastTarget,
    StreamHub,
    channel_target,
    get_hub,
    signal_channels_changed,
    signal_new_broadcast,
)

if TYPE_CHECKING:
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .data import AceStreamConfigEntry


class EngineEntity(CoordinatorEntity[EngineCoordinator]):
    """An entity of one engine entry."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: EngineCoordinator, key: str) -> None:
        """Key the unique id on the entry id: the engine offers nothing stabler."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self._attr_translation_key = key
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        version = coordinator.data.version if coordinator.data else None
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            entry_type=DeviceEntryType.SERVICE,
            manufacturer="AceStream",
            model="AceStream engine",
            name=entry.title,
            sw_version=version,
            configuration_url=f"{coordinator.client.base_url}/webui/app/",
        )

    async def async_added_to_hass(self) -> None:
        """Also follow the hub's (rate-limited) broadcast updates."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(self.hass, SIGNAL_UPDATED, self._handle_hub_update)
        )

    @callback
    def _handle_hub_update(self) -> None:
        self.async_write_ha_state()


class BroadcastEntity(Entity):
    """An entity following one channel or ad-hoc broadcast, pushed by the hub.

    State is written only when the value changed, and the hub sends updates at most
    every couple of seconds, so a busy broadcast does not flood the recorder.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, hub: StreamHub, target: BroadcastTarget, key: str, engine_entry_id: str
    ) -> None:
        """Attach to ``target``; its device is the channel (or the broadcast)."""
        self.hub = hub
        self.target = target
        self._attr_translation_key = key
        self._attr_unique_id = f"{target.device_identifier}_{key}"
        device = DeviceInfo(
            identifiers={(DOMAIN, target.device_identifier)},
            name=target.name,
            manufacturer="AceStream",
            model="Channel" if target.subentry_id else "Broadcast",
            via_device=(DOMAIN, engine_entry_id),
        )
        self._attr_device_info = device
        self._last: Any = object()

    @property
    def record(self) -> BroadcastRecord | None:
        """The broadcast now playing for this target, if any."""
        return self.hub.record(self.target)

    async def async_added_to_hass(self) -> None:
        """Follow the hub."""
        self._last = self._snapshot()
        self.async_on_remove(
            async_dispatcher_connect(self.hass, SIGNAL_UPDATED, self._handle_update)
        )

    def _snapshot(self) -> Any:
        return (self.available, self.state, self.extra_state_attributes)

    @callback
    def _handle_update(self) -> None:
        snapshot = self._snapshot()
        if snapshot != self._last:
            self._last = snapshot
            self.async_write_ha_state()


type EntityFactory = Callable[[StreamHub, BroadcastTarget, str], Sequence[Entity]]


@callback
def async_setup_broadcast_platform(
    hass: HomeAssistant,
    entry: AceStreamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    factory: EntityFactory,
) -> None:
    """Entities for the entry's channels now and later, and for ad-hoc broadcasts."""
    hub = get_hub(hass)
    known: set[str] = set()

    @callback
    def add_channels() -> None:
        for subentry in entry.subentries.values():
            if (
                subentry.subentry_type != SUBENTRY_CHANNEL
                or subentry.subentry_id in known
            ):
                continue
            known.add(subentry.subentry_id)
            target = channel_target(
                subentry.subentry_id, Channel.from_data(subentry.data)
            )
            async_add_entities(
                factory(hub, target, entry.entry_id),
                config_subentry_id=subentry.subentry_id,
            )

    @callback
    def add_broadcast(target: BroadcastTarget) -> None:
        async_add_entities(factory(hub, target, entry.entry_id))

    add_channels()
    entry.async_on_unload(
        async_dispatcher_connect(
            hass, signal_channels_changed(entry.entry_id), add_channels
        )
    )
    entry.async_on_unload(
        async_dispatcher_connect(
            hass, signal_new_broadcast(entry.entry_id), add_broadcast
        )
    )
