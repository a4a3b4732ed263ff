"""Access keys for apps: long-lived, revocable identities carried in the URL path.

Home Assistant's signed URLs die with its signing secret at every start, which
breaks every TV's playlist at each update. An access key is a random secret an
admin creates for one app ("Living room TV"); it lives in the key's config
subentry (Home Assistant's storage) until the key is deleted, and it acts with
the rights of the admin who created it: when that user is deactivated or deleted,
the key stops working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import hmac
import secrets
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from homeassistant.components.http.auth import async_user_not_allowed_do_auth
from homeassistant.config_entries import SIGNAL_CONFIG_ENTRY_CHANGED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import (
    async_dispatcher_connect,
    async_dispatcher_send,
)
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.network import NoURLAvailableError, get_url
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .compat import async_get_device
from .const import (
    CONF_KEY_SECRET,
    CONF_KEY_USER_ID,
    DOMAIN,
    LOGGER,
    SUBENTRY_ACCESS_KEY,
    URL_PREFIX,
)

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry, ConfigEntryChange

KEYS: HassKey[AccessKeys] = HassKey(f"{DOMAIN}_access_keys")
KEY_URL_PREFIX: Final = f"{URL_PREFIX}/key"
# 32 random bytes: 256 bits, URL-safe base64 (43 characters).
SECRET_BYTES: Final = 32
# "Last used" moves at most this often (an HLS player fetches every few seconds).
LAST_USED_RESOLUTION: Final = timedelta(minutes=1)
# While streams opened with a key run, their key and user are re-checked this often.
RECHECK_EVERY: Final = timedelta(seconds=2)
SIGNAL_KEYS_UPDATED: Final = f"{DOMAIN}_keys_updated"

EVENT_USER_REMOVED: Final = "user_removed"
EVENT_USER_UPDATED: Final = "user_updated"


def new_secret() -> str:
    """A fresh key secret."""
    return secrets.token_urlsafe(SECRET_BYTES)


def signal_keys_added(entry_id: str) -> str:
    """Dispatcher signal: access keys were added to this entry."""
    return f"{DOMAIN}_keys_added_{entry_id}"


@dataclass(frozen=True, slots=True)
class AccessKey:
    """One app's key, as stored in its subentry."""

    entry_id: str
    subentry_id: str
    name: str
    secret: str = field(repr=False)
    user_id: str

    @property
    def prefix(self) -> str:
        """Path prefix of every URL of this key."""
        return f"{KEY_URL_PREFIX}/{self.secret}"

    def path(self, path: str) -> str:
        """One of our URL paths, authenticated by this key."""
        return self.prefix + path.removeprefix(URL_PREFIX)


def app_playlist_url(hass: HomeAssistant, secret: str) -> str:
    """The playlist URL an app is given, on Home Assistant's own URL if known."""
    try:
        base = get_url(hass)
    except NoURLAvailableError:
        base = "http://<home-assistant>:8123"
    return f"{base}{KEY_URL_PREFIX}/{secret}/playlist.m3u"


