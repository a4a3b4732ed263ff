"""Stop button of every channel or playing broadcast."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.button import ButtonEntity
from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .entity import BroadcastEntity, async_setup_broadcast_platform

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .data import AceStreamConfigEntry

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AceStreamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a stop button per channel and per ad-hoc broadcast."""
    async_setup_broadcast_platform(
        hass,
        entry,
        async_add_entities,
        lambda hub, target, entry_id: [StopButton(hub, target, "stop", entry_id)],
    )


class StopButton(BroadcastEntity, ButtonEntity):
    """Stop the broadcast now: viewers are ended and the engine session stopped."""

    async def async_press(self) -> None:
        """Stop, or say it is not playing."""
        if not await self.hub.async_stop(self.target.ref):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_playing",
                translation_placeholders={"name": self.target.name},
            )
