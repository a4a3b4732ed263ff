"""Device conditions: "<channel> is playing", "<channel> has viewers".

Read from the hub at the moment the condition is checked, not from the entities'
states, which the hub updates at most every few seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from homeassistant.const import (
    CONF_CONDITION,
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_TYPE,
)
from homeassistant.core import callback
from homeassistant.helpers import config_validation as cv, device_registry as dr
import voluptuous as vol

from .const import DOMAIN
from .data import get_hub
from .devices import adhoc_target, channel_target
from .playlist import iter_channels
from .stream.broadcast import BroadcastState

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.condition import ConditionCheckerType
    from homeassistant.helpers.typing import ConfigType, TemplateVarsType

    from .devices import BroadcastTarget
    from .registry import BroadcastRecord

CONDITION_TYPES: Final = (
    "is_playing",
    "is_not_playing",
    "has_viewers",
    "has_no_viewers",
)

CONDITION_SCHEMA: Final = cv.DEVICE_CONDITION_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): vol.In(CONDITION_TYPES)}
)

# A stall being bridged is still playing to the user (the Status sensor shows
# Buffering for it); starting, lingering with nobody watching, failed or idle is not.
PLAYING: Final = frozenset({BroadcastState.PLAYING, BroadcastState.BUFFERING})


def _target(hass: HomeAssistant, device_id: str) -> BroadcastTarget | None:
    """The channel or ad-hoc broadcast a device stands for (None: neither)."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return None
    for domain, identifier in device.identifiers:
        if domain != DOMAIN:
            continue
        if identifier.startswith("broadcast_"):
            return adhoc_target(identifier.removeprefix("broadcast_"))
        if identifier.startswith("channel_"):
            subentry_id = identifier.removeprefix("channel_")
            for _, subentry, channel in iter_channels(hass):
                if subentry.subentry_id == subentry_id:
                    return channel_target(subentry_id, channel)
    return None


async def async_get_conditions(
    hass: HomeAssistant, device_id: str
) -> list[dict[str, str]]:
    """Every condition, for channel and broadcast devices (not engines or keys)."""
    if _target(hass, device_id) is None:
        return []
    return [
        {
            CONF_CONDITION: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: condition_type,
        }
        for condition_type in CONDITION_TYPES
    ]


@callback
def async_condition_from_config(
    hass: HomeAssistant, config: ConfigType
) -> ConditionCheckerType:
    """A checker of the device's broadcast as it is when the check runs.

    The device is looked up at each check: a channel edited to play another id,
    or an ad-hoc broadcast's device gone with its broadcast, is seen as it is now.
    """
    device_id: str = config[CONF_DEVICE_ID]
    condition_type: str = config[CONF_TYPE]

    @callback
    def check(hass: HomeAssistant, variables: TemplateVarsType = None) -> bool:
        target = _target(hass, device_id)
        record = get_hub(hass).record(target) if target else None
        if condition_type in ("is_playing", "is_not_playing"):
            playing = _playing(record)
            return playing if condition_type == "is_playing" else not playing
        viewers = record.broadcaster.viewer_count if record else 0
        return viewers > 0 if condition_type == "has_viewers" else viewers == 0

    return check


def _playing(record: BroadcastRecord | None) -> bool:
    return record is not None and record.broadcaster.state in PLAYING
