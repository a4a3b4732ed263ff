"""Typed async client for the AceStream engine HTTP API.

No Home Assistant imports: the client takes an aiohttp session (HA's shared one in
production) so it can be tested and benchmarked alone. Every engine answer is parsed
defensively and every failure becomes one of the exceptions below, with a message a
user can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
from enum import StrEnum
import json
import re
import secrets
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from .content import HEX40, ContentKind, ContentRef

__all__ = [
    "HEX40",
    "ContentKind",
    "ContentRef",
    "EngineApiError",
    "EngineClient",
    "EngineConnectionError",
    "EngineError",
    "EngineResponseError",
    "EngineTimeoutError",
    "EngineVersion",
    "SessionGoneError",
    "SessionState",
    "SessionStats",
    "StreamSession",
]

DEFAULT_REQUEST_TIMEOUT: Final = 10.0
# getstream can take a while on real engines (they resolve the content first).
DEFAULT_START_TIMEOUT: Final = 30.0
# Engine JSON answers are a few hundred bytes; anything near this is not the API.
MAX_JSON_BYTES: Final = 1024 * 1024

SESSION_GONE_TEXT: Final = "unknown playback session id"


class EngineError(Exception):
    """Base class for every engine failure."""


class EngineConnectionError(EngineError):
    """The engine could not be reached (refused, unresolvable, reset)."""


class EngineTimeoutError(EngineError):
    """The engine did not answer in time."""


class EngineResponseError(EngineError):
    """The engine answered something that is not its API (HTML, empty, garbage)."""


class EngineApiError(EngineError):
    """The engine answered with an error of its own (its text is the message)."""


class SessionGoneError(EngineApiError):
    """The playback session no longer exists on the engine."""


@dataclass(frozen=True, slots=True)
class EngineVersion:
    """Answer of get_version."""

    version: str
    code: int
    platform: str


@dataclass(frozen=True, slots=True)
class StreamSession:
    """An engine playback session, URLs rewritten to the configured engine base."""

    playback_url: str
    stat_url: str
    command_url: str
    infohash: str
    playback_session_id: str
    pid: str
    is_live: bool
    bitrate: int | None = None


class SessionState(StrEnum):
    """Engine session status reduced to what a user cares about."""

    BUFFERING = "buffering"
    PLAYING = "playing"
    FAILED = "failed"
    UNKNOWN = "unknown"


_STATUS_MAP: Final = {
    "prebuf": SessionState.BUFFERING,
    "buf": SessionState.BUFFERING,
    "wait": SessionState.BUFFERING,
    "check": SessionState.BUFFERING,
    "checking": SessionState.BUFFERING,
    "dl": SessionState.PLAYING,
    "err": SessionState.FAILED,
}


@dataclass(frozen=True, slots=True)
class SessionStats:
    """Answer of a session's stat_url."""

    status: str
    state: SessionState
    peers: int | None
    speed_down_kbps: int | None
    speed_up_kbps: int | None
    downloaded: int | None
    uploaded: int | None
    live_delay: float | None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _live_delay(livepos: Any) -> float | None:
    if not isinstance(livepos, dict):
        return None
    try:
        delay = float(livepos["last_ts"]) - float(livepos["pos"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(delay, 0.0)


class EngineClient:
    """Client for one AceStream engine."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        port: int,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        """Bind the client to an engine; nothing is sent until a call is made."""
        self._session = session
        self.host = host
        self.port = port
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.base_url = f"http://{netloc}"
        self._netloc = netloc

    def __repr__(self) -> str:
        """Identify the engine in logs."""
        return f"EngineClient({self.base_url})"

    @contextlib.contextmanager
    def _transport_errors(self, late: str, what: str) -> Iterator[None]:
        """Every transport failure as an EngineError that names this engine."""
        try:
            yield
        except TimeoutError as err:
            msg = f"engine at {self.base_url} {late}"
            raise EngineTimeoutError(msg) from err
        except aiohttp.ClientConnectorError as err:
            msg = f"cannot connect to the engine at {self.base_url}: {err.os_error}"
            raise EngineConnectionError(msg) from err
        except aiohttp.ClientError as err:
            msg = f"{what} the engine at {self.base_url} failed: {err}"
            raise EngineConnectionError(msg) from err

    async def _get_json(
        self,
        url: str,
        params: dict[str, str] | None = None,
        time_limit: float | None = None,
    ) -> dict[str, Any]:
        """GET a JSON document, mapping every transport failure to EngineError."""
        client_timeout = (
            self._timeout
            if time_limit is None
            else aiohttp.ClientTimeout(total=time_limit)
        )
        with self._transport_errors("did not answer in time", "connection to"):
            async with self._session.get(
                self._pinned(url),
                params=params,
                timeout=client_timeout,
                allow_redirects=False,
            ) as resp:
                body = await self._read_bounded(resp)
                status = resp.status
                content_type = resp.content_type
        return self._parse(body, status, content_type)

    async def _read_bounded(self, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body, or EngineResponseError past MAX_JSON_BYTES."""
        body = bytearray()
        async for chunk in resp.content.iter_any():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                msg = (
                    f"engine at {self.base_url} answered more than "
                    f"{MAX_JSON_BYTES // 1024} KiB; is this an AceStream engine?"
                )
                raise EngineResponseError(msg)
        return bytes(body)

    def _pinned(self, url: str) -> str:
        """Refuse to send anything anywhere but the configured engine.

        Session URLs are rewritten to the configured address when the engine hands
        them out; this catches a URL that reached the wrong client some other way.
        """
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.netloc != self._netloc:
            msg = f"engine at {self.base_url} was asked to use a URL of another host"
            raise EngineResponseError(msg)
        return url

    def _parse(self, body: bytes, status: int, content_type: str) -> dict[str, Any]:
        text = body.decode("utf-8", "replace").strip()
        if not text:
            msg = f"engine at {self.base_url} sent an empty answer (HTTP {status})"
            raise EngineResponseError(msg)
        try:
            data = json.loads(text)
        except ValueError:
            snippet = re.sub(r"<[^>]+>", " ", text)
            snippet = " ".join(snippet.split())[:120]
            msg = (
                f"engine at {self.base_url} answered HTTP {status} {content_type} "
                f"instead of JSON: {snippet!r}; is this an AceStream engine?"
            )
            if status >= 400 and SESSION_GONE_TEXT in text.lower():
                raise SessionGoneError(SESSION_GONE_TEXT) from None
            raise EngineResponseError(msg) from None
        if not isinstance(data, dict):
            msg = f"engine at {self.base_url} answered unexpected JSON: {text[:120]!r}"
            raise EngineResponseError(msg)
        error = data.get("error")
        if error:
            if isinstance(error, dict):
                error = error.get("message") or json.dumps(error)
            error = str(error)
            if SESSION_GONE_TEXT in error.lower():
                raise SessionGoneError(error)
            raise EngineApiError(error)
        return data

    def _rewrite(self, url: str) -> str:
        """Point an engine-built URL at the configured engine address.

        Engines build URLs from the Host they were asked on or their own address; in
        Docker that can be an address we cannot reach.
        """
        parts = urlsplit(url)
        if not parts.path:
            msg = f"engine at {self.base_url} answered a malformed URL: {url!r}"
            raise EngineResponseError(msg)
        return urlunsplit(("http", self._netloc, parts.path, parts.query, ""))

    async def get_version(self) -> EngineVersion:
        """Ask the engine its version (the documented liveness check)."""
        data = await self._get_json(
            f"{self.base_url}/webui/api/service", {"method": "get_version"}
        )
        result = data.get("result")
        if not isinstance(result, dict) or "version" not in result:
            msg = f"engine at {self.base_url} answered get_version without a version"
            raise EngineResponseError(msg)
        return EngineVersion(
            version=str(result["version"]),
            code=_int_or_none(result.get("code")) or 0,
            platform=str(result.get("platform", "")),
        )

    async def start_session(
        self,
        content: ContentRef,
        *,
        pid: str | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> StreamSession:
        """Open a progressive MPEG-TS session (one fresh pid per session)."""
        pid = pid or secrets.token_hex(8)
        params = {content.kind.value: content.value, "format": "json", "pid": pid}
        data = await self._get_json(
            f"{self.base_url}/ace/getstream", params, time_limit=start_timeout
        )
        response = data.get("response")
        if not isinstance(response, dict):
            msg = f"engine at {self.base_url} answered getstream without a response"
            raise EngineResponseError(msg)
        try:
            infohash = str(response["infohash"]).lower()
            session = StreamSession(
                playback_url=self._rewrite(str(response["playback_url"])),
                stat_url=self._rewrite(str(response["stat_url"])),
                command_url=self._rewrite(str(response["command_url"])),
                infohash=infohash,
                playback_session_id=str(response.get("playback_session_id", "")),
                pid=pid,
                is_live=bool(_int_or_none(response.get("is_live"))),
                bitrate=_int_or_none(response.get("bitrate")),
            )
        except KeyError as err:
            msg = f"engine at {self.base_url} answered getstream without {err}"
            raise EngineResponseError(msg) from None
        if not HEX40.match(infohash):
            msg = f"engine at {self.base_url} answered an invalid infohash"
            raise EngineResponseError(msg)
        return session

    async def get_stats(self, session: StreamSession) -> SessionStats:
        """Read a session's statistics without counting as a player."""
        data = await self._get_json(session.stat_url, {"skip_player_activity": "1"})
        response = data.get("response")
        if not isinstance(response, dict):
            raise SessionGoneError(SESSION_GONE_TEXT)
        status = str(response.get("status", ""))
        return SessionStats(
            status=status,
            state=_STATUS_MAP.get(status, SessionState.UNKNOWN),
            peers=_int_or_none(response.get("peers")),
            speed_down_kbps=_int_or_none(response.get("speed_down")),
            speed_up_kbps=_int_or_none(response.get("speed_up")),
            downloaded=_int_or_none(response.get("downloaded")),
            uploaded=_int_or_none(response.get("uploaded")),
            live_delay=_live_delay(response.get("livepos")),
        )

    async def stop_session(self, session: StreamSession) -> bool:
        """Stop a session; False when the engine no longer knew it."""
        try:
            await self._get_json(session.command_url, {"method": "stop"})
        except SessionGoneError:
            return False
        return True

    async def open_stream(
        self,
        session: StreamSession,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> aiohttp.ClientResponse:
        """Open the progressive reader of a session.

        The caller owns the response and must release it. There is no total timeout:
        a live stream lasts as long as the broadcast (aiohttp's default 300 s total
        would cut every stream at five minutes). ``read_timeout`` bounds the wait for
        each read, so a stall surfaces as TimeoutError.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        with self._transport_errors("did not start the stream in time", "stream from"):
            # No redirects: the reader must stay on the configured engine.
            resp = await self._session.get(
                self._pinned(session.playback_url),
                timeout=timeout,
                allow_redirects=False,
            )
        if resp.status != 200:
            body = await _read_snippet(resp)
            resp.release()
            if resp.status == 404 or SESSION_GONE_TEXT in body.lower():
                raise SessionGoneError(body or SESSION_GONE_TEXT)
            msg = f"engine at {self.base_url} refused the stream: HTTP {resp.status}"
            if body:
                msg = f"{msg}: {body}"
            raise EngineApiError(msg)
        return resp


async def _read_snippet(resp: aiohttp.ClientResponse) -> str:
    try:
        async with asyncio.timeout(2):
            raw = await resp.content.read(512)
    except (TimeoutError, aiohttp.ClientError):
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())[:200]
