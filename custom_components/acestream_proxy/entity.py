"""Base entities: engine entities on the engine's device, broadcast entities on
a channel's (or an ad-hoc broadcast's) device."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .access import SIGNAL_KEYS_UPDATED, AccessKeys
from .channel import Channel
from .compat import via_engine
from .const import DOMAIN, SUBENTRY_CHANNEL
from .coordinator import EngineCoordinator
from .data import get_hub
from .devices import (
    ADHOC_ENTITIES,
    BroadcastTarget,
    channel_target,
    engine_device_info,
    signal_channel_edited,
    signal_channels_changed,
    signal_new_broadcast,
    target_device_info,
)
from .updates import SIGNAL_UPDATED

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigSubentry
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .data import AceStreamConfigEntry
    from .hub import StreamHub
    from .registry import BroadcastRecord


class EngineEntity(CoordinatorEntity[EngineCoordinator]):
    """An entity of one engine entry."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: EngineCoordinator, key: str) -> None:
        """Key the unique id on the entry id: the engine offers nothing stabler."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self._attr_translation_key = key
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        self._attr_device_info = engine_device_info(coordinator)

    async def async_added_to_hass(self) -> None:
        """Also follow the hub's (rate-limited) broadcast updates."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(self.hass, SIGNAL_UPDATED, self._handle_hub_update)
        )

    @callback
    def _handle_hub_update(self) -> None:
        self.async_write_ha_state()


