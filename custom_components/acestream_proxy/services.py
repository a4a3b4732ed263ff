"""Actions: play a broadcast on a media player, stop one, get a playlist URL."""

from __future__ import annotations

from datetime import timedelta
import inspect
from typing import Any, Final, cast

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
from homeassistant.exceptions import ServiceValidationError, Unauthorized, UnknownUser
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.helpers.service import async_register_admin_service
from homeassistant.util import dt as dt_util
import voluptuous as vol

from .access import iter_keys
from .compat import REST_SHOWS_VALIDATION_ERRORS
from .const import DEFAULT_PORT, DOMAIN, LOGGER
from .data import get_hub
from .discovery import async_discover
from .playlist import PLAYLIST_PATH, hls_path, iter_channels, stream_path, wants_hls
from .stream.engine import ContentKind, ContentRef

ATTR_CHANNEL: Final = "channel"
ATTR_CONTENT_ID: Final = "content_id"
ATTR_INFOHASH: Final = "infohash"
ATTR_DAYS: Final = "days"
ATTR_KEY: Final = "key"

SERVICE_PLAY: Final = "play"
SERVICE_STOP: Final = "stop"
SERVICE_PLAYLIST_URL: Final = "playlist_url"
SERVICE_DISCOVER: Final = "discover"
ATTR_HOSTS: Final = "hosts"

TS_MIME: Final = "video/mp2t"
HLS_MIME: Final = "application/vnd.apple.mpegurl"

# Bad input is checked by the actions, not by these schemas: a schema error
# reaches a REST caller as a 400 without its message, an action's
# ServiceValidationError (from 2026.10) as a 400 with it. The schemas only take
# what the fields' selectors send.
_WHAT: Final[dict[vol.Marker, Any]] = {
    vol.Optional(ATTR_CHANNEL): cv.string,
    vol.Optional(ATTR_CONTENT_ID): cv.string,
    vol.Optional(ATTR_INFOHASH): cv.string,
}
_PLAY_FIELDS: Final[dict[Any, Any]] = {
    vol.Required(ATTR_ENTITY_ID): cv.entity_ids,
    **_WHAT,
}
PLAY_SCHEMA: Final = vol.Schema(_PLAY_FIELDS)
STOP_SCHEMA: Final = vol.Schema(_WHAT)
# Signed URLs end at the next restart anyway; apps get an access key.
DAYS_RANGE: Final = (1, 7)
PLAYLIST_URL_SCHEMA: Final = vol.Schema(
    {
        vol.Optional(ATTR_DAYS, default=1): vol.Coerce(int),
        vol.Optional(ATTR_KEY): cv.string,
    }
)
DISCOVER_SCHEMA: Final = vol.Schema(
    {vol.Optional(ATTR_HOSTS, default=list): vol.All(cv.ensure_list, [cv.string])}
)


class ActionValidationError(ServiceValidationError, vol.Invalid):
    """A call an action cannot serve, with a translated message, before 2026.10.

    Home Assistant's REST API (/api/services/...) turns vol.Invalid into HTTP 400
    but, before 2026.10, lets ServiceValidationError escape as a 500 with a
    traceback in the log; being both gives scripts a 400 and the UI the message.
    From 2026.10 the REST API answers a ServiceValidationError with a 400 and its
    message but checks vol.Invalid first (a 400 without it), so there the error is
    a plain ServiceValidationError.
    """

    @property
    def error_message(self) -> str:
        """The translated message (vol.Invalid's name for it)."""
        return str(self)


