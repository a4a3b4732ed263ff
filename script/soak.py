"""make soak: a two-hour match, compressed into about three minutes, through a real
Home Assistant.

What runs:

- Home Assistant itself, set up by ``homeassistant.bootstrap`` from a throwaway
  configuration folder exactly as the ``hass`` command does, in this process (so the
  checks can look at its tasks), with its real HTTP server on a loopback port. Every
  viewer is a real HTTP client with a real access token; engine entries and options go
  through the integration's real config and options flows.
- Two engine simulators in strict mode (live join mid-GOP, infohash refused until the
  content id was loaded, restarts refusing connections), sharing one session ledger.
- Two TS viewers and one HLS client watch the match for the whole run; zappers join
  and leave the match and a second channel throughout; one viewer asks for a content
  the engines serve as a video-on-demand file (not MPEG-TS).
- Faults, more than ``retry_give_up`` apart: stalls and cuts from the simulators'
  fault schedules, the serving engine dying (a failover) with its entry reloaded during
  the failover, a connection-refusing engine restart, an options change.

Fault timings are compressed: the broadcasts' stall timeout, give-up and back-off are
set small (the ``BroadcastConfig`` defaults the hub uses, as the stream tests do:
they are not user options), the linger and HLS segment length through the options
flow.

At the end the invariants are printed as a table, with the figures; the exit status
is non-zero when one fails.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass, field, fields
from functools import partial
import importlib
import logging
from pathlib import Path
import random
import shutil
import sys
import tempfile
import time
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # tests.simulator; HA loads the integration itself

from harness import HassInProcess, HomeAssistantApi  # noqa: E402

from tests.simulator import EngineSimulator, SessionLedger  # noqa: E402
from tests.simulator.engine import parse_faults  # noqa: E402

DOMAIN = "acestream_proxy"
EVENT_TYPE = "acestream_proxy_event"
MAIN = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"  # the match
OTHER = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"  # a channel zappers visit
NOT_TS = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"  # served as a VOD file
NULL_PID = 0x1FFF
PACKET = 188

# The broadcasts' fault timings, compressed (seconds).
TIMINGS: dict[str, float] = {
    "stall_timeout": 1.5,
    "start_timeout": 8.0,
    "getstream_timeout": 3.0,
    "connect_timeout": 2.0,
    "retry_give_up": 6.0,
    "retry_backoff_max": 0.5,
    "keepalive_interval": 0.5,
    "write_timeout": 5.0,
    "healthy_after": 2.0,
}
LINGER = 2  # options flow, changed to LINGER_LATER during the match
LINGER_LATER = 3
HLS_SEGMENT = 1
COLD_START = 1.0
RESTART_DOWNTIME = 2.0

# The match, in seconds from kick-off.
MATCH = 150.0
# Stalls and cuts on both engines (whichever serves the match), 15 s apart: more
# than retry_give_up, less than give-up + a healthy period would forgive twice.
ENGINE_FAULTS = (
    "stall at 12s for 3s, cut at 27s, stall at 42s for 3s, cut at 57s, "
    "cut at 115s, stall at 130s for 3s"
)
NOT_TS_AT = 30.0
FAILOVER_AT = 70.0  # the serving engine dies; its entry is reloaded mid-failover
ENGINE_BACK_AT = 85.0
OPTIONS_AT = 92.0
RESTART_AT = 100.0  # the serving engine restarts, refusing connections
ZAP_EVERY = 7.0
ZAP_UNTIL = 140.0
# A viewer that gets no video for this long has been let down, even if kept open.
MAX_GAP = 15.0
# A viewer's first keyframe, from its request: a cold start, or a join during a
# fault, has to give a picture within this (zappers watch 3-10 s).
FIRST_VIDEO = 4.0
# From the end of a fault until a joiner can expect a picture again: stall
# detection, back-off, the engine's cold start and a keyframe interval.
FAULT_RECOVERY = 5.0
DRAIN_MARGIN = 10.0

_LOGGER = logging.getLogger("soak")
# An event of ours on the bus: when, its type, its infohash, and which broadcast
# (the broadcaster's id; None when the hub had no broadcast for it).
BusEvent = tuple[float, str, str, int | None]


def log(message: str) -> None:
    """Print a progress line with the soak's clock."""
    print(f"[soak {time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


STARTED = time.monotonic()


# ------------------------------------------------------------------ viewers


@dataclass
class ViewerResult:
    """How one client's watch went."""

    name: str
    content: str
    kind: str  # "ts" or "hls"
    expect_cut: bool = False  # the non-TS viewer: its broadcast must fail
    status: int | None = None
    ended_by_us: bool = False
    end: str = ""
    bytes: int = 0
    video_bytes: int = 0
    sync_errors: int = 0
    max_gap: float = 0.0
    segments: int = 0
    cuts: list[str] = field(default_factory=list)
    opened: float = 0.0
    last_video: float | None = None
    # Loop time of the first keyframe (a video packet flagged random access).
    first_keyframe: float | None = None

    @property
    def cut(self) -> bool:
        """Lost its stream at least once, rather than leaving on its own."""
        return not self.ended_by_us or bool(self.cuts)


def account(result: ViewerResult, data: bytes) -> tuple[bytes, int]:
    """Count video bytes and packets out of sync, note the first keyframe; return
    the partial tail and the video bytes of this read."""
    whole = len(data) - len(data) % PACKET
    video = 0
    for off in range(0, whole, PACKET):
        if data[off] != 0x47:
            result.sync_errors += 1
            continue
        pid = ((data[off + 1] & 0x1F) << 8) | data[off + 2]
        if pid == NULL_PID:
            continue
        video += PACKET
        if result.first_keyframe is None and is_keyframe(data, off, pid):
            result.first_keyframe = asyncio.get_running_loop().time()
    result.video_bytes += video
    return data[whole:], video


def is_keyframe(data: bytes, off: int, pid: int) -> bool:
    """A packet of an elementary stream (not PAT, PMT or other tables, which sit
    below PID 0x20 or carry no payload start of a PES) whose adaptation field flags
    random access: where a decoder can start."""
    return (
        pid >= 0x20
        and bool(data[off + 3] & 0x20)  # adaptation field present
        and data[off + 4] > 0  # its length
        and bool(data[off + 5] & 0x40)  # random_access_indicator
    )


def fault_windows(now: float) -> list[tuple[float, float]]:
    """When (loop time) the faults of the match keep a joiner from its first
    picture: each fault from its start to its end plus FAULT_RECOVERY. ``now`` is
    the loop time at kick-off, when the engines' schedules start (a schedule
    counts from when it is given, not from the simulator's start, which comes
    before Home Assistant's: a slow start would shift every window)."""
    windows = [
        (now + f.at, now + f.at + (f.duration or 0.0) + FAULT_RECOVERY)
        for f in parse_faults(ENGINE_FAULTS)
    ]
    windows.append((now + FAILOVER_AT, now + FAILOVER_AT + FAULT_RECOVERY))
    windows.append(
        (now + RESTART_AT, now + RESTART_AT + RESTART_DOWNTIME + FAULT_RECOVERY)
    )
    return windows


def without_video(
    viewers: list[ViewerResult],
    within: float,
    faults: Sequence[tuple[float, float]] = (),
) -> tuple[list[str], list[str]]:
    """Viewers that got no keyframe, or got it more than ``within`` seconds after
    they opened: a join that sent only null packets, tables or a broken start
    would leave a player with a black screen. Viewers whose first ``within``
    seconds met a fault window are excused (second list): a stall is no picture."""
    excused = [
        v
        for v in viewers
        if any(s < v.opened + within and v.opened < e for s, e in faults)
    ]
    viewers = [v for v in viewers if v not in excused]
    return [
        f"{v.name}: "
        + (
            "no keyframe"
            if v.first_keyframe is None
            else f"first keyframe after {v.first_keyframe - v.opened:.1f} s"
        )
        for v in viewers
        if v.first_keyframe is None or v.first_keyframe - v.opened > within
    ], [v.name for v in excused]


class Match:
    """Home Assistant, the engines and everything that happens to them."""

    def __init__(
        self, hass: Any, api: HomeAssistantApi, base_url: str, token: str
    ) -> None:
        """Hold the pieces."""
        self.hass = hass
        self.api = api
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}"}
        self.viewers: list[ViewerResult] = []
        self.events: list[BusEvent] = []
        # Loop times (start, end) when a fault may keep a joiner from a picture.
        self.fault_windows: list[tuple[float, float]] = []
        self.timers_before: Counter[str] = Counter()
        self.broadcasters: dict[int, Any] = {}
        self.faults: list[tuple[float, str]] = []
        self.kickoff = 0.0
        # At the reload during the failover: failover seen, the match's state, moved.
        self.failover: tuple[bool, str, bool] = (False, "not tried", False)
        self.http: aiohttp.ClientSession | None = None

    def clock(self) -> float:
        """Seconds since kick-off."""
        return time.monotonic() - self.kickoff

    def fault(self, text: str) -> None:
        """Record a fault the soak injected itself."""
        self.faults.append((self.clock(), text))
        log(f"fault: {text}")

    async def ts_viewer(
        self,
        result: ViewerResult,
        stop: asyncio.Event,
        *,
        limit: float | None = None,
        reconnect: bool = False,
    ) -> None:
        """Watch a TS stream until ``stop`` (or ``limit`` seconds); a player that
        loses its stream (``reconnect``) counts the cut and comes back a second later,
        as real players do."""
        self.viewers.append(result)
        loop = asyncio.get_running_loop()
        result.opened = loop.time()
        while True:
            await self._ts_session(result, stop, limit)
            if result.ended_by_us or not reconnect:
                break
            result.cuts.append(f"t={self.clock():.0f}s {result.end}")
            log(f"{result.name} cut: {result.end}; reconnecting")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if stop.is_set():
                result.ended_by_us = True
                break
        last = result.last_video
        result.max_gap = max(result.max_gap, loop.time() - (last or result.opened))

    async def _ts_session(
        self, result: ViewerResult, stop: asyncio.Event, limit: float | None
    ) -> None:
        assert self.http is not None
        url = f"{self.base_url}/api/{DOMAIN}/stream/{result.content}"
        loop = asyncio.get_running_loop()
        carry = b""
        result.end = ""
        try:
            async with self.http.get(url, headers=self.headers) as resp:
                result.status = resp.status
                if resp.status != 200:
                    result.end = f"HTTP {resp.status}: {await resp.text()}"
                    return
                reading = asyncio.ensure_future(resp.content.readany())
                stopping = asyncio.ensure_future(stop.wait())
                try:
                    while True:
                        wait = None
                        if limit is not None:
                            wait = result.opened + limit - loop.time()
                        done, _ = await asyncio.wait(
                            {reading, stopping},
                            timeout=wait,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                        if stopping in done or not done:
                            result.ended_by_us = True
                            result.end = "stopped by the viewer"
                            return
                        chunk = reading.result()
                        if not chunk:
                            result.end = "the server ended the stream"
                            return
                        result.bytes += len(chunk)
                        carry, video = account(result, carry + chunk)
                        if video:
                            now = loop.time()
                            last = result.last_video
                            if last is not None:
                                result.max_gap = max(result.max_gap, now - last)
                            result.last_video = now
                        reading = asyncio.ensure_future(resp.content.readany())
                finally:
                    for task in (reading, stopping):
                        task.cancel()
                    await asyncio.gather(reading, stopping, return_exceptions=True)
        except (aiohttp.ClientError, TimeoutError) as err:
            result.end = f"{type(err).__name__}: {err}"

    async def hls_client(
        self, result: ViewerResult, stop: asyncio.Event, *, limit: float | None = None
    ) -> None:
        """Poll the playlist every second and fetch each new segment once; a failed
        request counts as a cut, and the client keeps polling."""
        assert self.http is not None
        self.viewers.append(result)
        url = f"{self.base_url}/api/{DOMAIN}/hls/{result.content}/index.m3u8"
        loop = asyncio.get_running_loop()
        result.opened = loop.time()
        seen: set[str] = set()
        while not stop.is_set() and (
            limit is None or loop.time() - result.opened < limit
        ):
            try:
                await self._hls_poll(result, url, seen)
            except (aiohttp.ClientError, TimeoutError) as err:
                result.cuts.append(f"t={self.clock():.0f}s {type(err).__name__}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        result.ended_by_us = True
        result.end = "stopped by the viewer"
        last = result.last_video
        result.max_gap = max(result.max_gap, loop.time() - (last or result.opened))

    async def _hls_poll(self, result: ViewerResult, url: str, seen: set[str]) -> None:
        assert self.http is not None
        async with self.http.get(url, headers=self.headers) as resp:
            result.status = resp.status
            text = await resp.text()
            if resp.status != 200:
                result.cuts.append(
                    f"t={self.clock():.0f}s playlist HTTP {resp.status}: {text}"
                )
                return
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            path = line.split("?", 1)[0]
            if path in seen:
                continue
            seen.add(path)
            target = line if line.startswith("http") else self.base_url + line
            async with self.http.get(target, headers=self.headers) as seg:
                body = await seg.read()
            if seg.status != 200:
                result.cuts.append(f"t={self.clock():.0f}s segment HTTP {seg.status}")
                continue
            result.segments += 1
            result.bytes += len(body)
            account(result, body)
            now = asyncio.get_running_loop().time()
            last = result.last_video or result.opened
            result.max_gap = max(result.max_gap, now - last)
            result.last_video = now


# ------------------------------------------------------------------ Home Assistant


async def set_options(api: HomeAssistantApi, entry_id: str, linger: int) -> None:
    """The options flow, as a user changing the linger."""
    await api.set_options(
        entry_id,
        linger=linger,
        replay_window=10,
        max_viewers=50,
        max_broadcasts=10,
        hls_segment=HLS_SEGMENT,
    )


def compress_timings() -> list[str]:
    """Make the engine pool configure broadcasts with the compressed fault timings."""
    pool = importlib.import_module(f"custom_components.{DOMAIN}.pool")
    original = pool.BroadcastConfig
    while isinstance(original, partial):
        original = original.func
    known = {f.name for f in fields(original)}
    applied = {name: value for name, value in TIMINGS.items() if name in known}
    pool.BroadcastConfig = partial(original, **applied)
    return [f"{name}={value:g}" for name, value in applied.items()]


def our_tasks() -> list[str]:
    """Unfinished tasks running the integration's code."""
    found = []
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None)
        if task.done() or code is None:
            continue
        if f"custom_components/{DOMAIN}/" in code.co_filename:
            found.append(task.get_name())
    return found


def left_over(before: Counter[str]) -> list[str]:
    """The integration's timers now that were not there before the match."""
    return sorted((Counter(our_timers()) - before).elements())


def our_timers() -> list[str]:
    """Pending loop timers that would call the integration's code, directly or
    through Home Assistant's helpers (async_call_later, async_track_time_interval
    and the like wrap the target in a HassJob, a partial or a bound method)."""
    loop = asyncio.get_running_loop()
    found = []
    for handle in getattr(loop, "_scheduled", []):
        if handle.cancelled():
            continue
        target = calls_ours(
            (getattr(handle, "_callback", None), *(getattr(handle, "_args", ()) or ()))
        )
        if target is not None:
            found.append(target)
    return found


def calls_ours(obj: Any, depth: int = 5, seen: set[int] | None = None) -> str | None:
    """The qualified name of a function of the integration that ``obj`` (a
    callable, a tuple of them, or a helper's object holding them) leads to."""
    seen = set() if seen is None else seen
    if depth < 0 or obj is None or id(obj) in seen:
        return None
    seen.add(id(obj))
    module = getattr(obj, "__module__", None)
    if (
        callable(obj)
        and isinstance(module, str)
        and module.startswith(f"custom_components.{DOMAIN}")
    ):
        return str(getattr(obj, "__qualname__", repr(obj)))
    for item in _held(obj):
        if (found := calls_ours(item, depth - 1, seen)) is not None:
            return found
    return None


def _held(obj: Any) -> list[Any]:
    """What a timer's callback may hold its target in: a tuple of arguments, a
    partial, a HassJob, a bound method's object or a closure. The objects of Home
    Assistant's helpers are looked into; Home Assistant itself is not."""
    if isinstance(obj, (tuple, list)):
        return list(obj)
    if isinstance(obj, (str, bytes, int, float, dict)):
        return []
    held = [_attr(obj, name) for name in ("__self__", "func", "target", "args")]
    for cell in _attr(obj, "__closure__") or ():
        with contextlib.suppress(ValueError):  # an empty cell
            held.append(cell.cell_contents)
    kind = type(obj)
    if (
        kind.__module__.startswith("homeassistant.helpers")
        or kind.__name__ == "HassJob"
    ):
        held += list(getattr(obj, "__dict__", {}).values())
        held += [_attr(obj, name) for name in getattr(kind, "__slots__", ())]
    return held


def _attr(obj: Any, name: str) -> Any:
    """``obj.name`` or None, without the class's ``__getattr__`` fallback: Home
    Assistant's deprecated mappings (2026.10's ``device_registry.devices``) report
    any attribute asked of them that way, and under core's frame the report raises."""
    try:
        return object.__getattribute__(obj, name)
    except AttributeError:
        return None


# ------------------------------------------------------------------ the run


async def soak(args: argparse.Namespace) -> int:
    """Bring everything up, play the match, check, print, return the exit status."""
    work = Path(tempfile.mkdtemp(prefix="acestream-soak-"))
    ledger = SessionLedger()
    sims = [
        EngineSimulator(
            strict=True,
            cold_start=COLD_START,
            restart_downtime=RESTART_DOWNTIME,
            not_ts={NOT_TS},
            ledger=ledger,
        )
        for _ in range(2)
    ]
    try:
        for sim in sims:
            await sim.start()
        log(f"engines on ports {sims[0].port} and {sims[1].port}")
        async with HassInProcess(
            work / "config", name="AceStream Proxy soak"
        ) as harness:
            log(f"Home Assistant is running on {harness.url}, onboarded")
            return await run_match(harness, sims)
    finally:
        for sim in sims:
            await sim.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            # Off the loop: Home Assistant flags blocking calls on it.
            await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)


