"""A realistic AceStream engine simulator (HTTP API on a real aiohttp server).

JSON start/stat/command API, one reader per progressive session, superseding sessions
per infohash, cold start, burst then real-time pacing of a looping MPEG-TS fixture, idle
expiry, engine restart, fault switches and a fault schedule.

Two modes. The kind mode (default) serves every reader from byte 0 of the stream (PAT,
PMT, then a keyframe), accepts any selector and restarts without a gap: fast and
predictable for unit tests. The strict mode is what a real engine does to a proxy:

- a reader joins the live stream (a wall clock that started ``live_age`` seconds before
  the simulator) one burst behind live: at any byte, mid-GOP, not packet-aligned;
- getstream by infohash answers "failed to load content" until this engine loaded the
  content by content id (a real engine needs the content's descriptor);
- a restart refuses connections for ``restart_downtime`` seconds, forgets every session
  and every loaded descriptor, then accepts again on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
import contextlib
from dataclasses import dataclass, field
import hashlib
import logging
from pathlib import Path
import random
import re
import secrets
import time
from typing import Any, Final, Protocol

from aiohttp import web

from .ts import TS_PACKET, TsFixture, load_fixture

_LOGGER = logging.getLogger(__name__)

_HEX40: Final = re.compile(r"^[0-9a-fA-F]{40}$")
_BTIH: Final = re.compile(r"urn:btih:([0-9a-fA-F]{40})")
_TICK: Final = 0.04  # pacing period in seconds
_MAX_WRITE: Final = 256 * TS_PACKET * 7  # ~336 KB per write call
_POLL: Final = 0.02  # how often hanging handlers look at their switch

VERSION_MODES: Final = ("ok", "error_json", "html500", "empty", "wrong_type", "hang")
FAULT_KINDS: Final = ("stall", "cut", "restart", "error", "hang")
LOAD_FAILED: Final = "failed to load content"
_FAULT: Final = re.compile(
    r"^(?P<kind>[a-z]+)\s*(?:at|@)\s*(?P<at>\d+(?:\.\d+)?)\s*s?"
    r"(?:\s*(?:for|\+)\s*(?P<duration>\d+(?:\.\d+)?)\s*s?)?$"
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault, ``at`` seconds after the simulator first started.

    ``stall``: no data for ``duration`` s (readers stay open). ``cut``: every reader is
    closed mid-stream. ``restart``: an engine restart refusing connections for
    ``duration`` s (default: the simulator's ``restart_downtime``). ``error``: getstream
    answers "failed to load content" for ``duration`` s. ``hang``: getstream does not
    answer for ``duration`` s.
    """

    kind: str
    at: float
    duration: float | None = None

    def __str__(self) -> str:
        text = f"{self.kind} at {self.at:g}s"
        return text if self.duration is None else f"{text} for {self.duration:g}s"


def parse_faults(text: str) -> list[Fault]:
    """Parse "stall at 30s for 25s, cut at 90s, restart at 150s" (or "stall@30+25")."""
    faults: list[Fault] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        found = _FAULT.match(item)
        if found is None or found["kind"] not in FAULT_KINDS:
            raise ValueError(
                f"bad fault {item!r}: expected '<kind> at <s>[ for <s>]', "
                f"kind one of {', '.join(FAULT_KINDS)}"
            )
        duration = found["duration"]
        if duration is None and found["kind"] in ("stall", "error", "hang"):
            raise ValueError(f"fault {item!r} needs a duration ('for <s>')")
        faults.append(
            Fault(
                found["kind"],
                float(found["at"]),
                None if duration is None else float(duration),
            )
        )
    return sorted(faults, key=lambda fault: fault.at)


