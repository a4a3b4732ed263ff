"""Signing in: the step every view takes first, whichever way the request came.

A URL under the prefix is for a Home Assistant user: a bearer token, or a path
signed by Home Assistant. The same URL under ``key/{key}/`` is for an app: its
access key is in the path (see access.py). A view serves both forms of its URL
and asks ``sign_in``; the ``Access`` it gets says what differs for the requester
(which URLs to hand out, whether a key's use is recorded).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from typing import Final

from aiohttp import web
from homeassistant.auth import jwt_wrapper
from homeassistant.auth.models import RefreshToken
from homeassistant.components.http.auth import (
    DATA_SIGN_SECRET,
    SAFE_QUERY_PARAMS,
    SIGN_QUERY_PARAM,
    async_sign_path,
)
from homeassistant.components.http.const import (
    KEY_HASS_REFRESH_TOKEN_ID,
    KEY_HASS_USER,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import KEY_AUTHENTICATED, KEY_HASS, HomeAssistantView
import jwt

from ..access import KEY_URL_PREFIX, AccessKey, get_keys
from ..const import URL_PREFIX
from .answers import error

# Shared: a user's stream has nothing to watch (one object less per viewer).
_UNWATCHED: Final = nullcontext()


def _signer(
    hass: HomeAssistant, request: web.Request, unsigned: frozenset[str]
) -> RefreshToken | None:
    """The live refresh token that signed ``request``'s ``authSig``, checked as
    Home Assistant does (same secret; path and query bound to the signature),
    except for the ``unsigned`` query parameters, which players add themselves."""
    secret = hass.data.get(DATA_SIGN_SECRET)
    signature = request.query.get(SIGN_QUERY_PARAM)
    if not secret or not signature:
        return None
    try:
        claims = jwt_wrapper.verify_and_decode(
            signature, secret, algorithms=["HS256"], options={"verify_iss": False}
        )
    except jwt.InvalidTokenError:
        return None
    skipped = SAFE_QUERY_PARAMS | unsigned | {SIGN_QUERY_PARAM}
    params = [list(item) for item in request.query.items() if item[0] not in skipped]
    signed = [item for item in claims.get("params", ()) if item[0] not in unsigned]
    if claims.get("path") != request.path or signed != params:
        return None
    token = hass.auth.async_get_refresh_token(str(claims.get("iss")))
    return token if token is not None and token.user.is_active else None


def signed_head_allowed(hass: HomeAssistant, request: web.Request) -> bool:
    """Check ``authSig`` on a HEAD request as Home Assistant does on GET.

    Home Assistant only accepts signatures on GET, so a player probing a signed URL
    with HEAD would get 401 where its GET plays. The user must still be active.
    """
    return _signer(hass, request, frozenset()) is not None


def require_auth(request: web.Request, unsigned: frozenset[str] = frozenset()) -> None:
    """What ``requires_auth`` does, plus signed HEAD requests, and signed GET
    requests whose ``unsigned`` query parameters differ from the signed URL's
    (an LL-HLS player adds its own to the playlist URL it reloads).

    Raised rather than answered, so Home Assistant logs and counts the failed
    attempt exactly as for its own views.
    """
    if request.get(KEY_AUTHENTICATED):
        return
    hass = request.app[KEY_HASS]
    if request.method == "HEAD" and signed_head_allowed(hass, request):
        return
    if unsigned and (token := _signer(hass, request, unsigned)) is not None:
        # As Home Assistant marks a signed request: URLs handed out in the
        # answer are signed for the same user.
        request[KEY_HASS_USER] = token.user
        request[KEY_HASS_REFRESH_TOKEN_ID] = token.id
        request[KEY_AUTHENTICATED] = True
        return
    raise web.HTTPUnauthorized


@dataclass(frozen=True, slots=True)
class Access:
    """Who a request signed in as: a Home Assistant user, or an app's ``key``."""

    hass: HomeAssistant
    key: AccessKey | None = None

    def mark_used(self) -> None:
        """Record the key's use ("last used"); nothing for a user."""
        if self.key is not None:
            get_keys(self.hass).mark_used(self.key)

    def watching(self, request: web.Request) -> AbstractContextManager[None]:
        """While a stream runs: deleting its key (or its user) ends it."""
        if self.key is None:
            return _UNWATCHED
        return get_keys(self.hass).stream(self.key, request)

    def path(self, path: str) -> str:
        """One of our paths, in the form this requester reaches it."""
        return path if self.key is None else self.key.path(path)

    def handed_out(self, path: str, expiry: timedelta) -> str:
        """A path (in this requester's form) to put in a playlist.

        A user's carries its own signature (with the user's identity), so a player
        given one signed URL follows the rest; a key's needs nothing more.
        """
        if self.key is None:
            return async_sign_path(self.hass, path, expiry)
        return path


async def sign_in(
    request: web.Request, key: str | None, unsigned: frozenset[str] = frozenset()
) -> Access | web.Response:
    """The requester, or the answer that refuses it.

    Without a key in the path, Home Assistant's sign-in (see require_auth). With
    one, the key must exist and its user may still sign in; refused with an
    answer, not raised: Home Assistant's failed-login warning would write the
    requested URL, and so the key, to the log.
    """
    hass = request.app[KEY_HASS]
    if key is None:
        require_auth(request, unsigned)
        return Access(hass)
    found = await get_keys(hass).async_authorize(key, request)
    if found is None:
        return error(HTTPStatus.UNAUTHORIZED, "unknown or revoked access key")
    return Access(hass, found)


def both_forms(*paths: str) -> Iterator[str]:
    """Each of our paths, for a user and for an app's key."""
    for path in paths:
        yield path
        yield path.replace(URL_PREFIX, f"{KEY_URL_PREFIX}/{{key}}", 1)


class SignedInView(HomeAssistantView):
    """A view of one URL shape: it signs the requester in, then serves.

    Each form of the URL is registered on its own: Home Assistant registers a
    view's ``extra_urls`` method by method, so aiohttp would give the HEAD of each
    URL a resource apart from its GET, and CORS (set once per path) would miss it.
    """

    # Checked by sign_in: Home Assistant accepts signatures on GET only, and a
    # key is no Home Assistant user.
    requires_auth = False
    urls: tuple[str, ...]
    # Query parameters a player adds to a signed URL (see require_auth).
    unsigned: frozenset[str] = frozenset()

    def __init__(self, url: str) -> None:
        """The view at ``url``, one of ``urls``."""
        self.url = url

    async def get(
        self, request: web.Request, key: str | None = None, **path: str
    ) -> web.StreamResponse:
        """Sign the requester in (a key in the path, or not), then serve."""
        access = await sign_in(request, key, self.unsigned)
        if isinstance(access, web.Response):
            return access
        return await self.serve(request, access, path)

    # The same steps; serve() answers HEAD with what a GET would, without its
    # effects (no broadcast started, no client counted, no use recorded).
    head = get

    async def serve(
        self, request: web.Request, access: Access, path: Mapping[str, str]
    ) -> web.StreamResponse:
        """Answer a signed-in request; ``path`` holds the URL's variables."""
        raise NotImplementedError
