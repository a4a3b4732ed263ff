"""Where Home Assistant's API differs across the releases we support.

Every gate on the Home Assistant release lives here, named for what differs, so
the rest of the integration reads the same on every release, and each gate can
go once the oldest supported release has the newer behaviour. The oldest and the
newest test legs each run their side of every gate.

Device registry (2026.8): a device belongs to one config entry, its identifiers
are unique within that entry only, it links to its hub by device id
(``via_device_id``) and moves between entries with ``new_config_entry_id``. The
older calls still work there but are reported, and under core's frame (an entity
re-added after the user changed its entity id) the report raises. These gates are
found by what the release offers (a method, a parameter), not by its version.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
import inspect
from typing import Any, Final, Protocol, cast

from homeassistant.components.media_source import MediaSource
from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.device_registry import DeviceInfo

from .const import DOMAIN

HA_VERSION: Final = (MAJOR_VERSION, MINOR_VERSION)

# 2026.10: the REST API answers a ServiceValidationError with HTTP 400 and its
# message. Before, vol.Invalid was a 400 (without the message) and a
# ServiceValidationError a 500 with a traceback in the log.
REST_SHOWS_VALIDATION_ERRORS: Final = HA_VERSION >= (2026, 10)


def addon_slugs(hass: HomeAssistant) -> list[str] | None:
    """The installed add-ons' slugs; None while the Supervisor's data loads.

    From 2026.8 get_addons_info raises HassioNotReadyError until the first
    add-on refresh; before, it returned None.
    """
    # Imported here: the hassio integration is only loaded under the Supervisor.
    from homeassistant.components import hassio  # noqa: PLC0415
    from homeassistant.components.hassio.coordinator import (  # noqa: PLC0415
        get_addons_info,
    )

    not_ready = getattr(hassio, "HassioNotReadyError", ())
    try:
        info = get_addons_info(hass)
    except not_ready:  # pragma: no cover (2026.8+: the newest leg runs it)
        return None
    return None if info is None else sorted(info)


# Media sources can be searched (MediaSource.async_search_media, BrowseMedia's
# can_search, the media_source/search_media command) from a 2026 release; 2026.2
# cannot. Tested by the feature, not a version: BrowseMedia refuses can_search
# where search is missing.
MEDIA_SEARCH: Final = hasattr(MediaSource, "async_search_media")

# Re-exported for media_source.py, which needs them only where they exist.
with contextlib.suppress(ImportError):
    from homeassistant.components.media_player import (  # type: ignore[attr-defined,unused-ignore]
        SearchMedia as SearchMedia,  # noqa: PLC0414
        SearchMediaQuery as SearchMediaQuery,  # noqa: PLC0414
    )


def searchable() -> dict[str, bool]:
    """Keyword arguments marking a browse node as searchable, where that exists."""
    return {"can_search": True} if MEDIA_SEARCH else {}


# 2026.11: an issue can name its config entry; Home Assistant then deletes it with
# the entry and hides it while the entry is disabled. Before, the integration
# deletes its own when the entry is removed (async_remove_entry).
ISSUE_CONFIG_ENTRY: Final = (
    "config_entry_id" in inspect.signature(ir.async_create_issue).parameters
)


def async_create_issue(
    hass: HomeAssistant,
    domain: str,
    issue_id: str,
    *,
    config_entry_id: str,
    **kwargs: Any,
) -> None:
    """ir.async_create_issue, linked to ``config_entry_id`` where supported (the
    same name, so the translation check reads its calls like Home Assistant's)."""
    if ISSUE_CONFIG_ENTRY:  # pragma: no cover (2026.11+: make check-release runs it)
        kwargs["config_entry_id"] = config_entry_id
    ir.async_create_issue(hass, domain, issue_id, **kwargs)


def _accepts(method: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(method).parameters


# Device registry gates; before 2026.8 every one of them is False.
VIA_DEVICE_ID: Final = _accepts(dr.DeviceRegistry.async_get_or_create, "via_device_id")
"""A device's hub is given by device id; ``via_device`` identifiers are reported."""
SINGLE_ENTRY_DEVICES: Final = _accepts(
    dr.DeviceRegistry.async_update_device, "new_config_entry_id"
)
"""A device has one config entry and moves with ``new_config_entry_id``."""
LOOKUP_BY_ENTRY: Final = hasattr(dr.DeviceRegistry, "async_get_device_by_identifier")
"""Identifiers are looked up within a config entry; ``async_get_device`` is reported."""


class _EntryScopedRegistry(Protocol):
    """The 2026.8 device-registry calls the oldest release we support lacks."""

    def async_get_device_by_identifier(
        self, identifier: tuple[str, str], config_entry_id: str
    ) -> dr.DeviceEntry | None:
        """The device with this identifier in this config entry."""

    def async_update_device(
        self, device_id: str, *, new_config_entry_id: str, via_device_id: str | None
    ) -> dr.DeviceEntry | None:
        """Move a device to another config entry (and hub)."""


@callback
def async_get_device(
    hass: HomeAssistant, identifier: str, config_entry_id: str
) -> dr.DeviceEntry | None:
    """Our device with this identifier, if the config entry has it."""
    registry = dr.async_get(hass)
    if LOOKUP_BY_ENTRY:  # pragma: no cover (2026.8+: the newest leg runs it)
        return cast("_EntryScopedRegistry", registry).async_get_device_by_identifier(
            (DOMAIN, identifier), config_entry_id
        )
    device = registry.async_get_device(identifiers={(DOMAIN, identifier)})
    if device is None or config_entry_id not in device.config_entries:
        return None
    return device


@callback
def via_engine(
    hass: HomeAssistant, device_info: DeviceInfo, engine_entry_id: str
) -> DeviceInfo:
    """``device_info`` linked to the device of an engine entry.

    The engine's device is registered when its entry sets up, before any entity
    or broadcast of the entry names it as hub.
    """
    if VIA_DEVICE_ID:  # pragma: no cover (2026.8+: the newest leg runs it)
        engine = async_get_device(hass, engine_entry_id, engine_entry_id)
        if engine is None:
            # Setup registers it first; should that ever fail, no link beats a
            # report that would stop the entity from being added.
            return device_info
        return cast("DeviceInfo", {**device_info, "via_device_id": engine.id})
    return DeviceInfo(**device_info, via_device=(DOMAIN, engine_entry_id))


@callback
def async_move_device(
    hass: HomeAssistant,
    device_id: str,
    from_entry_id: str,
    to_entry_id: str,
    via_device_id: str | None,
) -> None:
    """Move a device from one config entry to another, keeping its id."""
    registry = dr.async_get(hass)
    if SINGLE_ENTRY_DEVICES:  # pragma: no cover (2026.8+: the newest leg runs it)
        cast("_EntryScopedRegistry", registry).async_update_device(
            device_id, new_config_entry_id=to_entry_id, via_device_id=via_device_id
        )
        return
    registry.async_update_device(
        device_id, add_config_entry_id=to_entry_id, via_device_id=via_device_id
    )
    registry.async_update_device(device_id, remove_config_entry_id=from_entry_id)


@callback
def async_remove_device_of_entry(
    hass: HomeAssistant, device_id: str, config_entry_id: str
) -> None:
    """Take a device off a config entry: it goes unless another entry has it.

    Before 2026.8 a device another engine entry registered too is shared, and
    stays for that entry; from 2026.8 each entry has a device of its own.
    """
    registry = dr.async_get(hass)
    if SINGLE_ENTRY_DEVICES:  # pragma: no cover (2026.8+: the newest leg runs it)
        registry.async_remove_device(device_id)
        return
    registry.async_update_device(device_id, remove_config_entry_id=config_entry_id)