async def run_match(harness: HassInProcess, sims: list[EngineSimulator]) -> int:
    """Engines as entries, compressed timings, viewers; then the match."""
    from homeassistant.core import Event, callback

    hass, api = harness.hass, harness.api
    token = await api.long_lived_token("soak")
    entries = []
    for sim in sims:
        entry_id, how = await api.add_entry("127.0.0.1", sim.port)
        await api.wait_entry_loaded(entry_id)
        log(f"engine on port {sim.port} added through the config flow ({how})")
        entries.append(entry_id)
    applied = compress_timings()
    log(f"broadcast timings: {', '.join(applied)}")
    for entry_id in entries:
        await set_options(api, entry_id, LINGER)
    by_entry = dict(zip(entries, sims, strict=True))
    names = {entry_id: f"engine {i + 1}" for i, entry_id in enumerate(entries)}
    match = Match(hass, api, harness.url, token)
    failover_seen = asyncio.Event()
    hub = importlib.import_module(f"custom_components.{DOMAIN}.hub").get_hub(hass)
    engine_mod = importlib.import_module(f"custom_components.{DOMAIN}.stream.engine")
    main_ref = engine_mod.ContentRef(engine_mod.ContentKind.CONTENT_ID, MAIN)

    @callback
    def on_event(event: Event) -> None:
        kind = str(event.data.get("type"))
        infohash = str(event.data.get("infohash"))
        # Bus listeners that are callbacks run inside async_fire, so the hub still
        # holds the broadcast an event is about (it drops it after its end).
        item = hub.broadcasts.get(infohash)
        broadcast = None
        if item is not None:
            broadcast = id(item.broadcaster)
            match.broadcasters[broadcast] = item.broadcaster  # ids stay unique
        match.events.append((match.clock(), kind, infohash, broadcast))
        if kind in ("stream_failover", "stream_failed", "stream_restarting"):
            log(f"event {kind} {infohash[:8]}")
        if kind == "stream_failover" and infohash == hub.infohash_of(main_ref):
            failover_seen.set()

    hass.bus.async_listen(EVENT_TYPE, on_event)
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
    ) as http:
        match.http = http
        status = await play(match, hub, main_ref, by_entry, names, failover_seen)
        match.http = None
    return status


