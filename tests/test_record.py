"""Recordings on the data plane: broadcaster + strict simulator + real files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
import json
import os
from pathlib import Path
import resource
import signal
import threading
import time
from typing import Any

import aiohttp
import pytest

from custom_components.acestream_proxy.stream.broadcast import (
    Broadcaster,
    BroadcastState,
    EndReason,
)
from custom_components.acestream_proxy.stream.engine import (
    ContentKind,
    ContentRef,
    EngineClient,
)
from custom_components.acestream_proxy.stream.record import (
    EndReason as RecordingEnd,
    Recording,
    RecordingState,
    _FrameGate,
)
from custom_components.acestream_proxy.stream.ts import PAT_PID, ProgramInfo
from tests.broadcast_harness import BroadcastHarness
from tests.helpers import discontinuities, pids, run
from tests.simulator import EngineSimulator

CID = ContentRef.parse(ContentKind.CONTENT_ID, "34" * 20)


class Harness(BroadcastHarness):
    """Broadcasters on the simulator, their tasks, and viewers that count bytes."""

    def __init__(self, http: aiohttp.ClientSession, sim: EngineSimulator) -> None:
        super().__init__(EngineClient(http, "127.0.0.1", sim.port), CID)
        self.ended: list[Recording] = []

    def record(self, broadcaster: Broadcaster, path: Path, **kw: Any) -> Recording:
        def told(recording: Recording) -> None:
            if not recording.running:
                self.ended.append(recording)

        recording = Recording(broadcaster, path, listener=told, **kw)
        recording.start()
        return recording

    def watch(self, broadcaster: Broadcaster) -> Counter:
        counter = Counter()
        viewer = broadcaster.join()
        counter.task = self.spawn(counter.run(viewer.stream), "viewer")
        return counter


class Counter:
    """A fast viewer: counts what it gets and how it ended."""

    def __init__(self) -> None:
        self.bytes = 0
        self.end: EndReason | None = None
        self.task: asyncio.Task[None] | None = None

    async def write(self, data: bytes | memoryview) -> None:
        self.bytes += len(data)

    async def run(self, stream: Callable[..., Coroutine[Any, Any, EndReason]]) -> None:
        self.end = await stream(self.write)

    async def rate(self, seconds: float) -> float:
        """Bytes per second it receives over the next ``seconds``."""
        (rate,) = await per_second(seconds, lambda: self.bytes)
        return rate


async def per_second(seconds: float, *counts: Callable[[], int]) -> list[float]:
    """How fast each count grows over the same next ``seconds``."""
    before, start = [count() for count in counts], time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - start
    return [(count() - b) / elapsed for count, b in zip(counts, before, strict=True)]


@pytest.fixture
async def harness(engine_sim: EngineSimulator) -> AsyncIterator[Harness]:
    async with aiohttp.ClientSession() as http:
        h = Harness(http, engine_sim)
        yield h
        await h.cancel_tasks()


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def probe(path: Path) -> tuple[float, str]:
    """The file's duration by ffprobe, and what ffmpeg says decoding all of it."""
    code, out, err = await run(
        "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
        str(path),
    )  # fmt: skip
    assert code == 0, err
    code, _, errors = await run(
        "ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"
    )
    assert code == 0, errors
    return float(json.loads(out)["format"]["duration"]), errors


async def test_a_recording_starts_at_a_keyframe_and_ends_on_time(
    harness: Harness, tmp_path: Path
) -> None:
    """PAT, PMT, then a keyframe; the duration counts from it; it is an internal
    reader that keeps the broadcast open and is no viewer."""
    broadcaster = await harness.open(linger=0.0)
    path = tmp_path / "acestream" / "match.ts"
    recording = harness.record(broadcaster, path, duration=4.0)
    assert recording.running
    assert broadcaster.recordings == 1
    assert broadcaster.viewer_count == 0
    await until(lambda: not recording.running, timeout=20)
    assert recording.state is RecordingState.FINISHED
    assert recording.reason == RecordingEnd.DURATION
    assert 3.5 <= recording.seconds <= 4.5
    data = path.read_bytes()
    assert len(data) == recording.bytes_written == recording.bytes_recorded
    program = ProgramInfo()
    program.scan(data[:376])
    assert pids(data[:376])[0] == PAT_PID
    assert program.complete
    third = data[376:564]
    assert third[3] & 0x20
    assert third[5] & 0x40
    duration, errors = await probe(path)
    assert abs(duration - 4.0) <= 1.0
    assert not errors
    # Held open while it recorded (linger 0), closed once it ended.
    await until(lambda: broadcaster.closed)
    assert broadcaster.recordings == 0
    assert harness.ended == [recording]