def _error(key: str, **placeholders: str) -> ServiceValidationError:
    kind = (
        ServiceValidationError
        if REST_SHOWS_VALIDATION_ERRORS
        else ActionValidationError
    )
    return kind(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


def _host_port(value: str) -> tuple[str, int]:
    """``host`` or ``host:port`` (IPv6 as ``[::1]:6878``)."""
    text = value.strip()
    host, port = text, DEFAULT_PORT
    try:
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest.startswith(":"):
                port = int(rest[1:])
        elif text.count(":") == 1:
            host, _, number = text.partition(":")
            port = int(number)
    except ValueError:
        host = ""
    if not host or not 0 < port < 65536:
        raise _error("invalid_host_port", host=text)
    return host, port


def _resolve(
    hass: HomeAssistant, data: dict[str, Any], missing: str
) -> tuple[ContentRef, str]:
    """The broadcast an action names, and a display name."""
    named = [
        attr
        for attr in (ATTR_CHANNEL, ATTR_CONTENT_ID, ATTR_INFOHASH)
        if data.get(attr)
    ]
    if len(named) > 1:
        raise _error("more_than_one", fields=", ".join(named))
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
    # Worded for the action ("what to play", "what to stop").
    raise _error(missing)


async def _async_play(call: ServiceCall) -> None:
    hass = call.hass
    ref, _ = _resolve(hass, dict(call.data), missing="missing_what_to_play")
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
            raise _error("no_url") from err
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


async def _async_stop(call: ServiceCall) -> ServiceResponse:
    ref, name = _resolve(call.hass, dict(call.data), missing="missing_what_to_stop")
    stopped = await get_hub(call.hass).async_stop(ref)
    if not stopped:
        # Stopping what already stopped is done, not an error (scripts stop freely).
        LOGGER.info("Stop: %s is not playing, nothing to stop", name)
    return {"stopped": stopped, "name": name}


async def _async_playlist_url(call: ServiceCall) -> ServiceResponse:
    hass = call.hass
    try:
        base = get_url(hass)
    except NoURLAvailableError as err:
        raise _error("no_url_for_apps") from err
    if (name := call.data.get(ATTR_KEY)) is not None:
        # An app's URL works until its key is deleted: admins only.
        await _async_require_admin(call)
        wanted = name.strip().casefold()
        key = next(
            (key for key in iter_keys(hass) if key.name.casefold() == wanted), None
        )
        if key is None:
            raise _error("unknown_key", name=name)
        return {"url": base + key.path(PLAYLIST_PATH), "expires": None}
    days = call.data[ATTR_DAYS]
    if not DAYS_RANGE[0] <= days <= DAYS_RANGE[1]:
        raise _error(
            "days_out_of_range", min=str(DAYS_RANGE[0]), max=str(DAYS_RANGE[1])
        )
    # Signed as the caller (the token of their UI session or API call), so it
    # carries their rights and dies with that token.
    path = async_sign_path(hass, PLAYLIST_PATH, timedelta(days=days))
    return {
        "url": base + path,
        "expires": (dt_util.utcnow() + timedelta(days=days)).isoformat(),
    }


async def _async_require_admin(call: ServiceCall) -> None:
    """What async_register_admin_service checks, for one field of an action."""
    if not call.context.user_id:
        return
    user = await call.hass.auth.async_get_user(call.context.user_id)
    if user is None:
        raise UnknownUser(context=call.context)
    if not user.is_admin:
        raise Unauthorized(context=call.context)


async def _async_discover(call: ServiceCall) -> ServiceResponse:
    hosts = [_host_port(host) for host in call.data[ATTR_HOSTS]]
    found = await async_discover(call.hass, hosts)
    return {"found": [f"{host}:{port}" for host, port in found]}


async def _async_discover_admin(call: ServiceCall) -> ServiceResponse:
    # Home Assistant 2025.4's admin helper drops responses: same check by hand.
    await _async_require_admin(call)
    return await _async_discover(call)


def async_register_services(hass: HomeAssistant) -> None:
    """Register the actions once, in async_setup."""
    hass.services.async_register(DOMAIN, SERVICE_PLAY, _async_play, PLAY_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_STOP,
        _async_stop,
        STOP_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_PLAYLIST_URL,
        _async_playlist_url,
        PLAYLIST_URL_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    # Probing hosts and ports of the network is for admins only.
    if (
        "supports_response"
        in inspect.signature(async_register_admin_service).parameters
    ):
        async_register_admin_service(
            hass,
            DOMAIN,
            SERVICE_DISCOVER,
            cast(Any, _async_discover),
            DISCOVER_SCHEMA,
            supports_response=SupportsResponse.OPTIONAL,  # type: ignore[call-arg,unused-ignore]
        )
    else:
        hass.services.async_register(
            DOMAIN,
            SERVICE_DISCOVER,
            _async_discover_admin,
            DISCOVER_SCHEMA,
            supports_response=SupportsResponse.OPTIONAL,
        )