@dataclass(slots=True)
class SessionLedger:
    """Engine sessions open per infohash, over one or more simulators.

    Share one ledger between the simulators of a test to see whether a broadcast ever
    held sessions on two engines at once (a failover that forgot to stop the old one).
    """

    open: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)

    def opened(self, infohash: str) -> None:
        count = self.open.get(infohash, 0) + 1
        self.open[infohash] = count
        self.peak[infohash] = max(self.peak.get(infohash, 0), count)

    def closed(self, infohash: str) -> None:
        count = self.open.get(infohash, 0) - 1
        if count > 0:
            self.open[infohash] = count
        else:
            self.open.pop(infohash, None)

    @property
    def max_concurrent(self) -> int:
        """The most sessions one infohash ever had open at the same moment."""
        return max(self.peak.values(), default=0)


class _Source(Protocol):
    def read(self, position: int, size: int) -> bytes: ...


class NotTsSource:
    """Endless bytes that are not MPEG-TS (a VOD container, say): no 0x47 at all."""

    def __init__(self, size: int = 1 << 20) -> None:
        noise = bytearray(random.Random(0x5EED).randbytes(size))
        noise[:4] = b"\x1a\x45\xdf\xa3"  # a Matroska header
        self.data = bytes(noise).replace(b"\x47", b"\x46")

    def read(self, position: int, size: int) -> bytes:
        total = len(self.data)
        chunks: list[bytes] = []
        while size > 0:
            off = position % total
            take = min(size, total - off)
            chunks.append(self.data[off : off + take])
            position += take
            size -= take
        return b"".join(chunks)


@dataclass(slots=True)
class SimCounters:
    """What happened on the simulated engine (tests read these)."""

    version_calls: int = 0
    status_calls: int = 0  # every /server/api request
    getstream_calls: int = 0
    sessions_opened: int = 0
    sessions_stopped: int = 0  # by command_url?method=stop
    sessions_expired: int = 0  # no reader for idle_timeout
    sessions_superseded: int = 0  # replaced by a new session of the same infohash
    getstream_refused: int = 0  # strict: by infohash before the content was loaded
    restarts: int = 0
    readers_opened: int = 0
    readers_active: int = 0  # current
    readers_cut: int = 0  # closed by the engine (supersede, stop, cut_readers, ...)
    stat_calls: int = 0


@dataclass(eq=False, slots=True)
class SimReader:
    """One open ``/ace/r/...`` connection."""

    request: web.Request
    session: SimSession
    cut_event: asyncio.Event = field(default_factory=asyncio.Event)
    bytes_sent: int = 0
    start_position: int = 0  # byte of the endless stream its first byte was

    def is_cut(self) -> bool:
        return self.cut_event.is_set()


@dataclass(eq=False, slots=True)
class SimSession:
    """One engine playback session (keyed on its infohash)."""

    infohash: str
    pid: str
    token: str
    playback_session_id: str
    stat_session_id: str
    content_id: str | None
    created: float  # loop.time()
    not_ts: bool = False
    reader: SimReader | None = None
    stopped: bool = False
    position: int = 0  # bytes of the endless stream delivered so far
    peers: int = 8
    expiry_task: asyncio.Task[None] | None = None

    @property
    def has_reader(self) -> bool:
        return self.reader is not None