def iter_keys(hass: HomeAssistant) -> Iterator[AccessKey]:
    """Every access key of every engine entry, loaded or not."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        for subentry in entry.subentries.values():
            if subentry.subentry_type == SUBENTRY_ACCESS_KEY:
                yield AccessKey(
                    entry.entry_id,
                    subentry.subentry_id,
                    subentry.title,
                    str(subentry.data[CONF_KEY_SECRET]),
                    str(subentry.data[CONF_KEY_USER_ID]),
                )


def get_keys(hass: HomeAssistant) -> AccessKeys:
    """The key registry created in async_setup."""
    return hass.data[KEYS]


@dataclass
class AccessKeys:
    """Finds keys in constant time, tracks their use and the streams they opened."""

    hass: HomeAssistant
    last_used: dict[str, datetime] = field(default_factory=dict)
    # Requests are mappings (unhashable): keyed by id() while they run.
    _streams: dict[str, dict[int, web.Request]] = field(default_factory=dict)
    _recheck_unsub: Callable[[], None] | None = None

    @callback
    def async_setup(self) -> None:
        """Follow key deletions and user changes for as long as HA runs."""
        async_dispatcher_connect(
            self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._entry_changed
        )
        for event_type in (EVENT_USER_REMOVED, EVENT_USER_UPDATED):
            self.hass.bus.async_listen(event_type, self._user_changed)

    def find(self, token: str) -> AccessKey | None:
        """The key whose secret is ``token``; every key is compared, in full."""
        # "replace": a path can decode to lone surrogates, which never match.
        wanted = token.encode("utf-8", "replace")
        found = None
        for key in iter_keys(self.hass):
            if hmac.compare_digest(key.secret.encode(), wanted):
                found = key
        return found

    async def async_authorize(
        self, token: str, request: web.Request
    ) -> AccessKey | None:
        """The key of a request, if it exists and its user may still sign in."""
        key = self.find(token)
        if key is None or not await self._user_allowed(key, request):
            LOGGER.debug("Refused an access key from %s", request.remote)
            return None
        return key

    async def _user_allowed(self, key: AccessKey, request: web.Request) -> bool:
        user = await self.hass.auth.async_get_user(key.user_id)
        return user is not None and not async_user_not_allowed_do_auth(
            self.hass, user, request
        )

    @callback
    def mark_used(self, key: AccessKey) -> None:
        """Record a use; entities hear of it at most once a minute."""
        now = dt_util.utcnow()
        last = self.last_used.get(key.subentry_id)
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        self.last_used[key.subentry_id] = now
        async_dispatcher_send(self.hass, SIGNAL_KEYS_UPDATED)

    def stream_count(self, subentry_id: str) -> int:
        """Streams open right now with this key."""
        return len(self._streams.get(subentry_id, ()))

    @contextmanager
    def stream(self, key: AccessKey, request: web.Request) -> Iterator[None]:
        """Track a stream opened with ``key`` so that deleting the key ends it."""
        self.mark_used(key)
        self._streams.setdefault(key.subentry_id, {})[id(request)] = request
        if self._recheck_unsub is None:
            self._recheck_unsub = async_track_time_interval(
                self.hass,
                self._async_recheck,
                RECHECK_EVERY,
                name=f"{DOMAIN} access key check",
            )
        async_dispatcher_send(self.hass, SIGNAL_KEYS_UPDATED)
        try:
            yield
        finally:
            requests = self._streams.get(key.subentry_id, {})
            requests.pop(id(request), None)
            if not requests:
                self._streams.pop(key.subentry_id, None)
            if not self._streams and self._recheck_unsub is not None:
                self._recheck_unsub()
                self._recheck_unsub = None
            async_dispatcher_send(self.hass, SIGNAL_KEYS_UPDATED)

    @callback
    def _entry_changed(self, _change: ConfigEntryChange, entry: ConfigEntry) -> None:
        if entry.domain != DOMAIN:
            return
        devices = dr.async_get(self.hass)
        for subentry in entry.subentries.values():
            if subentry.subentry_type != SUBENTRY_ACCESS_KEY:
                continue
            device = async_get_device(
                self.hass, f"access_key_{subentry.subentry_id}", entry.entry_id
            )
            if device is not None and device.name != subentry.title:
                devices.async_update_device(device.id, name=subentry.title)
        async_dispatcher_send(self.hass, signal_keys_added(entry.entry_id))
        if self._streams:
            self.hass.async_create_task(self._async_recheck(), eager_start=True)

    @callback
    def _user_changed(self, _event: Event[Any]) -> None:
        if self._streams:
            self.hass.async_create_task(self._async_recheck(), eager_start=True)

    async def _async_recheck(self, _now: datetime | None = None) -> None:
        """End the streams of keys that were deleted or whose user lost access."""
        keys = {key.subentry_id: key for key in iter_keys(self.hass)}
        for subentry_id, requests in list(self._streams.items()):
            key = keys.get(subentry_id)
            for ident, request in list(requests.items()):
                if key is not None and await self._user_allowed(key, request):
                    continue
                LOGGER.info(
                    "Ending a stream of a revoked access key (%s)",
                    key.name if key else "deleted",
                )
                if request.transport is not None:
                    request.transport.abort()
                requests.pop(ident, None)

    @callback
    def async_shutdown(self, _event: Event[Any] | None = None) -> None:
        """Home Assistant stops: no more re-checks."""
        if self._recheck_unsub is not None:
            self._recheck_unsub()
            self._recheck_unsub = None