async def play(
    match: Match,
    hub: Any,
    main_ref: Any,
    by_entry: dict[str, EngineSimulator],
    names: dict[str, str],
    failover_seen: asyncio.Event,
) -> int:
    """The match itself, then the checks."""
    hass = match.hass
    sims = list(by_entry.values())
    loop = asyncio.get_running_loop()
    end = asyncio.Event()
    match.kickoff = time.monotonic()
    log("kick-off")
    for sim in sims:
        sim.schedule(ENGINE_FAULTS)
    match.fault_windows = fault_windows(loop.time())
    match.timers_before = Counter(our_timers())  # the entries' own, e.g. discovery
    watchers = [
        asyncio.ensure_future(
            match.ts_viewer(ViewerResult(name, MAIN, "ts"), end, reconnect=True)
        )
        for name in ("TS viewer 1", "TS viewer 2")
    ]
    watchers.append(
        asyncio.ensure_future(
            match.hls_client(ViewerResult("HLS client", MAIN, "hls"), end)
        )
    )
    side: list[asyncio.Future[None]] = []

    async def at(second: float) -> None:
        await asyncio.sleep(max(0.0, match.kickoff + second - time.monotonic()))

    async def zappers() -> None:
        rng = random.Random(7)
        index = 0
        while (start := 4.0 + index * ZAP_EVERY) < ZAP_UNTIL:
            await at(start)
            content = MAIN if index % 2 == 0 else OTHER
            kind = "hls" if index % 3 == 2 else "ts"
            result = ViewerResult(f"zapper {index + 1}", content, kind)
            watch = rng.uniform(3.0, 10.0)
            viewer = match.hls_client if kind == "hls" else match.ts_viewer
            side.append(asyncio.ensure_future(viewer(result, end, limit=watch)))
            index += 1

    def serving() -> str | None:
        infohash = hub.infohash_of(main_ref)
        item = hub.broadcasts.get(infohash) if infohash else None
        return item.entry_id if item is not None else None

    async def script() -> None:
        await at(NOT_TS_AT)
        match.fault("a viewer asks for a content served as a VOD file (not MPEG-TS)")
        side.append(
            asyncio.ensure_future(
                match.ts_viewer(
                    ViewerResult("non-TS viewer", NOT_TS, "ts", expect_cut=True),
                    end,
                    limit=45.0,
                )
            )
        )
        await at(FAILOVER_AT)
        dying = serving()
        if dying is None:
            match.fault("failover skipped: the match has no broadcast")
        else:
            failover_seen.clear()
            match.fault(f"{names[dying]} dies under the match (failover)")
            await by_entry[dying].stop()
            try:
                await asyncio.wait_for(failover_seen.wait(), 15)
            except TimeoutError:
                log("no stream_failover within 15 s")
            match.fault(f"{names[dying]}'s entry reloaded during the failover")
            infohash = hub.infohash_of(main_ref)
            item = hub.broadcasts.get(infohash) if infohash else None
            match.failover = (
                failover_seen.is_set(),
                item.broadcaster.state.value if item else "gone",
                item is not None and item.entry_id != dying,
            )
            await hass.config_entries.async_reload(dying)
            await at(ENGINE_BACK_AT)
            match.fault(f"{names[dying]} back; its entry reloaded")
            await by_entry[dying].start()
            await hass.config_entries.async_reload(dying)
        await at(OPTIONS_AT)
        match.fault(f"options: linger {LINGER} s -> {LINGER_LATER} s on every engine")
        for entry_id in by_entry:
            await set_options(match.api, entry_id, LINGER_LATER)
        await at(RESTART_AT)
        target = serving()
        if target is not None:
            match.fault(
                f"{names[target]} restarts under the match "
                f"(connections refused for {RESTART_DOWNTIME:g} s)"
            )
            await by_entry[target].restart()

    side.append(asyncio.ensure_future(zappers()))
    side.append(asyncio.ensure_future(script()))
    await at(MATCH)
    log("final whistle")
    end.set()
    await asyncio.gather(*watchers, *side)
    last_viewer = loop.time()
    log("every viewer is gone; waiting for the linger")
    hls_idle = max(4 * HLS_SEGMENT, 10.0)
    deadline = last_viewer + hls_idle + LINGER_LATER + DRAIN_MARGIN
    while loop.time() < deadline:
        if (
            not hub.broadcasts
            and not our_tasks()
            and not left_over(match.timers_before)  # e.g. a throttled refresh
            and all(sim.active_sessions() == 0 for sim in sims)
        ):
            break
        await asyncio.sleep(0.2)
    drained_after = loop.time() - last_viewer
    return report(match, hub, sims, names, by_entry, drained_after)


