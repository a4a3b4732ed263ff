"""Stop button of every channel or playing broadcast."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity
from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .entity import BroadcastEntity, broadcast_platform

PARALLEL_UPDATES = 0


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


# A stop button per channel and per ad-hoc broadcast.
async_setup_entry = broadcast_platform(
    lambda hub, target, entry_id: [StopButton(hub, target, "stop", entry_id)]
)
