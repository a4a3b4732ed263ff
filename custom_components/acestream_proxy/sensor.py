"""Engine sensors, and the sensors of every channel or playing broadcast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfDataRate, UnitOfTime
from homeassistant.core import callback

from .access import get_keys, signal_keys_added
from .const import SUBENTRY_ACCESS_KEY
from .data import get_hub
from .entity import (
    AccessKeyEntity,
    BroadcastEntity,
    EngineEntity,
    async_setup_broadcast_platform,
    async_setup_subentry_entities,
)
from .recordings import get_recordings
from .stream.broadcast import BroadcastState

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

    from .coordinator import EngineCoordinator
    from .data import AceStreamConfigEntry
    from .devices import BroadcastTarget
    from .hub import StreamHub
    from .registry import BroadcastRecord
    from .stream.record import Recording

# Coordinator and push driven: nothing to parallelise.
PARALLEL_UPDATES = 0

STATUS_IDLE = "idle"
STATUS_RECORDING = "recording"
STATUS_OPTIONS = [
    STATUS_IDLE,
    BroadcastState.STARTING.value,
    BroadcastState.BUFFERING.value,
    BroadcastState.PLAYING.value,
    BroadcastState.LINGERING.value,
    BroadcastState.FAILED.value,
]


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AceStreamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the engine's sensors and those of its channels and broadcasts."""
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        [
            EngineVersionSensor(coordinator),
            EngineCountSensor(coordinator, "active_broadcasts"),
            EngineCountSensor(coordinator, "total_viewers"),
        ]
    )
    async_setup_broadcast_platform(hass, entry, async_add_entities, _broadcast_sensors)
    _async_setup_key_sensors(hass, entry, async_add_entities)


def _broadcast_sensors(
    hub: StreamHub, target: BroadcastTarget, entry_id: str
) -> list[BroadcastSensor]:
    return [
        *(
            BroadcastSensor(hub, target, description, entry_id)
            for description in BROADCAST_SENSORS
        ),
        RecordingSensor(hub, target, RECORDING_SENSOR, entry_id),
    ]


class EngineVersionSensor(EngineEntity, SensorEntity):
    """Version the engine reports."""

    _attr_entity_category = EntityCategory.DIAGNOSTIC

    def __init__(self, coordinator: EngineCoordinator) -> None:
        """Create the version sensor of ``coordinator``'s engine."""
        super().__init__(coordinator, "version")

    @property
    def native_value(self) -> str | None:
        """The engine's version string."""
        return self.coordinator.data.version if self.coordinator.data else None


class EngineCountSensor(EngineEntity, SensorEntity):
    """Broadcasts or viewers on this engine right now."""

    _attr_state_class = SensorStateClass.MEASUREMENT

    @property
    def native_value(self) -> int:
        """Counted by the hub."""
        hub = get_hub(self.hass)
        entry_id = self.coordinator.config_entry.entry_id
        if self.translation_key == "total_viewers":
            return hub.viewer_count(entry_id)
        return hub.broadcast_count(entry_id)


def _status(
    hub: StreamHub, target: BroadcastTarget, item: BroadcastRecord | None
) -> str:
    if item is None:
        return BroadcastState.FAILED.value if hub.failed(target) else STATUS_IDLE
    state = item.broadcaster.state
    return STATUS_IDLE if state is BroadcastState.STOPPED else state.value


def _bitrate(item: BroadcastRecord | None) -> int:
    # kbit/s rounded to 10: finer detail is noise in history graphs.
    return round(item.broadcaster.bitrate / 10_000) * 10 if item else 0


@dataclass(frozen=True, kw_only=True)
class BroadcastSensorDescription(SensorEntityDescription):
    """How a broadcast sensor reads its value."""

    value: Callable[[StreamHub, BroadcastTarget, BroadcastRecord | None], Any]
    # Read from the engine's stat_url: unavailable while that fails.
    engine_stat: bool = False


def _engine_stat(key: str, stat: str, **description: Any) -> BroadcastSensorDescription:
    """A measurement the engine's stat_url gives (``stat``: its field)."""

    def value(
        _hub: StreamHub, _target: BroadcastTarget, item: BroadcastRecord | None
    ) -> Any:
        if item is None or item.engine_stats is None:
            return None
        return getattr(item.engine_stats, stat)

    return BroadcastSensorDescription(
        key=key,
        translation_key=key,
        state_class=SensorStateClass.MEASUREMENT,
        value=value,
        engine_stat=True,
        **description,
    )


