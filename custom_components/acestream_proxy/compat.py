"""Where Home Assistant's API differs across the releases we support.

Every gate on the Home Assistant release lives here, named for what differs, so
the rest of the integration reads the same on every release, and each gate can
go once the oldest supported release has the newer behaviour. The oldest and the
newest test legs each run their side of every gate.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Final

from homeassistant.components.media_source import MediaSource
from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

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
    if ISSUE_CONFIG_ENTRY:  # pragma: no cover (2026.11+: no leg has it yet)
        kwargs["config_entry_id"] = config_entry_id
    ir.async_create_issue(hass, domain, issue_id, **kwargs)
