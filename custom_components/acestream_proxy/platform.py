"""Adding broadcast entities: for each channel, and for ad-hoc broadcasts as they start."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity

from .channel import Channel
from .const import SUBENTRY_CHANNEL
from .hub import (
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