class EngineSimulator:
    """AceStream engine HTTP API simulator; see ``ENGINE_API.md``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fixture: Path | None = None,
        cold_start: float = 0.5,
        burst_seconds: float = 1.0,
        idle_timeout: float = 60.0,
        version: str = "3.2.12",
        code: int = 3021200,
        strict: bool = False,
        restart_downtime: float | None = None,
        live_age: float = 1800.0,
        faults: str | Sequence[Fault] = (),
        not_ts: set[str] | None = None,
        ledger: SessionLedger | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.fixture_path = fixture
        self.cold_start = cold_start
        self.burst_seconds = burst_seconds
        self.idle_timeout = idle_timeout
        self.version = version
        self.code = code
        self.strict = strict
        self.restart_downtime = (
            (2.0 if strict else 0.0) if restart_downtime is None else restart_downtime
        )
        self.live_age = live_age
        self.faults = parse_faults(faults) if isinstance(faults, str) else list(faults)
        # Content ids (or infohashes) whose sessions serve bytes that are not MPEG-TS.
        self.not_ts: set[str] = set(not_ts or ())
        self.ledger = ledger or SessionLedger()
        # Strict: infohashes this engine loaded by content id (it holds their descriptor).
        self.loaded: set[str] = set()
        # (seconds since first start, fault) for every scheduled fault applied.
        self.faults_applied: list[tuple[float, Fault]] = []
        # Fault switches.
        self.getstream_error: str | None = None
        self.getstream_hang: bool = False
        self.stall: bool = False
        # What stat_url reports during a stall ("buf" models a rebuffering engine).
        self.stall_stat_status: str = "dl"
        self.version_mode: str = "ok"
        # stat_url answers this error while the stream goes on.
        self.stat_error: str | None = None
        self.unknown_content: set[str] = set()
        # State.
        self.counters = SimCounters()
        self.sessions: dict[str, SimSession] = {}
        self._fixture: TsFixture | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._started_at: float | None = None  # loop.time() of the first start
        self._schedules: set[asyncio.Task[None]] = set()
        self._reopen: asyncio.Task[None] | None = None
        self._accepting = asyncio.Event()
        self._not_ts_source: NotTsSource | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def fixture(self) -> TsFixture:
        if self._fixture is None:
            self._fixture = load_fixture(self.fixture_path)
        return self._fixture

    @property
    def bitrate(self) -> float:
        """Stream rate in bytes per second."""
        return self.fixture.bitrate

    @property
    def running(self) -> bool:
        return self._runner is not None

    def live_position(self) -> int:
        """Byte of the endless stream that is live now (strict mode's wall clock)."""
        assert self._started_at is not None
        age = asyncio.get_running_loop().time() - self._started_at + self.live_age
        return int(age * self.bitrate)

    def elapsed(self) -> float:
        """Seconds since the simulator first started (the fault schedule's clock)."""
        if self._started_at is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._started_at

    async def start(self) -> None:
        await self._listen()
        if self._started_at is None:
            self._started_at = asyncio.get_running_loop().time()
            if self.faults:
                self.schedule(self.faults)

    def schedule(self, faults: str | Sequence[Fault]) -> None:
        """Play a fault schedule whose times count from now (the constructor's
        ``faults`` count from the first start)."""
        if isinstance(faults, str):
            faults = parse_faults(faults)
        task = asyncio.get_running_loop().create_task(self._run_schedule(list(faults)))
        self._schedules.add(task)
        task.add_done_callback(self._schedules.discard)

    async def wait_accepting(self) -> None:
        """Return once the simulator accepts connections (after a restart's gap)."""
        await self._accepting.wait()

    async def _listen(self) -> None:
        if self._runner is not None:
            return
        _ = self.fixture  # parse before serving
        self._closing = False
        app = web.Application()
        app.router.add_get("/webui/api/service", self._handle_service)
        app.router.add_get("/server/api", self._handle_server_api)
        app.router.add_get("/ace/getstream", self._handle_getstream)
        app.router.add_get("/ace/getstream/", self._handle_getstream)
        app.router.add_get("/ace/r/{infohash}/{token}", self._handle_playback)
        app.router.add_get("/ace/stat/{infohash}/{token}", self._handle_stat)
        app.router.add_get("/ace/cmd/{infohash}/{token}", self._handle_command)
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break
        self._accepting.set()
        _LOGGER.debug("engine simulator listening on %s", self.base_url)

    async def _close_listener(self) -> None:
        self._closing = True
        self._accepting.clear()
        self._forget_all_sessions()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self._drain_tasks()

    async def stop(self) -> None:
        """Close the listener, cut every reader, forget sessions, await own tasks."""
        tasks = [*self._schedules, self._reopen]
        for task in tasks:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._reopen = None
        await self._close_listener()

    async def restart(self, downtime: float | None = None) -> None:
        """Engine restart: every session is forgotten and its reader cut.

        With a downtime (strict mode's default: ``restart_downtime``) the listener is
        closed, so connections are refused, and opens again on the same port after
        ``downtime`` seconds; this returns once the engine is down (see
        :meth:`wait_accepting`). A strict engine also forgets loaded descriptors.
        """
        downtime = self.restart_downtime if downtime is None else downtime
        self.counters.restarts += 1
        _LOGGER.info("engine restart (down for %.1f s)", downtime)
        if self.strict:
            self.loaded.clear()
        if downtime <= 0 or self._runner is None:
            self._forget_all_sessions()
            await self._drain_tasks()
            return
        await self._close_listener()
        self._reopen = asyncio.get_running_loop().create_task(
            self._listen_after(downtime)
        )

    async def _listen_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._listen()
        self._reopen = None

    async def _run_schedule(self, faults: list[Fault]) -> None:
        """Apply a fault schedule; faults with a duration end on their own."""
        loop = asyncio.get_running_loop()
        origin = loop.time()
        actions: list[tuple[float, int, Fault, bool]] = []
        for index, fault in enumerate(faults):
            actions.append((fault.at, index, fault, True))
            if fault.duration is not None and fault.kind != "restart":
                actions.append((fault.at + fault.duration, index, fault, False))
        for at, _, fault, begin in sorted(actions, key=lambda a: (a[0], a[1])):
            await asyncio.sleep(max(0.0, origin + at - loop.time()))
            if begin:
                self.faults_applied.append((self.elapsed(), fault))
                _LOGGER.info("fault: %s", fault)
            if fault.kind == "stall":
                self.stall = begin
            elif fault.kind == "error":
                self.getstream_error = LOAD_FAILED if begin else None
            elif fault.kind == "hang":
                self.getstream_hang = begin
            elif fault.kind == "cut":
                self.cut_readers()
            else:  # restart
                await self.restart(fault.duration)

    async def __aenter__(self) -> EngineSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def infohash_for(content_id: str) -> str:
        return hashlib.sha1(b"infohash:" + content_id.lower().encode()).hexdigest()

    def active_sessions(self) -> int:
        return len(self.sessions)

    def cut_readers(self) -> int:
        """Close every active reader connection mid-stream; returns how many."""
        count = 0
        for session in list(self.sessions.values()):
            if session.reader is not None:
                self._cut_reader(session.reader)
                count += 1
        return count

    def session_for(self, infohash: str) -> SimSession | None:
        return self.sessions.get(infohash.lower())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _drain_tasks(self) -> None:
        while self._tasks:
            # gather() of finished tasks returns without yielding: clear the set here
            # rather than relying on the done callbacks.
            tasks = list(self._tasks)
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _cut_reader(self, reader: SimReader) -> None:
        if reader.is_cut():
            return
        reader.cut_event.set()
        self.counters.readers_cut += 1
        transport = reader.request.transport
        if transport is not None and not transport.is_closing():
            transport.abort()
        if reader.session.reader is reader:
            reader.session.reader = None

    def _drop_session(self, session: SimSession) -> None:
        if self.sessions.get(session.infohash) is session:
            del self.sessions[session.infohash]
        if not session.stopped:
            self.ledger.closed(session.infohash)
        session.stopped = True
        task, session.expiry_task = session.expiry_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if session.reader is not None:
            self._cut_reader(session.reader)

    def _forget_all_sessions(self) -> None:
        for session in list(self.sessions.values()):
            self._drop_session(session)

    def _arm_expiry(self, session: SimSession) -> None:
        if session.stopped or self._closing:
            return
        if session.expiry_task is not None:
            session.expiry_task.cancel()
        session.expiry_task = self._spawn(self._expire_later(session))

    def _disarm_expiry(self, session: SimSession) -> None:
        task, session.expiry_task = session.expiry_task, None
        if task is not None:
            task.cancel()

    async def _expire_later(self, session: SimSession) -> None:
        await asyncio.sleep(self.idle_timeout)
        if session.stopped or session.reader is not None:
            return
        _LOGGER.info("session %s expired (no reader)", session.infohash)
        self.counters.sessions_expired += 1
        self._drop_session(session)

    def _lookup(self, infohash: str, token: str) -> SimSession | None:
        session = self.sessions.get(infohash.lower())
        if session is None or session.token != token or session.stopped:
            return None
        return session

    async def _wait_while(self, switch: Callable[[], bool]) -> bool:
        """Hang while ``switch()`` is true; False if the simulator is shutting down."""
        while switch():
            if self._closing:
                return False
            await asyncio.sleep(_POLL)
        return not self._closing

    @staticmethod
    def _json(body: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(body, status=status)

    # ------------------------------------------------------------------ liveness

    async def _liveness_fault(self) -> web.StreamResponse | None:
        mode = self.version_mode
        if mode == "hang":
            if not await self._wait_while(lambda: self.version_mode == "hang"):
                raise web.HTTPServiceUnavailable(text="shutting down")
            mode = self.version_mode
        if mode == "error_json":
            return self._json({"result": None, "error": "engine is not ready"})
        if mode == "html500":
            return web.Response(
                status=500,
                content_type="text/html",
                text=(
                    "<html><head><title>500 Internal Server Error</title></head>"
                    "<body><h1>Internal Server Error</h1></body></html>"
                ),
            )
        if mode == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if mode == "wrong_type":
            return web.Response(status=200, text="hello", content_type="text/plain")
        return None

    async def _handle_service(self, request: web.Request) -> web.StreamResponse:
        method = request.query.get("method")
        if method != "get_version":
            return self._json({"result": None, "error": "unknown method"})
        self.counters.version_calls += 1
        fault = await self._liveness_fault()
        if fault is not None:
            return fault
        return self._json(
            {
                "result": {
                    "code": self.code,
                    "platform": "linux",
                    "version": self.version,
                },
                "error": None,
            }
        )

    async def _handle_server_api(self, request: web.Request) -> web.StreamResponse:
        self.counters.status_calls += 1
        method = request.query.get("method")
        if method == "get_status":
            fault = await self._liveness_fault()
            if fault is not None:
                return fault
            return self._json(
                {
                    "result": {
                        "playlist_loaded": True,
                        "version": {
                            "code": self.code,
                            "platform": "linux",
                            "version": self.version,
                        },
                    },
                    "error": None,
                }
            )
        if method == "get_network_connection_status":
            return self._json({"result": {"connected": True}, "error": None})
        return self._json({"result": None, "error": "unknown method"})

    # ------------------------------------------------------------------ getstream

    def _select(
        self, query: Mapping[str, str]
    ) -> tuple[str | None, str | None, str | None]:
        """Return (content_id, infohash, error) from the selector parameters.

        Selectors are honoured in the engine's order: content_id (alias id),
        infohash, url, magnet.
        """
        content_id = query.get("content_id") or query.get("id")
        infohash = query.get("infohash")
        url = query.get("url") or query.get("magnet")
        if content_id is not None:
            key = content_id.lower()
            if not _HEX40.match(content_id):
                return None, None, "invalid content id"
            infohash = self.infohash_for(key)
            content_id = key
        elif infohash is not None:
            key = infohash = infohash.lower()
            if not _HEX40.match(infohash):
                return None, None, "invalid content id"
        elif url:
            key = url
            found = _BTIH.search(url)
            infohash = (
                found.group(1).lower()
                if found
                else hashlib.sha1(b"infohash:" + url.encode()).hexdigest()
            )
        else:
            return None, None, "missing content id"
        if key in self.unknown_content or infohash in self.unknown_content:
            return None, None, LOAD_FAILED
        if self.strict:
            if content_id is not None or url:
                self.loaded.add(infohash)  # the descriptor came with the request
            elif infohash not in self.loaded:
                self.counters.getstream_refused += 1
                return None, None, LOAD_FAILED
        return content_id, infohash, None

    async def _handle_getstream(self, request: web.Request) -> web.StreamResponse:
        self.counters.getstream_calls += 1
        as_json = request.query.get("format") == "json"

        def error(text: str, status: int) -> web.StreamResponse:
            if as_json:
                return self._json({"response": None, "error": text})
            return web.Response(status=status, text=text)

        if self.getstream_hang and not await self._wait_while(
            lambda: self.getstream_hang
        ):
            return error("engine is shutting down", 503)
        if self.getstream_error is not None:
            return error(self.getstream_error, 500)
        content_id, infohash, problem = self._select(request.query)
        if problem is not None or infohash is None:
            status = 500 if problem == LOAD_FAILED else 400
            return error(problem or "missing content id", status)

        old = self.sessions.get(infohash)
        if old is not None:
            _LOGGER.info("session %s superseded", infohash)
            self.counters.sessions_superseded += 1
            self._drop_session(old)
        session = SimSession(
            infohash=infohash,
            pid=request.query.get("pid", ""),
            token=secrets.token_hex(16),
            playback_session_id=secrets.token_hex(20),
            stat_session_id=secrets.token_hex(20),
            content_id=content_id,
            created=asyncio.get_running_loop().time(),
            peers=random.randint(5, 12),
            not_ts=bool({infohash, content_id} & self.not_ts),
        )
        self.sessions[infohash] = session
        self.ledger.opened(infohash)
        self.counters.sessions_opened += 1
        _LOGGER.info("session %s opened (pid %r)", infohash, session.pid)
        self._arm_expiry(session)

        base = f"{request.scheme}://{request.host}"
        tail = f"{infohash}/{session.token}"
        playback_url = f"{base}/ace/r/{tail}"
        if not as_json:
            raise web.HTTPFound(playback_url)
        response: dict[str, Any] = {
            "playback_url": playback_url,
            "stat_url": f"{base}/ace/stat/{tail}",
            "command_url": f"{base}/ace/cmd/{tail}",
            "infohash": infohash,
            "playback_session_id": session.playback_session_id,
            "is_live": 1,
            "is_encrypted": 0,
            "client_session_id": -1,
        }
        if request.query.get("use_api_events") == "1":
            response["event_url"] = f"{base}/ace/event/{tail}"
        return self._json({"response": response, "error": None})

    # ------------------------------------------------------------------ playback

    async def _handle_playback(self, request: web.Request) -> web.StreamResponse:
        session = self._lookup(
            request.match_info["infohash"], request.match_info["token"]
        )
        if session is None:
            return web.Response(status=404, text="unknown playback session id")
        if request.method == "HEAD":  # never counts as (or cuts) a reader
            return web.Response(content_type="video/mp2t")
        if session.reader is not None:
            self._cut_reader(session.reader)  # one reader per session
        reader = SimReader(request=request, session=session)
        session.reader = reader
        self._disarm_expiry(session)
        self.counters.readers_opened += 1
        self.counters.readers_active += 1
        _LOGGER.info("reader attached to session %s", session.infohash)
        try:
            return await self._serve_reader(reader)
        finally:
            self.counters.readers_active -= 1
            _LOGGER.info(
                "reader of session %s gone after %d bytes",
                session.infohash,
                reader.bytes_sent,
            )
            if session.reader is reader:
                session.reader = None
            if not session.stopped and session.reader is None:
                self._arm_expiry(session)

    async def _sleep_or_cut(self, reader: SimReader, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if the reader got cut meanwhile."""
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.cut_event.wait(), delay)
        return reader.is_cut()

    def _source(self, session: SimSession) -> _Source:
        if not session.not_ts:
            return self.fixture
        if self._not_ts_source is None:
            self._not_ts_source = NotTsSource()
        return self._not_ts_source

    async def _serve_reader(self, reader: SimReader) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        session = reader.session
        source = self._source(session)
        rate = self.fixture.bitrate
        ready_at = session.created + self.cold_start
        if await self._sleep_or_cut(reader, ready_at - loop.time()):
            return web.Response(status=410, text="cut")
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "video/mp2t", "Cache-Control": "no-cache"},
        )
        await response.prepare(reader.request)
        owed = max(TS_PACKET, int(self.burst_seconds * rate))  # bytes due at t_ref
        if self.strict:
            # Join the live stream one burst behind: any byte, mid-GOP.
            session.position = max(0, self.live_position() - owed)
        reader.start_position = session.position
        t_ref = loop.time()
        sent_since_ref = 0
        try:
            while not reader.is_cut():
                if self.stall:
                    if await self._sleep_or_cut(reader, _TICK):
                        break
                    # Resume at the broadcast rate without catching up.
                    owed, t_ref, sent_since_ref = 0, loop.time(), 0
                    continue
                due = owed + int((loop.time() - t_ref) * rate) - sent_since_ref
                size = min(due - due % TS_PACKET, _MAX_WRITE)
                if size > 0:
                    chunk = source.read(session.position, size)
                    await response.write(chunk)
                    if reader.is_cut():
                        break
                    session.position += size
                    reader.bytes_sent += size
                    sent_since_ref += size
                    if size == _MAX_WRITE:
                        continue
                if await self._sleep_or_cut(reader, _TICK):
                    break
        except (ConnectionError, RuntimeError):
            pass  # client went away (or its connection was cut)
        if reader.is_cut():
            # Make sure the client sees a broken transfer, not a clean end.
            transport = reader.request.transport
            if transport is not None:
                transport.abort()
        return response

    # ------------------------------------------------------------------ stat / cmd

    async def _handle_stat(self, request: web.Request) -> web.StreamResponse:
        self.counters.stat_calls += 1
        if self.stat_error is not None:
            return self._json({"response": None, "error": self.stat_error})
        session = self._lookup(
            request.match_info["infohash"], request.match_info["token"]
        )
        if session is None:
            return self._json(
                {"response": None, "error": "unknown playback session id"}
            )
        now = asyncio.get_running_loop().time()
        age = now - session.created
        rate = self.bitrate
        session.peers = max(5, min(12, session.peers + random.choice((-1, 0, 0, 1))))
        if age < self.cold_start:
            status = "prebuf"
            speed_down = int(rate / 1024 * random.uniform(0.3, 0.8))
            downloaded = int(age * rate * 0.5)
        else:
            status = self.stall_stat_status if self.stall else "dl"
            speed_down = int(rate / 1024 * random.uniform(0.95, 1.15))
            if self.stall:
                speed_down = random.randint(0, 3)
            downloaded = int(
                (self.cold_start * 0.5 + self.burst_seconds + age - self.cold_start)
                * rate
            )
        speed_up = int(speed_down * random.uniform(0.08, 0.2))
        wall = int(time.time())
        delay = random.randint(2, 5)
        first = wall - 1800
        livepos = {
            "pos": str(wall - delay),
            "first_ts": str(first),
            "last_ts": str(wall),
            "live_first": str(first),
            "live_last": str(wall),
            "last": str(wall),
            "is_live": "1",
            "buffer_pieces": "30",
        }
        body = {
            "status": status,
            "peers": session.peers,
            "speed_down": speed_down,
            "speed_up": speed_up,
            "downloaded": downloaded,
            "uploaded": int(downloaded * 0.15),
            "total_progress": 0,
            "infohash": session.infohash,
            "playback_session_id": session.stat_session_id,
            "is_live": 1,
            "is_encrypted": 0,
            "disk_cache_stats": {
                "avail": 3199156224,
                "disk_cache_limit": 2266017044,
                "inactive_inuse": 0,
                "active_inuse": min(downloaded, 2266017044),
            },
            "livepos": livepos,
        }
        return self._json({"response": body, "error": None})

    async def _handle_command(self, request: web.Request) -> web.StreamResponse:
        session = self._lookup(
            request.match_info["infohash"], request.match_info["token"]
        )
        if session is None:
            return self._json(
                {"response": None, "error": "unknown playback session id"}
            )
        method = request.query.get("method")
        if method != "stop":
            return self._json({"response": None, "error": "unknown method"})
        self.counters.sessions_stopped += 1
        _LOGGER.info("session %s stopped by command", session.infohash)
        self._drop_session(session)
        return self._json({"response": "ok", "error": None})
