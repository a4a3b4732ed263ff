"""Runtime data stored on each engine's config entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .coordinator import EngineCoordinator
    from .stream.engine import EngineClient

type AceStreamConfigEntry = ConfigEntry[AceStreamData]


@dataclass(slots=True)
class AceStreamData:
    """What a loaded engine entry holds."""

    client: EngineClient
    coordinator: EngineCoordinator
    # Channel subentries as last seen, to tell additions from edits.
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
