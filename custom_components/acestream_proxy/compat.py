"""Where Home Assistant's API differs across the releases we support.

Every gate on the Home Assistant release lives here, named for what differs, so
the rest of the integration reads the same on every release, and each gate can
go once the oldest supported release has the newer behaviour. The oldest and the
newest test legs each run their side of every gate.
"""

from __future__ import annotations

from typing import Final

from homeassistant.const import MAJOR_VERSION, MINOR_VERSION
from homeassistant.core import HomeAssistant

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