async def test_a_recording_survives_a_cut_and_a_failover(
    harness: Harness, engine_sim: EngineSimulator, tmp_path: Path
) -> None:
    """Same file through an upstream cut and a move to another engine: the breaks
    are flagged, the file decodes cleanly and spans the wall-clock time."""
    # The spare plays the broadcast at the same instant as the first engine: one
    # that lagged would send again as many seconds as it lags.
    live_age = engine_sim.live_age + engine_sim.elapsed()
    async with (
        EngineSimulator(cold_start=0.3, strict=True, live_age=live_age) as spare,
        aiohttp.ClientSession() as http,
    ):
        other = EngineClient(http, "127.0.0.1", spare.port)
        broadcaster = await harness.open(
            failover=lambda _b: ("spare", other), stall_timeout=2.0
        )
        path = tmp_path / "match.ts"
        recording = harness.record(broadcaster, path, duration=12.0)
        await until(lambda: recording.seconds > 2)
        engine_sim.schedule("cut at 0s")
        await until(lambda: broadcaster.stats.upstream_restarts >= 1)
        await until(lambda: recording.seconds > 6, timeout=20)
        await engine_sim.stop()
        await until(lambda: broadcaster.engine_id == "spare", timeout=20)
        await until(lambda: not recording.running, timeout=30)
        assert recording.state is RecordingState.FINISHED
        data = path.read_bytes()
        assert discontinuities(data) >= 2
        duration, errors = await probe(path)
        # Besides the 12 s, the file keeps what an engine sends at once when a
        # session starts (up to a burst older than the instant it came): its
        # first keyframe may be one, and the spare's burst comes again after
        # what the file has, a step back that goes on one frame later.
        burst = engine_sim.burst_seconds + spare.burst_seconds
        assert 11.0 <= duration <= 12.0 + burst + 0.5, duration
        assert not errors
        await broadcaster.async_close()


async def test_a_paused_disk_drops_no_viewer(harness: Harness, tmp_path: Path) -> None:
    """The disk stops taking data (a FIFO nobody reads): viewers keep their rate,
    the recording waits, skips what left the window, and goes on when the disk
    does, with the jump flagged."""
    broadcaster = await harness.open(replay_window=2.0, write_timeout=1.0)
    viewer = harness.watch(broadcaster)
    fifo = tmp_path / "paused.ts"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    received = bytearray()
    stop_reading = threading.Event()

    def drain() -> None:
        while not stop_reading.is_set():
            try:
                received.extend(os.read(reader, 1 << 20))
            except BlockingIOError:
                time.sleep(0.01)

    thread = threading.Thread(target=drain)
    try:
        recording = harness.record(broadcaster, fifo, buffer_bytes=256 * 1024)
        # The FIFO took what fits in a pipe, the buffer is full: the recording waits.
        await until(lambda: recording.bytes_recorded >= 256 * 1024, timeout=20)
        rate, source = await per_second(  # the disk stays paused all along
            4.0, lambda: viewer.bytes, lambda: broadcaster.stats.bytes_in
        )
        # The producer goes on reading (a recording that held it up would stop
        # it dead), and the viewer gets what it reads. Both are measured on this
        # loop, so a busy machine slows them alike.
        assert source > 0.5 * harness_bitrate(broadcaster)
        assert rate > 0.85 * source
        assert viewer.end is None
        assert broadcaster.stats.viewers_dropped == 0
        assert recording.running
        assert recording.bytes_written < 512 * 1024
        thread.start()
        written = recording.bytes_written
        await until(lambda: recording.bytes_written > written + 512 * 1024)
        await recording.async_stop()
    finally:
        stop_reading.set()
        if thread.is_alive():
            thread.join()
        # Also frees the writer thread if the disk was never drained.
        os.close(reader)
    assert recording.state is RecordingState.FINISHED
    assert recording.reason == RecordingEnd.STOPPED
    assert recording.gaps >= 1
    assert discontinuities(bytes(received)) >= 1
    assert viewer.end is None
    assert not broadcaster.closed
    await broadcaster.async_close()


def harness_bitrate(broadcaster: Broadcaster) -> float:
    """The broadcast's incoming rate in bytes per second."""
    return broadcaster.bitrate / 8


@pytest.fixture
def file_size_limit() -> Iterator[Callable[[int], None]]:
    """Lets a test cap the size of files this process writes (a disk that fills
    up), and lifts the cap afterwards. SIGXFSZ is ignored, so a write past the cap
    fails with EFBIG as a full disk fails with ENOSPC."""
    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def cap(size: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, saved[1]))

    try:
        yield cap
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, saved)
        signal.signal(signal.SIGXFSZ, handler)


