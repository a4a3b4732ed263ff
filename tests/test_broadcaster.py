"""The data plane alone: broadcaster + engine client + simulator, no Home Assistant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.acestream_proxy.stream.broadcast import (
    NOT_TS_REASON,
    BroadcastConfig,
    Broadcaster,
    BroadcastEvent,
    BroadcastState,
    EndReason,
    Phase,
)
from custom_components.acestream_proxy.stream.broadcast.fanout import WAKE_GROUPS
from custom_components.acestream_proxy.stream.broadcast.ingest import _NotMpegTsError
from custom_components.acestream_proxy.stream.engine import (
    ContentKind,
    ContentRef,
    EngineClient,
)
from custom_components.acestream_proxy.stream.ts import (
    PACKET_SIZE,
    ProgramInfo,
    packet_pid,
)
from tests.broadcast_harness import BroadcastHarness
from tests.helpers import NULL_PID, pids, strip_nulls
from tests.simulator import EngineSimulator
from tests.simulator.engine import NotTsSource

CID = ContentRef.parse(ContentKind.CONTENT_ID, "12" * 20)
FIXTURE = Path(__file__).parent / "fixtures" / "sample.ts"


@pytest.fixture
async def client(engine_sim: EngineSimulator) -> AsyncIterator[EngineClient]:
    """Engine client on a plain aiohttp session."""
    async with aiohttp.ClientSession() as http:
        yield EngineClient(http, "127.0.0.1", engine_sim.port)


class Harness(BroadcastHarness):
    """Broadcasters of ``CID``."""

    def __init__(self, client: EngineClient) -> None:
        super().__init__(client, CID)


@pytest.fixture
async def harness(client: EngineClient) -> AsyncIterator[Harness]:
    """Closes whatever the test left open."""
    h = Harness(client)
    yield h
    await h.cancel_tasks()


class Sink:
    """A viewer's socket: collects bytes, can be made slow."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.delay = 0.0
        self.writes = 0

    async def write(self, data: bytes | memoryview) -> None:
        self.writes += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        self.data += data


def _watch(broadcaster: Broadcaster) -> tuple[Sink, asyncio.Task[EndReason]]:
    """A viewer joins and streams into a sink of its own."""
    sink = Sink()
    return sink, asyncio.create_task(broadcaster.join().stream(sink.write))


async def _playing(
    harness: Harness, **config: Any
) -> tuple[Broadcaster, Sink, asyncio.Task[EndReason]]:
    """A broadcast with ``config`` and one viewer watching it, once it plays."""
    broadcaster = await harness.open(**config)
    sink, task = _watch(broadcaster)
    await _until(lambda: broadcaster.phase is Phase.PLAYING)
    return broadcaster, sink, task


@asynccontextmanager
async def _broadcast_of(fixture: Path) -> AsyncIterator[Harness]:
    """A harness on an engine of its own playing ``fixture`` (a quick cold start)."""
    async with (
        EngineSimulator(fixture=fixture, cold_start=0.05) as sim,
        aiohttp.ClientSession() as http,
    ):
        yield Harness(EngineClient(http, "127.0.0.1", sim.port))


