"""A recording: one more reader of a shared broadcast, written to a file.

No Home Assistant imports. A recording joins its broadcast as an internal viewer
(it keeps the broadcast open, and counts as a recording, not a person), starts at
a keyframe with PAT/PMT first as a TS joiner does, and reads the shared ring from
its own cursor: no second engine session, no copy of the data. Its file is
written by a thread behind a bounded buffer (:mod:`.disk`): while the disk lags,
only the recording waits; if it falls out of the replay window it resumes at the
newest keyframe, flagged as a discontinuity. Outages and failovers reach it as
they reach viewers (same file; the broadcaster flags where the source broke).
When the broadcast ends or gives up, the recording ends with that reason and
keeps what it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
import contextlib
from enum import StrEnum
import logging
from pathlib import Path
import secrets
import time
from typing import Any, Final

from .broadcast import Broadcaster, BroadcastState, Viewer
from .broadcast.config import Spawn
from .disk import BUFFER_BYTES, DiskWriter
from .ring import Cursor
from .timeline import Timeline
from .ts import PACKET_SIZE, discontinuity_lead, mark_discontinuity

_LOGGER = logging.getLogger(__package__)

# How long the end of a recording waits for its disk before giving up on it.
CLOSE_TIMEOUT: Final = 15.0
# How long a stopped recording waits for the next frame to end its file on.
FINISH_WAIT: Final = 2.0


class RecordingState(StrEnum):
    """Where a recording is."""

    RECORDING = "recording"
    FINISHED = "finished"
    FAILED = "failed"


class EndReason(StrEnum):
    """Why a recording that did not fail ended."""

    STOPPED = "stopped"
    DURATION = "duration reached"
    BROADCAST_ENDED = "the broadcast ended"
    SHUTDOWN = "Home Assistant stopped"


def _pes_start(chunk: bytes | memoryview, pid: int, *, last: bool) -> int:
    """Offset of the first (or last) packet of ``chunk`` that starts a PES of
    ``pid``; -1 if none does."""
    whole = len(chunk) // PACKET_SIZE * PACKET_SIZE
    low = bytes(chunk[2:whole:PACKET_SIZE])
    high = 0x40 | (pid >> 8) & 0x1F  # payload_unit_start + the PID's high bits
    find = low.rfind if last else low.find
    index = find(pid & 0xFF)
    while index >= 0:
        offset = index * PACKET_SIZE
        if chunk[offset + 1] & 0x5F == high:
            return offset
        index = (
            low.rfind(pid & 0xFF, 0, index) if last else low.find(pid & 0xFF, index + 1)
        )
    return -1


def _breaks(piece: bytes | memoryview) -> bool:
    """Whether ``piece`` starts where the source broke: the broadcaster leads a
    reopened session in with packets flagged discontinuity_indicator that carry
    no payload (the flagged keyframe after them carries one)."""
    return (
        len(piece) >= PACKET_SIZE
        and piece[3] & 0x30 == 0x20
        and piece[4] > 0
        and bool(piece[5] & 0x80)
    )


class _FrameGate:
    """Holds back the video frame being received until the next one starts.

    Where the source breaks (an outage, a failover, the disk's own gap) the frame
    it was sending is cut; written, it is a decoding error in every player. The
    gate drops it instead: the file goes from a whole frame to the flagged restart.
    """

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held: list[bytes | memoryview] = []

    def drop(self) -> None:
        self.held = []

    def release(self) -> list[bytes | memoryview]:
        held, self.held = self.held, []
        return held

    def feed(
        self, piece: bytes | memoryview, pid: int | None
    ) -> list[bytes | memoryview]:
        """What may be written now that ``piece`` came."""
        if pid is None:  # no video (radio): no frames to keep whole
            return [*self.release(), piece]
        if _breaks(piece):
            self.drop()
        at = _pes_start(piece, pid, last=True)
        if at < 0:
            self.held.append(piece)
            return []
        out = [*self.held, piece[:at]]
        self.held = [piece[at:]]
        return out


type RecordingListener = Callable[["Recording"], None]


class Recording:
    """Writes one broadcast to one file, from a keyframe, until stopped."""

    def __init__(
        self,
        broadcaster: Broadcaster,
        path: Path,
        *,
        duration: float | None = None,
        listener: RecordingListener | None = None,
        buffer_bytes: int = BUFFER_BYTES,
        close_timeout: float = CLOSE_TIMEOUT,
        spawn: Spawn | None = None,
    ) -> None:
        """Prepare to record ``broadcaster`` into ``path`` (nothing runs yet)."""
        self.id = secrets.token_hex(6)
        self.broadcaster = broadcaster
        self.path = path
        self.duration_limit = duration
        self.state = RecordingState.RECORDING
        self.reason: str | None = None
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.gaps = 0  # resumptions after the disk fell behind the window
        self.bytes_recorded = 0
        self._listener = listener
        # The owner's tasks, if it wants them (its shutdown ends recordings first).
        self._spawn = spawn or broadcaster.spawn
        self._close_timeout = close_timeout
        self._timeline = Timeline()
        self._writer = DiskWriter(
            path, limit=buffer_bytes, transform=self._timeline.feed
        )
        self._viewer: Viewer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: EndReason | None = None
        self._kick = asyncio.Event()
        self._deadline: asyncio.TimerHandle | None = None
        self._gate = _FrameGate()
        self._video_pid: int | None = None
        # Monotonic time of the first recorded data, and of the newest.
        self._first: float | None = None
        self._last: float | None = None

    @property
    def running(self) -> bool:
        """Still recording (its file is open)."""
        return self.state is RecordingState.RECORDING

    @property
    def bytes_written(self) -> int:
        """Bytes on disk so far."""
        return self._writer.written

    @property
    def seconds(self) -> float:
        """Seconds of the broadcast recorded so far."""
        if self._first is None or self._last is None:
            return 0.0
        return max(self._last - self._first, 0.0)

    def start(self) -> None:
        """Join the broadcast and start recording (raises BroadcastClosedError)."""
        b = self.broadcaster
        self._viewer = b.join(internal=True)
        b.recordings += 1
        self._writer.start()
        self._task = self._spawn(self._run(), f"acestream_proxy record {self.id}")
        self._tell()

    def stop(self, reason: EndReason = EndReason.STOPPED) -> asyncio.Task[None] | None:
        """End the recording (its file is finished cleanly); returns its task."""
        if self._stopping is None:
            self._stopping = reason
        self._kick.set()
        return self._task

    async def async_stop(self, reason: EndReason = EndReason.STOPPED) -> None:
        """End the recording and wait until its file is closed."""
        task = self.stop(reason)
        if task is not None and task is not asyncio.current_task():
            await asyncio.shield(task)

    # -- the task ----------------------------------------------------------------

    async def _run(self) -> None:
        b = self.broadcaster
        failure: str | None = None
        reason: str = EndReason.STOPPED
        try:
            reason, failure = await self._record()
        except asyncio.CancelledError:
            # The owner is going away (Home Assistant stops): finish the file.
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
            reason = self._stopping or EndReason.SHUTDOWN
        except Exception:
            _LOGGER.exception("Recording of %s crashed", b.name)
            failure = "internal error"
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            if self._viewer is not None:
                b.recordings -= 1
                self._viewer.leave()
        closed = await self._writer.close(self._close_timeout)
        error = self._writer.error
        if error is not None:
            failure = f"writing the file failed: {error.strerror or error}"
        elif not closed:
            failure = "the disk did not finish writing the file"
        self.ended_at = time.time()
        self.state = (
            RecordingState.FINISHED if failure is None else RecordingState.FAILED
        )
        self.reason = reason if failure is None else failure
        _LOGGER.info("Recording of %s ended: %s", b.name, self.reason)
        self._tell()

    async def _record(self) -> tuple[str, str | None]:
        """Copy the ring to the writer until told to stop: (reason, failure)."""
        b = self.broadcaster
        ring = b.ring
        writer = self._writer
        batch = b.config.write_batch
        cursor: Cursor | None = None
        resumed = False
        while True:
            if writer.error is not None:
                return "", "writing the file failed"
            if self._stopping is not None:
                if cursor is not None:
                    await self._finish(cursor)
                return self._stopping, None
            if cursor is None:
                if b.closed:
                    return self._closed_reason()
                cursor = self._join(resumed=resumed)
                if cursor is not None:
                    continue
            elif ring.behind(cursor):
                self.gaps += 1
                _LOGGER.warning(
                    "Recording of %s fell behind (disk too slow); a gap follows",
                    b.name,
                )
                cursor, resumed = None, True
                continue
            else:
                pieces = ring.read(cursor, batch)
                if pieces:
                    self._pass(*pieces)
                    self._advanced(cursor)
                    if writer.full:
                        await self._wait(writer.wait_room())
                    continue
                if b.closed:
                    return self._closed_reason()  # everything it had is written
            await self._wait(b.wake.wait())

    def _join(self, *, resumed: bool) -> Cursor | None:
        """Start (or resume) at the newest keyframe, PAT and PMT first."""
        b = self.broadcaster
        ring = b.ring
        cursor = ring.newest_rap()
        if cursor is None:
            return None
        self._begin(cursor)
        header = b.program.header_before(ring.before(cursor))
        pieces = ring.read(cursor, b.config.write_batch)
        if resumed and pieces:
            # The disk lagged out of the window: the file jumps here.
            pieces[0] = mark_discontinuity(bytes(pieces[0]), 0)
            header = discontinuity_lead(header, pieces[0]) + header
        self._gate.drop()
        self._pass(header, *pieces)
        self._advanced(cursor)
        return cursor

    def _pass(self, *pieces: bytes | memoryview) -> None:
        """Through the frame gate to the file."""
        # The broadcaster forgets the program at a reopen, before the recording
        # has read the old session's end: keep the last one known.
        pid = self._video_pid = self.broadcaster.program.video_pid or self._video_pid
        self._timeline.video_pid = pid
        for piece in pieces:
            self._put(*self._gate.feed(piece, pid))

    async def _finish(self, cursor: Cursor) -> None:
        """Write on up to the next video frame: the file ends on a whole one."""
        b = self.broadcaster
        ring = b.ring
        pid = b.program.video_pid or self._video_pid
        until = asyncio.get_running_loop().time() + FINISH_WAIT
        while pid is not None and not b.closed and not ring.behind(cursor):
            for piece in ring.read(cursor, b.config.write_batch):
                at = _pes_start(piece, pid, last=False)
                if at >= 0:
                    self._put(*self._gate.release(), piece[:at])
                    self._advanced(cursor)
                    return
                self._gate.held.append(piece)
            self._advanced(cursor)
            try:
                async with asyncio.timeout_at(until):
                    await b.wake.wait()
            except TimeoutError:
                return

    def _begin(self, cursor: Cursor) -> None:
        if self._first is not None:
            return
        # The duration counts from the keyframe the file starts with (up to a GOP
        # before now), so the file holds that much of the broadcast.
        self._first = self._last = self.broadcaster.ring.time_of(cursor)
        if self.duration_limit is not None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_at(
                self._first + self.duration_limit, self.stop, EndReason.DURATION
            )

    def _advanced(self, cursor: Cursor) -> None:
        # A read ends on a chunk boundary: the newest chunk written is the one
        # before the cursor.
        ring = self.broadcaster.ring
        if ring.first_seq < cursor.seq:
            self._last = ring.time_of(Cursor(cursor.seq - 1))

    def _put(self, *pieces: bytes | memoryview) -> None:
        writer = self._writer
        for piece in pieces:
            if piece:
                writer.put(piece)
                self.bytes_recorded += len(piece)

    async def _wait(self, waiting: Coroutine[Any, Any, Any]) -> None:
        """Wait for ``waiting`` or a stop."""
        kick = asyncio.ensure_future(self._kick.wait())
        other = asyncio.ensure_future(waiting)
        try:
            await asyncio.wait((kick, other), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (kick, other):
                future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(kick, other, return_exceptions=True)

    def _closed_reason(self) -> tuple[str, str | None]:
        b = self.broadcaster
        if b.state is BroadcastState.FAILED:
            return "", b.failure or "the broadcast failed"
        return EndReason.BROADCAST_ENDED, None

    def _tell(self) -> None:
        if self._listener is None:
            return
        try:
            self._listener(self)
        except Exception:
            _LOGGER.exception("Recording listener failed for %s", self.path)