def balance(events: list[BusEvent]) -> tuple[int, int, list[str]]:
    """Starts, ends, and what does not balance, per broadcast: a broadcast starts
    at most once and ends exactly once; a stream_stopped needs a stream_started
    before it (a broadcast that never played can only fail); an end the hub knew
    no broadcast for is an end with no start."""
    started: set[int] = set()
    ended: set[int] = set()
    where: dict[int, str] = {}
    starts = ends = 0
    problems: list[str] = []
    for at, kind, infohash, broadcast in events:
        if kind not in ("stream_started", "stream_stopped", "stream_failed"):
            continue
        name = f"{infohash[:8]} {kind} (t={at:.0f}s)"
        if kind == "stream_started":
            starts += 1
        else:
            ends += 1
        if broadcast is None:
            problems.append(f"{name} for no broadcast the hub had")
            continue
        where[broadcast] = infohash[:8]
        if kind == "stream_started":
            if broadcast in started or broadcast in ended:
                problems.append(f"{name}: started again")
            started.add(broadcast)
            continue
        if broadcast in ended:
            problems.append(f"{name}: a second end")
        elif kind == "stream_stopped" and broadcast not in started:
            problems.append(f"{name}: stopped with no start")
        ended.add(broadcast)
    problems += [f"{where[b]} never ended" for b in started - ended]
    return starts, ends, problems