BROADCAST_SENSORS: tuple[BroadcastSensorDescription, ...] = (
    BroadcastSensorDescription(
        key="viewers",
        translation_key="viewers",
        state_class=SensorStateClass.MEASUREMENT,
        value=lambda _h, _t, item: item.broadcaster.viewer_count if item else 0,
    ),
    BroadcastSensorDescription(
        key="bitrate",
        translation_key="bitrate",
        device_class=SensorDeviceClass.DATA_RATE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfDataRate.KILOBITS_PER_SECOND,
        suggested_unit_of_measurement=UnitOfDataRate.MEGABITS_PER_SECOND,
        suggested_display_precision=2,
        value=lambda _h, _t, item: _bitrate(item),
    ),
    BroadcastSensorDescription(
        key="status",
        translation_key="status",
        device_class=SensorDeviceClass.ENUM,
        options=STATUS_OPTIONS,
        value=_status,
    ),
    _engine_stat("peers", "peers"),
    _engine_stat(
        "download_speed",
        "speed_down_kbps",
        device_class=SensorDeviceClass.DATA_RATE,
        native_unit_of_measurement=UnitOfDataRate.KILOBYTES_PER_SECOND,
    ),
    _engine_stat(
        "live_delay",
        "live_delay",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
    ),
)


class BroadcastSensor(BroadcastEntity, SensorEntity):
    """A number about one channel or broadcast."""

    entity_description: BroadcastSensorDescription

    def __init__(
        self,
        hub: StreamHub,
        target: BroadcastTarget,
        description: BroadcastSensorDescription,
        entry_id: str,
    ) -> None:
        """Describe the sensor."""
        self.entity_description = description
        super().__init__(hub, target, description.key, entry_id)

    @property
    def available(self) -> bool:
        """Engine statistics are unavailable (not unknown) while stat_url fails."""
        if not super().available:
            return False
        item = self.record
        return not (self.entity_description.engine_stat and item and item.stats_failed)

    @property
    def native_value(self) -> Any:
        """Read from the hub's live broadcast (or idle)."""
        return self.entity_description.value(self.hub, self.target, self.record)


class RecordingSensor(BroadcastSensor):
    """Whether the broadcast is being recorded, and its newest recording's file.

    Disabled by default: every channel's enabled entities count against Home
    Assistant's limit per entry (see MAX_CHANNELS_PER_ENGINE).
    """

    # Moving numbers: on the entity, not in the recorder's history.
    _unrecorded_attributes = frozenset({"bytes", "duration"})

    def _newest(self) -> Recording | None:
        item = self.record
        if item is None:
            return None
        running = get_recordings(self.hass).of(item.broadcaster.infohash)
        return max(running, key=lambda r: r.started_at, default=None)

    @property
    def native_value(self) -> str:
        """recording or idle."""
        return STATUS_RECORDING if self._newest() else STATUS_IDLE

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """The newest running recording: its file, bytes and seconds so far."""
        recording = self._newest()
        if recording is None:
            return None
        return {
            "file": str(recording.path),
            "bytes": recording.bytes_written,
            "duration": round(recording.seconds),
            "recordings": recording.broadcaster.recordings,
        }


RECORDING_SENSOR: Final = BroadcastSensorDescription(
    key="recording",
    translation_key="recording",
    device_class=SensorDeviceClass.ENUM,
    options=[STATUS_IDLE, STATUS_RECORDING],
    entity_registry_enabled_default=False,
    value=lambda _h, _t, _i: None,
)


@callback
def _async_setup_key_sensors(
    hass: HomeAssistant,
    entry: AceStreamConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """A device per app access key: when it was last used, what it streams now."""
    keys = get_keys(hass)
    async_setup_subentry_entities(
        hass,
        entry,
        async_add_entities,
        SUBENTRY_ACCESS_KEY,
        signal_keys_added(entry.entry_id),
        lambda subentry: [
            AccessKeyLastUsedSensor(keys, entry.entry_id, subentry),
            AccessKeyStreamsSensor(keys, entry.entry_id, subentry),
        ],
    )


class AccessKeyLastUsedSensor(AccessKeyEntity, RestoreSensor):
    """When an app last fetched its playlist or a stream (to the minute)."""

    _attr_translation_key = "last_used"
    _attr_device_class = SensorDeviceClass.TIMESTAMP
    _restored: dt.datetime | None = None

    async def async_added_to_hass(self) -> None:
        """Keep the last use across restarts."""
        if (data := await self.async_get_last_sensor_data()) is not None:
            value = data.native_value
            self._restored = value if isinstance(value, dt.datetime) else None
        await super().async_added_to_hass()

    @property
    def native_value(self) -> dt.datetime | None:
        """The newest use known."""
        return self.keys.last_used.get(self.subentry_id, self._restored)


class AccessKeyStreamsSensor(AccessKeyEntity, SensorEntity):
    """MPEG-TS streams open with the key now (a TV started watching: above 0)."""

    _attr_translation_key = "key_streams"
    _attr_state_class = SensorStateClass.MEASUREMENT

    @property
    def native_value(self) -> int:
        """Counted by the key registry."""
        return self.keys.stream_count(self.subentry_id)
