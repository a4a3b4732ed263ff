"""Runtime data: what each engine's config entry holds, and the domain-wide hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from .coordinator import EngineCoordinator
    from .hub import StreamHub
    from .stream.engine import EngineClient

type AceStreamConfigEntry = ConfigEntry[AceStreamData]

# Here rather than in hub.py: the hub's rooms reach it without importing the
# module that imports them.
HUB_KEY: HassKey[StreamHub] = HassKey(DOMAIN)


def get_hub(hass: HomeAssistant) -> StreamHub:
    """The hub created in async_setup."""
    return hass.data[HUB_KEY]


@dataclass(slots=True)
class AceStreamData:
    """What a loaded engine entry holds."""

    client: EngineClient
    coordinator: EngineCoordinator
    # Channel subentries as last seen, to tell additions from edits.
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    # An update listener run is waiting: a refresh that adds 1,500 channels
    # calls the listener once per channel, and one run after them all sees all.
    update_pending: bool = False