def slowest_keyframe(viewers: list[ViewerResult]) -> float:
    """The longest wait for a first keyframe among viewers that got one."""
    return max(
        (v.first_keyframe - v.opened for v in viewers if v.first_keyframe is not None),
        default=0.0,
    )


def failed_beside(events: list[BusEvent], infohash: str) -> list[str]:
    """Broadcasts other than ``infohash``'s that failed: the non-TS content's
    failure must stay its own."""
    return [
        f"{other[:8]} stream_failed (t={at:.0f}s)"
        for at, kind, other, _ in events
        if kind == "stream_failed" and other != infohash
    ]


def report(
    match: Match,
    hub: Any,
    sims: list[EngineSimulator],
    names: dict[str, str],
    by_entry: dict[str, EngineSimulator],
    drained_after: float,
) -> int:
    """Print the invariants and figures; 0 when every invariant holds."""
    viewers = match.viewers
    planned = [v for v in viewers if not v.expect_cut]
    cut = [v for v in planned if v.cut]
    starved = [v for v in planned if v.max_gap > MAX_GAP]
    broken = [v for v in viewers if v.sync_errors]
    not_ts_viewers = [v for v in viewers if v.expect_cut]
    not_ts_hash = EngineSimulator.infohash_for(NOT_TS)
    reason = hub.failures.get(not_ts_hash, "")
    beside = failed_beside(match.events, not_ts_hash)
    beside += [
        f"{ih[:8]} failed: {why}"
        for ih, why in hub.failures.items()
        if ih != not_ts_hash
    ]
    not_ts_ok = (
        bool(not_ts_viewers)
        and all(not v.ended_by_us for v in not_ts_viewers)
        and "MPEG-TS" in reason
        and not beside
    )
    # A viewer's first picture: within FIRST_VIDEO of opening (every planned
    # viewer, zappers included: their 3-10 s watches are shorter than MAX_GAP).
    blind, excused = without_video(planned, FIRST_VIDEO, match.fault_windows)
    superseded = sum(sim.counters.sessions_superseded for sim in sims)
    starts, ends, unbalanced = balance(match.events)
    tasks, timers = our_tasks(), left_over(match.timers_before)
    sessions_left = sum(sim.active_sessions() for sim in sims)
    broadcasts_left = list(hub.broadcasts)
    starting_left = len(hub.registry.starting)
    main_events = [
        e for e in match.events if e[2] == EngineSimulator.infohash_for(MAIN)
    ]
    rows = [
        (
            "no viewer cut except by an intended stop or give-up",
            not cut,
            f"{len(planned) - len(cut)}/{len(planned)} kept, "
            f"{sum(len(v.cuts) for v in planned)} cuts"
            + "".join(f"; {v.name}: {v.cuts[0] if v.cuts else v.end}" for v in cut[:4]),
        ),
        (
            f"no viewer without video for more than {MAX_GAP:g} s",
            not starved,
            f"longest gap {max((v.max_gap for v in planned), default=0):.1f} s"
            + "".join(f"; {v.name} {v.max_gap:.0f} s" for v in starved[:4]),
        ),
        (
            "every byte served is aligned MPEG-TS",
            not broken,
            f"{sum(v.sync_errors for v in viewers)} packets out of sync",
        ),
        (
            "at most one engine session per broadcast at any moment",
            ledger_peak(sims) <= 1 and superseded == 0,
            f"peak {ledger_peak(sims)} per infohash over both engines, "
            f"{superseded} superseded",
        ),
        (
            "the failover happened; the old entry reloaded during it",
            match.failover[0]
            and match.failover[2]
            and match.failover[1] in ("starting", "buffering"),
            f"stream_failover {'seen' if match.failover[0] else 'not seen'}; at the "
            f"reload the match was {match.failover[1]}"
            + (" on the other engine" if match.failover[2] else ", not moved"),
        ),
        (
            f"every viewer's first keyframe within {FIRST_VIDEO:g} s of joining",
            not blind,
            f"slowest {slowest_keyframe(planned):.1f} s over "
            f"{len(planned) - len(excused)} viewers ({len(excused)} joined into a "
            "fault, excused)" + "".join(f"; {text}" for text in blind[:4]),
        ),
        (
            "the non-TS session fails with a clear reason, alone",
            not_ts_ok,
            f"reason: {reason or '(none)'}; viewer: "
            + ", ".join(v.end or "?" for v in not_ts_viewers)
            + f"; other failures: {', '.join(beside[:4]) or 'none'}",
        ),
        (
            "nothing left after the last viewer plus linger",
            not tasks
            and not timers
            and not broadcasts_left
            and not starting_left
            and not sessions_left,
            f"{len(tasks)} tasks, {len(timers)} timers, {len(broadcasts_left)} "
            f"broadcasts, {starting_left} starting, {sessions_left} engine sessions "
            f"(drained {drained_after:.1f} s after the last viewer)",
        ),
        (
            "events balance: every start has one stop or fail",
            not unbalanced,
            f"{starts} started, {ends} stopped or failed"
            + "".join(f"; {p}" for p in unbalanced[:4]),
        ),
    ]
    width = max(len(name) for name, _, _ in rows)
    print()
    print(f"{'invariant'.ljust(width)}  result  detail")
    print(f"{'-' * width}  ------  {'-' * 40}")
    for name, ok, detail in rows:
        print(f"{name.ljust(width)}  {'PASS' if ok else 'FAIL':6}  {detail}")
    print()
    engine_faults = [
        f"{names[entry_id]}: {fault}"
        for entry_id, sim in by_entry.items()
        for _, fault in sim.faults_applied
    ]
    kinds: dict[str, int] = {}
    for _, kind, _, _ in main_events:
        kinds[kind] = kinds.get(kind, 0) + 1
    figures = [
        ("match", f"{MATCH:g} s (a two-hour match, compressed)"),
        ("faults injected", f"{len(engine_faults) + len(match.faults)}"),
        *(("  by an engine", text) for text in engine_faults),
        *(("  by the soak", f"t={at:.0f}s {text}") for at, text in match.faults),
        (
            "viewers",
            f"{len(viewers)} ({sum(v.kind == 'ts' for v in viewers)} TS, "
            f"{sum(v.kind == 'hls' for v in viewers)} HLS); "
            f"{len(planned) - len(cut)} of {len(planned)} kept",
        ),
        *(
            (
                f"  {v.name}",
                f"{v.bytes / 1e6:.1f} MB, {v.video_bytes / 1e6:.1f} MB video, "
                f"longest gap {v.max_gap:.1f} s, "
                + (f"{v.segments} segments, " if v.kind == "hls" else "")
                + f"{len(v.cuts)} cuts, {v.end}",
            )
            for v in viewers
            if not v.name.startswith("zapper")
        ),
        (
            "engine sessions opened",
            ", ".join(
                f"{names[e]} {s.counters.sessions_opened}" for e, s in by_entry.items()
            ),
        ),
        (
            "engine sessions stopped/expired",
            ", ".join(
                f"{names[e]} {s.counters.sessions_stopped}/{s.counters.sessions_expired}"
                for e, s in by_entry.items()
            ),
        ),
        (
            "first keyframe, zappers",
            " ".join(
                f"{v.first_keyframe - v.opened:.1f}"
                if v.first_keyframe is not None
                else "none"
                for v in viewers
                if v.name.startswith("zapper")
            )
            + " s",
        ),
        ("match broadcast events", ", ".join(f"{k} {n}" for k, n in kinds.items())),
        (
            "leaks",
            f"{len(tasks)} tasks {tasks[:3]}, {len(timers)} timers {timers[:3]}, "
            f"{len(broadcasts_left)} broadcasts, {sessions_left} engine sessions",
        ),
        ("run time", f"{time.monotonic() - STARTED:.0f} s"),
    ]
    width = max(len(name) for name, _ in figures)
    for name, value in figures:
        print(f"{name.ljust(width)}  {value}")
    failed = [name for name, ok, _ in rows if not ok]
    print()
    if failed:
        print(f"soak FAILED: {'; '.join(failed)}", flush=True)
        return 1
    print("soak passed", flush=True)
    return 0


def ledger_peak(sims: list[EngineSimulator]) -> int:
    """Most sessions one infohash had open at once (the ledger is shared)."""
    return sims[0].ledger.max_concurrent


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep", action="store_true", help="keep Home Assistant's folder and log"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
