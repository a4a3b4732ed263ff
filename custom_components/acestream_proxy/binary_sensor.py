"""Engine connectivity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
)
from homeassistant.const import EntityCategory

from .entity import EngineEntity

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import EngineCoordinator
    from .data import AceStreamConfigEntry

# Coordinator-driven: no per-entity updates to parallelise.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AceStreamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connectivity sensor of the engine."""
    async_add_entities([EngineConnectivity(entry.runtime_data.coordinator)])


class EngineConnectivity(EngineEntity, BinarySensorEntity):
    """On while the engine answers; stays available so 'off' is visible."""

    _attr_device_class = BinarySensorDeviceClass.CONNECTIVITY
    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator: EngineCoordinator) -> None:
        """Create the sensor of ``coordinator``'s engine."""
        super().__init__(coordinator, "connectivity")

    @property
    def available(self) -> bool:
        """A connectivity sensor reports the outage itself instead of vanishing."""
        return True

    @property
    def is_on(self) -> bool:
        """Whether the last health check succeeded."""
        return self.coordinator.last_update_success
