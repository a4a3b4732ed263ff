"""Actions: record a broadcast into Home Assistant's media, stop recording."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID, ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .const import DOMAIN, LOGGER
from .hub import CapacityError, NoEngineError
from .playlist import iter_channels
from .recordings import (
    DEFAULT_TEMPLATE,
    MAX_DURATION,
    get_recordings,
    recording_path,
)
from .services import (
    _WHAT,
    ATTR_CHANNEL,
    ATTR_CONTENT_ID,
    ATTR_INFOHASH,
    _error,
    _resolve,
)
from .stream.broadcast import BroadcastClosedError, ViewerLimitError
from .stream.engine import ContentKind, ContentRef, EngineError

SERVICE_RECORD: Final = "record"
SERVICE_STOP_RECORDING: Final = "stop_recording"
ATTR_DURATION: Final = "duration"
ATTR_NAME: Final = "name"
ATTR_FOLDER: Final = "folder"
ATTR_RECORDING_ID: Final = "recording_id"

_TARGET: Final[dict[Any, Any]] = {**cv.TARGET_SERVICE_FIELDS, **_WHAT}
RECORD_SCHEMA: Final = vol.Schema(
    {
        **_TARGET,
        vol.Optional(ATTR_DURATION): cv.time_period,
        vol.Optional(ATTR_NAME): cv.string,
        vol.Optional(ATTR_FOLDER): cv.string,
    }
)
STOP_RECORDING_SCHEMA: Final = vol.Schema(
    {**_TARGET, vol.Optional(ATTR_RECORDING_ID): cv.string}
)


def _targeted(
    hass: HomeAssistant, data: dict[str, Any]
) -> tuple[ContentRef, str] | None:
    """The broadcast a channel's (or broadcast's) device or entity names."""
    devices = list(data.get(ATTR_DEVICE_ID) or [])
    entities = er.async_get(hass)
    for entity_id in data.get(ATTR_ENTITY_ID) or []:
        entity = entities.async_get(entity_id)
        if entity is None or entity.platform != DOMAIN or entity.device_id is None:
            raise _error("unknown_target", target=str(entity_id))
        devices.append(entity.device_id)
    if not devices:
        return None
    if len(set(devices)) > 1:
        raise _error("more_than_one", fields=", ".join(sorted(set(devices))))
    device = dr.async_get(hass).async_get(devices[0])
    if device is None:
        raise _error("unknown_target", target=devices[0])
    for domain, ident in device.identifiers:
        if domain != DOMAIN:
            continue
        if ident.startswith("broadcast_"):
            infohash = ident.removeprefix("broadcast_")
            return ContentRef(ContentKind.INFOHASH, infohash), device.name or infohash
        for _, subentry, channel in iter_channels(hass):
            if ident == f"channel_{subentry.subentry_id}":
                return channel.ref, channel.name
    raise _error("unknown_target", target=devices[0])


def _what(
    hass: HomeAssistant, data: dict[str, Any], missing: str
) -> tuple[ContentRef, str]:
    found = _targeted(hass, data)
    if found is None:
        return _resolve(hass, data, missing=missing)
    if named := [
        a for a in (ATTR_CHANNEL, ATTR_CONTENT_ID, ATTR_INFOHASH) if data.get(a)
    ]:
        raise _error("more_than_one", fields=", ".join(["target", *named]))
    return found


def _duration(data: dict[str, Any]) -> float | None:
    period: timedelta | None = data.get(ATTR_DURATION)
    if period is None:
        return None
    seconds = period.total_seconds()
    if seconds <= 0:
        raise _error("duration_not_positive")
    if seconds > MAX_DURATION:
        raise _error("duration_too_long", hours=str(int(MAX_DURATION // 3600)))
    return seconds


async def _async_record(call: ServiceCall) -> ServiceResponse:
    hass = call.hass
    data = dict(call.data)
    ref, name = _what(hass, data, missing="missing_what_to_record")
    # An id that a channel plays is recorded under the channel's name.
    name = next((c.name for _, _, c in iter_channels(hass) if c.ref == ref), name)
    duration = _duration(data)
    path = recording_path(
        hass,
        name,
        data.get(ATTR_NAME) or DEFAULT_TEMPLATE,
        data.get(ATTR_FOLDER),
        dt_util.now(),
    )
    try:
        recording = await get_recordings(hass).async_record(ref, name, path, duration)
    except (
        NoEngineError,
        CapacityError,
        EngineError,
        ViewerLimitError,
        BroadcastClosedError,
    ) as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="cannot_record",
            translation_placeholders={"name": name, "reason": str(err) or "closed"},
        ) from err
    return {ATTR_RECORDING_ID: recording.id, "path": str(recording.path)}


async def _async_stop_recording(call: ServiceCall) -> ServiceResponse:
    hass = call.hass
    data = dict(call.data)
    recordings = get_recordings(hass)
    if wanted := data.get(ATTR_RECORDING_ID):
        found = [r for r in recordings.running.values() if r.id == wanted.strip()]
    else:
        ref, _ = _what(hass, data, missing="missing_what_to_stop_recording")
        infohash = recordings.hub.infohash_of(ref)
        found = recordings.of(infohash) if infohash else []
    if not found:
        # As stop: stopping what already ended is done, not an error.
        LOGGER.info("Stop recording: nothing of that is recording")
    await recordings.async_stop(found)
    return {
        "stopped": [
            {
                ATTR_RECORDING_ID: r.id,
                "path": str(r.path),
                "reason": r.reason,
                "bytes": r.bytes_written,
                "duration": round(r.seconds, 1),
            }
            for r in found
        ]
    }


def async_register_record_services(hass: HomeAssistant) -> None:
    """Register the recording actions once, in async_setup."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_RECORD,
        _async_record,
        RECORD_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_STOP_RECORDING,
        _async_stop_recording,
        STOP_RECORDING_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