class PushedEntity(Entity):
    """An entity a dispatcher signal pushes.

    Its state is written only when what it shows changed, so a signal sent often
    (a busy broadcast, an app fetching every few seconds) does not flood the
    recorder.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False
    _last: Any

    def _snapshot(self) -> Any:
        return (self.available, self.state, self.extra_state_attributes)

    @callback
    def _follow(self, signal: str) -> None:
        """Write the state on ``signal`` from now on, when it changed."""
        self._last = self._snapshot()
        self.async_on_remove(
            async_dispatcher_connect(self.hass, signal, self._handle_update)
        )

    @callback
    def _handle_update(self) -> None:
        snapshot = self._snapshot()
        if snapshot != self._last:
            self._last = snapshot
            self.async_write_ha_state()


class BroadcastEntity(PushedEntity):
    """An entity following one channel or ad-hoc broadcast, pushed by the hub
    (at most every couple of seconds)."""

    def __init__(
        self, hub: StreamHub, target: BroadcastTarget, key: str, engine_entry_id: str
    ) -> None:
        """Attach to ``target``; its device is the channel (or the broadcast)."""
        self.hub = hub
        self.target = target
        self.engine_entry_id = engine_entry_id
        self._attr_translation_key = key
        self._attr_unique_id = f"{target.device_identifier}_{key}"
        self._attr_device_info = target_device_info(hub.hass, target, engine_entry_id)

    @property
    def record(self) -> BroadcastRecord | None:
        """The broadcast now playing for this target, if any."""
        return self.hub.record(self.target)

    @property
    def available(self) -> bool:
        """Only while the engine under it is loaded and answers.

        That is the engine playing the broadcast, or (nothing playing) the engine
        entry the channel or ad-hoc broadcast belongs to.
        """
        item = self.record
        engine = self.hub.engines.get(item.entry_id if item else self.engine_entry_id)
        return (
            engine is not None and engine.runtime_data.coordinator.last_update_success
        )

    async def async_added_to_hass(self) -> None:
        """Follow the hub, and edits of the channel."""
        self._follow(SIGNAL_UPDATED)
        if self.target.subentry_id is not None:
            self.async_on_remove(
                async_dispatcher_connect(
                    self.hass,
                    signal_channel_edited(self.target.subentry_id),
                    self._handle_edit,
                )
            )
        else:
            live = self.hass.data.setdefault(ADHOC_ENTITIES, {})
            live.setdefault(self.target.device_identifier, set()).add(self)
            self.async_on_remove(
                lambda: live[self.target.device_identifier].discard(self)
            )

    @property
    def entity_picture(self) -> str | None:
        """A channel's logo (its source playlist's tvg-logo)."""
        if self.target.subentry_id is None:
            return None
        entry = self.hass.config_entries.async_get_entry(self.engine_entry_id)
        subentry = entry.subentries.get(self.target.subentry_id) if entry else None
        if subentry is None or subentry.subentry_type != SUBENTRY_CHANNEL:
            return None
        return Channel.from_data(subentry.data).picture

    def _snapshot(self) -> Any:
        return (*super()._snapshot(), self.entity_picture)

    @callback
    def _handle_edit(self, target: BroadcastTarget) -> None:
        """The channel now plays another id (its name is on the device)."""
        self.target = target
        self._handle_update()


type EntityFactory = Callable[[StreamHub, BroadcastTarget, str], Sequence[Entity]]
type PlatformSetup = Callable[
    [HomeAssistant, AceStreamConfigEntry, AddConfigEntryEntitiesCallback],
    Coroutine[Any, Any, None],
]


@callback
def async_setup_subentry_entities(
    hass: HomeAssistant,
    entry: AceStreamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    subentry_type: str,
    added: str,
    factory: Callable[[ConfigSubentry], Sequence[Entity]],
) -> None:
    """Entities for each subentry of a type, now and whenever the ``added``
    signal says some were added."""
    known: set[str] = set()

    @callback
    def add() -> None:
        for subentry in entry.subentries.values():
            if subentry.subentry_type != subentry_type or subentry.subentry_id in known:
                continue
            known.add(subentry.subentry_id)
            async_add_entities(
                factory(subentry), config_subentry_id=subentry.subentry_id
            )

    add()
    entry.async_on_unload(async_dispatcher_connect(hass, added, add))


def broadcast_platform(factory: EntityFactory) -> PlatformSetup:
    """The async_setup_entry of a platform with broadcast entities only."""

    async def async_setup_entry(
        hass: HomeAssistant,
        entry: AceStreamConfigEntry,
        async_add_entities: AddConfigEntryEntitiesCallback,
    ) -> None:
        async_setup_broadcast_platform(hass, entry, async_add_entities, factory)

    return async_setup_entry


@callback
def async_setup_broadcast_platform(
    hass: HomeAssistant,
    entry: AceStreamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    factory: EntityFactory,
) -> None:
    """Entities for the entry's channels now and later, and for ad-hoc broadcasts."""
    hub = get_hub(hass)
    async_setup_subentry_entities(
        hass,
        entry,
        async_add_entities,
        SUBENTRY_CHANNEL,
        signal_channels_changed(entry.entry_id),
        lambda subentry: factory(
            hub,
            channel_target(subentry.subentry_id, Channel.from_data(subentry.data)),
            entry.entry_id,
        ),
    )

    @callback
    def add_broadcast(target: BroadcastTarget) -> None:
        async_add_entities(factory(hub, target, entry.entry_id))

    entry.async_on_unload(
        async_dispatcher_connect(
            hass, signal_new_broadcast(entry.entry_id), add_broadcast
        )
    )


class AccessKeyEntity(PushedEntity):
    """An entity of one app access key's device, pushed when the key is used.

    Each kind names itself by its ``_attr_translation_key``.
    """

    _attr_translation_key: str

    def __init__(
        self, keys: AccessKeys, entry_id: str, subentry: ConfigSubentry
    ) -> None:
        """Attach to the key's device (never to its secret)."""
        self.keys = keys
        self.subentry_id = subentry.subentry_id
        self._attr_unique_id = (
            f"access_key_{subentry.subentry_id}_{self._attr_translation_key}"
        )
        self._attr_device_info = via_engine(
            keys.hass,
            DeviceInfo(
                identifiers={(DOMAIN, f"access_key_{subentry.subentry_id}")},
                name=subentry.title,
                manufacturer="AceStream Proxy",
                model="App access key",
                entry_type=DeviceEntryType.SERVICE,
            ),
            entry_id,
        )

    async def async_added_to_hass(self) -> None:
        """Follow the key's uses."""
        await super().async_added_to_hass()
        self._follow(SIGNAL_KEYS_UPDATED)