async def test_a_full_disk_fails_only_the_recording(
    harness: Harness, tmp_path: Path, file_size_limit: Callable[[int], None]
) -> None:
    """The file hits the disk's end mid-recording: the recording fails with the
    reason and keeps what it wrote; the viewer goes on at the broadcast's rate."""
    broadcaster = await harness.open()
    viewer = harness.watch(broadcaster)
    await until(lambda: broadcaster.bitrate > 0)
    path = tmp_path / "full.ts"
    file_size_limit(1024 * 1024)
    recording = harness.record(broadcaster, path)
    await until(lambda: not recording.running, timeout=30)
    assert recording.state is RecordingState.FAILED
    assert recording.reason is not None
    assert recording.reason.startswith("writing the file failed: File too large")
    assert 0 < path.stat().st_size <= 1024 * 1024
    rate = await viewer.rate(3.0)
    assert rate > 0.8 * harness_bitrate(broadcaster)
    assert viewer.end is None
    assert not broadcaster.closed
    assert broadcaster.recordings == 0
    await broadcaster.async_close()


async def test_an_unwritable_folder_fails_the_recording(
    harness: Harness, tmp_path: Path
) -> None:
    """A folder that cannot be made: failed with the system's reason, at once."""
    broadcaster = await harness.open()
    (tmp_path / "file").write_text("not a folder")
    recording = harness.record(broadcaster, tmp_path / "file" / "sub" / "match.ts")
    await until(lambda: not recording.running)
    assert recording.state is RecordingState.FAILED
    assert recording.reason == "writing the file failed: Not a directory"
    assert not broadcaster.closed
    await broadcaster.async_close()


async def test_a_broadcast_that_gives_up_ends_the_recording_with_its_reason(
    harness: Harness, engine_sim: EngineSimulator, tmp_path: Path
) -> None:
    """The engine stays down: the recording fails with the broadcast's reason and
    keeps what it recorded."""
    broadcaster = await harness.open(retry_give_up=1.0, stall_timeout=1.0)
    path = tmp_path / "match.ts"
    recording = harness.record(broadcaster, path)
    await until(lambda: recording.bytes_written > 0)
    await engine_sim.stop()
    await until(lambda: not recording.running, timeout=30)
    assert broadcaster.state is BroadcastState.FAILED
    assert recording.state is RecordingState.FAILED
    assert recording.reason == broadcaster.failure
    assert path.stat().st_size == recording.bytes_written > 0


async def test_the_end_of_a_broadcast_and_a_cancel_finish_the_file(
    harness: Harness, tmp_path: Path
) -> None:
    """A stopped broadcast ends its recording cleanly; so does the owner
    cancelling the recording's task (Home Assistant stopping)."""
    broadcaster = await harness.open()
    first = harness.record(broadcaster, tmp_path / "a.ts")
    second = harness.record(broadcaster, tmp_path / "b.ts")
    await until(lambda: first.bytes_written > 0 and second.bytes_written > 0)
    assert broadcaster.recordings == 2
    assert broadcaster.viewer_count == 0
    (task,) = (t for t in harness.tasks if t.get_name().endswith(second.id))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert second.state is RecordingState.FINISHED
    assert second.reason == RecordingEnd.SHUTDOWN
    await broadcaster.async_close()
    await until(lambda: not first.running)
    assert first.reason == RecordingEnd.BROADCAST_ENDED
    for recording in (first, second):
        assert recording.path.stat().st_size == recording.bytes_written


async def test_a_disk_that_never_finishes_fails_the_recording_only(
    harness: Harness, tmp_path: Path
) -> None:
    """The disk hangs at the end: the recording gives up on it after its grace,
    with a reason, and the broadcast goes on; listeners that fail are logged."""
    broadcaster = await harness.open()
    fifo = tmp_path / "hung.ts"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

    def broken_listener(_recording: Recording) -> None:
        raise RuntimeError("listener bug")

    recording = Recording(
        broadcaster,
        fifo,
        listener=broken_listener,
        buffer_bytes=256 * 1024,
        close_timeout=0.5,
    )
    recording.start()
    await until(lambda: recording.bytes_recorded >= 256 * 1024, timeout=20)
    await recording.async_stop()
    assert recording.state is RecordingState.FAILED
    assert recording.reason == "the disk did not finish writing the file"
    assert not broadcaster.closed
    # The disk comes back as gone: its thread ends (broken pipe) and is joined.
    os.close(reader)
    await until(
        lambda: (
            not any(
                t.name.startswith("acestream_proxy writer")
                for t in threading.enumerate()
            )
        )
    )
    await broadcaster.async_close()


def test_the_frame_gate_keeps_frames_whole() -> None:
    """A frame cut by a break is dropped; a stream without video passes as is."""
    gate = _FrameGate()
    frame = bytes([0x47, 0x41, 0x00, 0x10]) + bytes(184)  # PES start, PID 0x100
    rest = bytes([0x47, 0x01, 0x00, 0x11]) + bytes(184)
    flag = bytes([0x47, 0x01, 0x00, 0x20, 0xB7, 0x80]) + b"\xff" * 182
    assert gate.feed(frame, 0x100) == [b""]
    assert gate.feed(rest, 0x100) == []
    assert gate.feed(flag + frame, 0x100) == [flag]  # the cut frame is gone
    assert gate.feed(rest, None) == [frame, rest]