async def _until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_slow_viewer_skips_to_newest_keyframe(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """A viewer that falls out of the window jumps to a keyframe, others unaffected."""
    broadcaster = await harness.open(replay_window=1.0, write_timeout=5.0)
    fast, slow = Sink(), Sink()
    fast_viewer, slow_viewer = broadcaster.join(), broadcaster.join()
    tasks = [
        asyncio.create_task(fast_viewer.stream(fast.write)),
        asyncio.create_task(slow_viewer.stream(slow.write)),
    ]
    await _until(lambda: slow.writes >= 3)
    slow.delay = 1.6  # longer than the replay window
    await _until(lambda: slow_viewer.skips >= 1, timeout=8)
    slow.delay = 0
    writes = slow.writes
    await _until(lambda: slow.writes > writes + 2)  # it writes at full speed again
    assert broadcaster.stats.viewers_skipped >= 1
    assert fast_viewer.skips == 0
    assert broadcaster.bitrate > 0
    assert broadcaster.state is BroadcastState.PLAYING
    await broadcaster.async_close()
    assert await asyncio.gather(*tasks) == [EndReason.ENDED, EndReason.ENDED]
    assert BroadcastEvent.STARTED in harness.events
    assert harness.events[-1] is BroadcastEvent.STOPPED
    assert engine_sim.active_sessions() == 0
    for sink in (fast, slow):
        assert set(pids(bytes(sink.data))) - {0x1FFF}


async def test_blocked_header_write_drops_the_viewer(harness: Harness) -> None:
    """A viewer that cannot take even the PAT/PMT is dropped by the write timeout."""
    broadcaster = await harness.open(write_timeout=0.3)
    await _until(lambda: broadcaster.state is BroadcastState.LINGERING)
    blocked = Sink()
    blocked.delay = 5
    viewer = broadcaster.join()
    assert await viewer.stream(blocked.write) is EndReason.DROPPED
    assert broadcaster.stats.viewers_dropped == 1
    viewer.leave()
    viewer.leave()  # idempotent
    assert broadcaster.viewer_count == 0
    await broadcaster.async_close()
    await broadcaster.async_close()  # idempotent


async def test_stream_without_keyframe_flags_still_plays(
    client: EngineClient, tmp_path: Path, socket_enabled: None
) -> None:
    """Some broadcasts never set random_access_indicator: join after a bound."""
    data = bytearray(FIXTURE.read_bytes())
    for offset in range(0, len(data), PACKET_SIZE):
        if data[offset + 3] & 0x20 and data[offset + 4] > 0:
            data[offset + 5] &= ~0x40 & 0xFF
    fixture = tmp_path / "no_rai.ts"
    fixture.write_bytes(bytes(data))
    async with _broadcast_of(fixture) as harness:
        broadcaster = await harness.open(rap_fallback_bytes=300_000)
        sink, task = _watch(broadcaster)
        await _until(lambda: len(sink.data) > 400_000, timeout=8)
        assert broadcaster.stats.discarded_bytes > 200_000
        # A later viewer joins at a PAT, not only at the first chunk.
        late_sink = Sink()
        late = broadcaster.join()
        late_task = asyncio.create_task(late.stream(late_sink.write))
        await _until(lambda: len(late_sink.data) > 50_000, timeout=8)
        assert packet_pid(bytes(late_sink.data), 0) == 0
        await broadcaster.async_close()
        assert await task is EndReason.ENDED
        assert await late_task is EndReason.ENDED
    real = [pid for pid in pids(bytes(sink.data)) if pid != 0x1FFF]
    assert real[0] == 0  # still starts with PAT + PMT
    assert packet_pid(bytes(sink.data), 0) in (0, 0x1FFF)


async def test_mid_stream_stall_sends_keepalive_and_flushes(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """Defect 6: a stall mid-stream keeps viewers fed with null packets at once, and
    the last data before it reaches them without waiting for the stall timeout."""
    broadcaster = await harness.open(stall_timeout=30.0, keepalive_interval=0.2)
    sink, task = _watch(broadcaster)
    await _until(lambda: len(strip_nulls(bytes(sink.data))) > 300_000)
    engine_sim.stall = True
    session = engine_sim.session_for(broadcaster.infohash)
    assert session is not None
    reader = session.reader
    assert reader is not None
    # A strict engine starts the reader mid-stream, at any byte.
    await _until(
        lambda: broadcaster.stats.bytes_in == session.position - reader.start_position
    )
    end = session.position - session.position % PACKET_SIZE  # last whole packet
    tail = engine_sim.fixture.read(end - 20 * PACKET_SIZE, 20 * PACKET_SIZE)
    # The gathered tail is flushed by its timer, not by the next read or the stall.
    await _until(lambda: strip_nulls(bytes(sink.data)).endswith(tail), timeout=2)
    mark = len(sink.data)
    await _until(lambda: NULL_PID in pids(bytes(sink.data[mark:])), timeout=2)
    assert broadcaster.state is BroadcastState.PLAYING  # a stall, not yet a restart
    assert broadcaster.stats.upstream_restarts == 0
    engine_sim.stall = False
    mark = len(sink.data)
    await _until(lambda: len(strip_nulls(bytes(sink.data[mark:]))) > 100_000)
    await broadcaster.async_close()
    assert await task is EndReason.ENDED


async def test_outage_ends_and_the_give_up_clock_resets(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """Defect 1: once data flowed again for healthy_after, the outage is over; a
    later cut, more than retry_give_up after the first one, is retried afresh."""
    broadcaster, sink, task = await _playing(
        harness, retry_give_up=1.0, healthy_after=0.5, retry_backoff_max=0.2
    )
    loop = asyncio.get_running_loop()
    first_cut = loop.time()
    assert engine_sim.cut_readers() == 1
    await _until(lambda: broadcaster.phase is Phase.RECOVERING)
    assert broadcaster.outage is not None
    await _until(lambda: broadcaster.phase is Phase.PLAYING)
    assert broadcaster.outage is None
    # Well past the give-up time since the first failure.
    await _until(lambda: loop.time() > first_cut + 1.5)
    assert broadcaster.phase is Phase.PLAYING
    assert engine_sim.cut_readers() == 1
    await _until(lambda: broadcaster.phase is Phase.RECOVERING)
    outage = broadcaster.outage
    assert outage is not None
    assert outage.since > first_cut + 1.5
    assert outage.attempts <= 1  # the back-off started over too
    assert not broadcaster.closed
    mark = len(sink.data)
    await _until(lambda: len(strip_nulls(bytes(sink.data[mark:]))) > 100_000)
    assert harness.events.count(BroadcastEvent.RESTARTING) == 2
    assert harness.events.count(BroadcastEvent.RECOVERED) == 2
    assert BroadcastEvent.FAILED not in harness.events
    await broadcaster.async_close()
    assert await task is EndReason.ENDED


async def test_a_second_close_waits_for_the_first(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """Defect 3: async_close() while a close runs waits for it; one stream_stopped."""
    broadcaster, _, task = await _playing(harness)
    first = asyncio.create_task(broadcaster.async_close())
    await asyncio.sleep(0)  # the first close is under way
    assert broadcaster.closed
    assert engine_sim.active_sessions() == 1
    await broadcaster.async_close()
    # Returned only once the engine session was stopped and the end was told.
    assert engine_sim.active_sessions() == 0
    assert broadcaster.state is BroadcastState.STOPPED
    assert harness.events.count(BroadcastEvent.STOPPED) == 1
    await first
    await broadcaster.async_close()
    broadcaster.close_soon()
    assert harness.events.count(BroadcastEvent.STOPPED) == 1
    assert BroadcastEvent.FAILED not in harness.events
    assert await task is EndReason.ENDED


def _producer(harness: Harness) -> asyncio.Task[None]:
    return next(
        task
        for task in harness.tasks
        if task.get_name().startswith("acestream_proxy producer")
    )


async def test_cancelled_producer_closes_its_broadcast(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """A producer cancelled from outside never leaves an open broadcast behind."""
    broadcaster, _, task = await _playing(harness)
    assert broadcaster.alive
    _producer(harness).cancel()
    assert await task is EndReason.ENDED
    await _until(lambda: broadcaster.phase is Phase.STOPPED)
    assert not broadcaster.alive
    assert engine_sim.active_sessions() == 0
    assert harness.events.count(BroadcastEvent.STOPPED) == 1
    assert BroadcastEvent.FAILED not in harness.events


async def test_crashed_producer_fails_its_broadcast(
    harness: Harness, engine_sim: EngineSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the producer fails the broadcast once, with a reason, and cleans up."""
    broadcaster, _, task = await _playing(harness)

    def broken(_now: float) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(broadcaster, "_flush", broken)
    assert await task is EndReason.ENDED
    await _until(lambda: broadcaster.phase is Phase.FAILED)
    assert broadcaster.state is BroadcastState.FAILED
    assert broadcaster.failure == "internal error"
    assert engine_sim.active_sessions() == 0
    assert harness.events.count(BroadcastEvent.FAILED) == 1
    assert BroadcastEvent.STOPPED not in harness.events


async def test_not_mpeg_ts_fails_with_a_reason(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """Defect 4: an engine sending a file instead of live TS fails the broadcast
    after not_ts_bytes, with a reason; its bytes never counted as data."""
    engine_sim.not_ts.add(CID.value)
    broadcaster = await harness.open(not_ts_bytes=200_000)
    sink = Sink()
    viewer = broadcaster.join()
    async with asyncio.timeout(10):
        assert await viewer.stream(sink.write) is EndReason.ENDED
    await _until(lambda: broadcaster.phase is Phase.FAILED)
    assert broadcaster.failure == NOT_TS_REASON
    assert set(pids(bytes(sink.data))) <= {NULL_PID}
    assert broadcaster.stats.first_data_at is None
    assert broadcaster.stats.discarded_bytes >= 200_000
    assert harness.events.count(BroadcastEvent.FAILED) == 1
    assert BroadcastEvent.STARTED not in harness.events
    assert engine_sim.active_sessions() == 0


async def test_not_mpeg_ts_counts_only_bytes_judged(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """The not-MPEG-TS budget counts bytes the aligner gave up on, not the tail
    it still holds for a sync run: whatever sizes the reads come in, the
    broadcast fails with at least not_ts_bytes discarded, never fewer."""
    session = await harness.client.start_session(CID)
    broadcaster = Broadcaster(
        client=harness.client,
        session=session,
        content=CID,
        config=BroadcastConfig(not_ts_bytes=200_000),
        spawn=harness.spawn,
        listener=lambda _b, event: harness.events.append(event),
    )
    noise = NotTsSource().data
    held = 2 * PACKET_SIZE  # what the aligner keeps when no sync byte is in sight
    # 200,200 bytes read, 199,824 of them judged: not yet over the budget.
    broadcaster._feed(noise[:199_900])
    broadcaster._feed(noise[199_900:200_200])
    assert broadcaster.stats.bytes_in == 200_200
    assert broadcaster.stats.discarded_bytes == 200_200 - held
    with pytest.raises(_NotMpegTsError):
        broadcaster._feed(noise[200_200:200_400])
    assert broadcaster.stats.discarded_bytes == 200_400 - held
    await harness.client.stop_session(session)
    await _until(lambda: engine_sim.active_sessions() == 0)


async def test_short_non_ts_answers_give_up_with_the_reason(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """Short non-TS answers on every reopen: undecodable bytes never end the
    outage, and the give-up names the cause."""
    engine_sim.not_ts.add(CID.value)
    broadcaster = await harness.open(retry_give_up=0.5, retry_backoff_max=0.1)
    seen = 0
    async with asyncio.timeout(10):
        while not broadcaster.closed:
            # Each reader ends once it delivered some (undecodable) bytes.
            if broadcaster.stats.bytes_in > seen:
                seen = broadcaster.stats.bytes_in
                engine_sim.cut_readers()
            await asyncio.sleep(0.05)
    await _until(lambda: broadcaster.phase is Phase.FAILED)
    assert broadcaster.failure == NOT_TS_REASON
    assert broadcaster.stats.upstream_restarts >= 1
    assert BroadcastEvent.STARTED not in harness.events


async def test_malformed_pmt_still_plays(
    client: EngineClient, tmp_path: Path, socket_enabled: None
) -> None:
    """Defect 5: a PMT too short for its own header crashed the producer on every
    reopen; now it is ignored and the stream plays from the keyframe fallback."""
    data = bytearray(FIXTURE.read_bytes())
    program = ProgramInfo()
    program.scan(bytes(data[: 400 * PACKET_SIZE]))
    assert program.pmt_pid is not None
    broken = 0
    for offset in range(0, len(data), PACKET_SIZE):
        if packet_pid(data, offset) == program.pmt_pid and data[offset + 1] & 0x40:
            pos = offset + 4 + (1 + data[offset + 4] if data[offset + 3] & 0x20 else 0)
            pos += 1 + data[pos]  # pointer field
            data[pos + 1] &= 0xF0
            data[pos + 2] = 5  # section_length: no room for program_info_length
            broken += 1
    assert broken
    fixture = tmp_path / "bad_pmt.ts"
    fixture.write_bytes(bytes(data))
    async with _broadcast_of(fixture) as harness:
        broadcaster = await harness.open(rap_fallback_bytes=300_000)
        sink, task = _watch(broadcaster)
        await _until(lambda: len(strip_nulls(bytes(sink.data))) > 300_000, timeout=8)
        assert broadcaster.phase is Phase.PLAYING
        assert broadcaster.failure is None
        assert not broadcaster.program.complete
        await broadcaster.async_close()
        assert await task is EndReason.ENDED
    assert harness.events.count(BroadcastEvent.STOPPED) == 1
    assert BroadcastEvent.FAILED not in harness.events


async def test_failure_before_the_first_picture_is_an_outage_too(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """No first byte within start_timeout opens an outage; the first keyframe
    starts the broadcast, and healthy_after of data ends the outage."""
    engine_sim.stall = True
    broadcaster = await harness.open(
        start_timeout=0.5, healthy_after=0.5, retry_backoff_max=0.1
    )
    _, task = _watch(broadcaster)
    await _until(lambda: broadcaster.outage is not None)
    engine_sim.stall = False
    assert broadcaster.phase is Phase.STARTING
    assert broadcaster.state is BroadcastState.STARTING
    await _until(lambda: broadcaster.phase is Phase.RECOVERING)
    assert broadcaster.stats.first_data_at is not None
    await _until(lambda: broadcaster.phase is Phase.PLAYING)
    assert broadcaster.outage is None
    assert harness.events.count(BroadcastEvent.STARTED) == 1
    assert BroadcastEvent.RECOVERED not in harness.events
    await broadcaster.async_close()
    assert await task is EndReason.ENDED


async def test_a_failing_tick_hook_does_not_stop_the_tick(harness: Harness) -> None:
    """The per-broadcast tick (keep-alive, write watchdog) outlives a broken hook."""
    broadcaster = await harness.open(keepalive_interval=0.1)
    calls: list[float] = []

    def broken() -> None:
        calls.append(asyncio.get_running_loop().time())
        raise RuntimeError("bug")

    broadcaster.tick_hooks.append(broken)
    await _until(lambda: len(calls) >= 3)
    assert not broadcaster.closed
    await broadcaster.async_close()
    assert broadcaster._ticker is None  # no tick after the close


async def test_pictures_within_an_outage_hold_off_the_give_up(
    harness: Harness, engine_sim: EngineSimulator
) -> None:
    """A stream that plays between cuts but never long enough to end its outage
    is not given up: the clock runs from the outage's last pictures."""
    broadcaster, _, task = await _playing(
        harness, retry_give_up=1.0, healthy_after=60.0, retry_backoff_max=0.1
    )
    first_cut = asyncio.get_running_loop().time()
    for cut in range(3):
        assert engine_sim.cut_readers() == 1
        await _until(lambda n=cut: broadcaster.stats.upstream_restarts == n + 1)
        await _until(lambda: broadcaster.phase is Phase.RECOVERING)
        chunks = broadcaster.stats.chunks
        await _until(lambda c=chunks: broadcaster.stats.chunks > c + 2)
    outage = broadcaster.outage
    assert outage is not None
    assert outage.since <= first_cut + 0.5
    assert asyncio.get_running_loop().time() - first_cut > 1.0
    assert not broadcaster.closed
    await broadcaster.async_close()
    assert await task is EndReason.ENDED
    assert BroadcastEvent.FAILED not in harness.events


async def test_viewers_are_woken_group_by_group(harness: Harness) -> None:
    """A chunk wakes its viewers one group per loop iteration: the loop polls its
    sockets (new connections too) between groups, not only after every write."""
    broadcaster = await harness.open()
    loop = asyncio.get_running_loop()
    iteration = 0
    ticker: asyncio.Handle | None = None

    def tick() -> None:  # runs once per loop iteration
        nonlocal iteration, ticker
        iteration += 1
        ticker = loop.call_soon(tick)

    # (newest chunk, iteration) of every write, by group.
    writes: dict[int, list[tuple[int, int]]] = {}

    def sink_of(group: int) -> Callable[[bytes | memoryview], Any]:
        async def write(_data: bytes | memoryview) -> None:
            writes.setdefault(group, []).append((broadcaster.ring.next_seq, iteration))

        return write

    viewers = [broadcaster.join() for _ in range(WAKE_GROUPS * 2)]
    assert {v.group for v in viewers} == set(range(WAKE_GROUPS))
    tasks = [asyncio.create_task(v.stream(sink_of(v.group))) for v in viewers]
    await _until(lambda: len(writes) == WAKE_GROUPS)
    ticker = loop.call_soon(tick)
    start = broadcaster.ring.next_seq
    try:
        # A chunk every group wrote after it came (all had caught up by then).
        await _until(
            lambda: all(
                any(seq > start for seq, _ in writes[g]) for g in range(WAKE_GROUPS)
            )
        )
    finally:
        assert ticker is not None
        ticker.cancel()
    seq = start + 1
    when = {g: {it for s, it in writes[g] if s == seq} for g in range(WAKE_GROUPS)}
    # Each group in one iteration (both its viewers), the next group in the next.
    assert all(len(iterations) == 1 for iterations in when.values()), when
    first = when[0].pop()
    assert [when[g].pop() - first for g in range(1, WAKE_GROUPS)] == list(
        range(1, WAKE_GROUPS)
    )
    await broadcaster.async_close()
    assert set(await asyncio.gather(*tasks)) == {EndReason.ENDED}


async def test_joiners_at_one_keyframe_share_its_header(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crowd joining at the newest keyframe gets PAT + PMT worked out once for
    that keyframe, not once per joiner; each still starts with them."""
    broadcaster, first, _ = await _playing(harness)
    await _until(lambda: len(first.data) > 0)
    worked_out = 0
    header_before = ProgramInfo.header_before

    def counted(self: ProgramInfo, pieces: list[bytes | memoryview]) -> bytes:
        nonlocal worked_out
        worked_out += 1
        return header_before(self, pieces)

    monkeypatch.setattr(ProgramInfo, "header_before", counted)
    crowd = [_watch(broadcaster) for _ in range(8)]
    await _until(lambda: all(len(sink.data) > 2 * PACKET_SIZE for sink, _ in crowd))
    # Without sharing: one per joiner (a keyframe may come while they join).
    assert worked_out < len(crowd)
    tables = [0, broadcaster.program.pmt_pid]
    for sink, _ in crowd:
        assert [packet_pid(sink.data, offset) for offset in (0, PACKET_SIZE)] == tables
    await broadcaster.async_close()
    await asyncio.gather(*(task for _, task in crowd))
