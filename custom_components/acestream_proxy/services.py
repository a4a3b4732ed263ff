"""Actions: play a broadcast on a media player, stop one, get a signed playlist URL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from homeassistant.components.http.auth import async_sign_path
from homeassistant.components.media_player.browse_media import (
    async_process_play_media_url,
)
from homeassistant.components.media_player.const import (
    ATTR_MEDIA_CONTENT_ID,
    ATTR_MEDIA_CONTENT_TYPE,
    ATTR_MEDIA_EXTRA,
    DOMAIN as MEDIA_PLAYER_DOMAIN,
    SERVICE_PLAY_MEDIA,
)
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    split_entity_id,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .const import DEFAULT_PORT, DOMAIN
from .discovery import async_discover
from .engine import ContentKind, ContentRef
from .hub import get_hub
from .playlist import PLAYLIST_PATH, hls_path, iter_channels, stream_path, wants_hls

ATTR_CHANNEL: Final = "channel"
ATTR_CONTENT_ID: Final = "content_id"
ATTR_INFOHASH: Final = "infohash"
ATTR_DAYS: Final = "days"

SERVICE_PLAY: Final = "play"
SERVICE_STOP: Final = "stop"
SERVICE_PLAYLIST_URL: Final = "playlist_url"
SERVICE_DISCOVER: Final = "discover"
ATTR_HOSTS: Final = "hosts"

TS_MIME: Final = "video/mp2t"
HLS_MIME: Final = "application/vnd.apple.mpegurl"

_WHAT: Final[dict[vol.Marker, Any]] = {
    vol.Exclusive(ATTR_CHANNEL, "broadcast"): cv.string,
    vol.Exclusive(ATTR_CONTENT_ID, "broadcast"): cv.string,
    vol.Exclusive(ATTR_INFOHASH, "broadcast"): cv.string,
}
_PLAY_FIELDS: Final[dict[Any, Any]] = {
    vol.Required(ATTR_ENTITY_ID): cv.entity_ids,
    **_WHAT,
}
PLAY_SCHEMA: Final = vol.Schema(_PLAY_FIELDS)
STOP_SCHEMA: Final = vol.Schema(_WHAT)
PLAYLIST_URL_SCHEMA: Final = vol.Schema(
    {vol.Optional(ATTR_DAYS, default=30): vol.All(vol.Coerce(int), vol.Range(1, 365))}
)


def _host_port(value: Any) -> tuple[str, int]:
    """``host`` or ``host:port`` (IPv6 as ``[::1]:6878``)."""
    text = cv.string(value).strip()
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, number = text.partition(":")
        port = int(number)
    if not host or not 0 < port < 65536:
        raise vol.Invalid(f"not a host or host:port: {text}")
    return host, port


DISCOVER_SCHEMA: Final = vol.Schema(
    {vol.Optional(ATTR_HOSTS, default=list): vol.All(cv.ensure_list, [_host_port])}
)


def _error(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


def _resolve(hass: HomeAssistant, data: dict[str, Any]) -> tuple[ContentRef, str]:
    """The broadcast an action names, and a display name."""
    if name := data.get(ATTR_CHANNEL):
        wanted = name.strip().casefold()
        for _, subentry, channel in iter_channels(hass):
            if wanted in (channel.name.casefold(), subentry.subentry_id.casefold()):
                return channel.ref, channel.name
        raise _error("unknown_channel", channel=name)
    for attr, kind in (
        (ATTR_CONTENT_ID, ContentKind.CONTENT_ID),
        (ATTR_INFOHASH, ContentKind.INFOHASH),
    ):
        if value := data.get(attr):
            try:
                ref = ContentRef.parse(kind, value.strip())
            except ValueError:
                raise _error("invalid_id", field=attr) from None
            return ref, ref.value
    raise _error("missing_broadcast")


async def _async_play(call: ServiceCall) -> None:
    hass = call.hass
    ref, _ = _resolve(hass, dict(call.data))
    players = [
        player
        for player in call.data[ATTR_ENTITY_ID]
        if split_entity_id(player)[0] == MEDIA_PLAYER_DOMAIN
    ]
    if not players:
        raise _error("no_player")
    if not get_hub(hass).engines:
        raise _error("no_engine")
    cast = [player for player in players if wants_hls(hass, player)]
    others = [player for player in players if player not in cast]
    for targets, path, mime, extra in (
        (cast, hls_path(ref), HLS_MIME, {"stream_type": "LIVE"}),
        (others, stream_path(ref), TS_MIME, None),
    ):
        if not targets:
            continue
        try:
            # Signed (24 h) and absolute, exactly as media players get media URLs.
            url = async_process_play_media_url(hass, path)
        except NoURLAvailableError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="no_url"
            ) from err
        data: dict[str, Any] = {
            ATTR_ENTITY_ID: targets,
            ATTR_MEDIA_CONTENT_ID: url,
            ATTR_MEDIA_CONTENT_TYPE: mime,
        }
        if extra:
            data[ATTR_MEDIA_EXTRA] = extra
        await hass.services.async_call(
            MEDIA_PLAYER_DOMAIN,
            SERVICE_PLAY_MEDIA,
            data,
            blocking=True,
            context=call.context,
        )


async def _async_stop(call: ServiceCall) -> None:
    ref, name = _resolve(call.hass, dict(call.data))
    if not await get_hub(call.hass).async_stop(ref):
        raise _error("not_playing", name=name)


async def _async_playlist_url(call: ServiceCall) -> ServiceResponse:
    hass = call.hass
    days = call.data[ATTR_DAYS]
    try:
        base = get_url(hass)
    except NoURLAvailableError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="no_url"
        ) from err
    path = async_sign_path(hass, PLAYLIST_PATH, timedelta(days=days))
    return {
        "url": base + path,
        "expires": (dt_util.utcnow() + timedelta(days=days)).isoformat(),
    }


async def _async_discover(call: ServiceCall) -> ServiceResponse:
    found = await async_discover(call.hass, call.data[ATTR_HOSTS])
    return {"found": [f"{host}:{port}" for host, port in found]}


def async_register_services(hass: HomeAssistant) -> None:
    """Register the actions once, in async_setup."""
    hass.services.async_register(DOMAIN, SERVICE_PLAY, _async_play, PLAY_SCHEMA)
    hass.services.async_register(DOMAIN, SERVICE_STOP, _async_stop, STOP_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_PLAYLIST_URL,
        _async_playlist_url,
        PLAYLIST_URL_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_DISCOVER,
        _async_discover,
        DISCOVER_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
