"""The producer's per-read path: bytes in, packet-aligned chunks with keyframes out.

Reads are aligned to packets, gathered into chunks, indexed for random-access
points and appended to the shared ring; after a (re)open nothing goes in before the
first keyframe. Bytes that never align are counted here: enough of them in a row
and the data is not MPEG-TS. The work per read is O(bytes), never O(viewers).
"""

from __future__ import annotations

import asyncio
from collections import deque
import logging
import time
from typing import TYPE_CHECKING, Final

from ..ring import Ring
from ..ts import (
    PACKET_SIZE,
    ProgramInfo,
    TsAligner,
    last_counters,
    mark_discontinuity,
    pat_offsets,
    random_access_offsets,
)
from .lifecycle import LifeCycle, Phase

_LOGGER = logging.getLogger(__package__)

BITRATE_WINDOW: Final = 5  # seconds
# Reads are gathered into ring chunks of about this size or age. Every chunk wakes
# every viewer and costs each one a socket write, the cost that grows with viewers;
# 256 KiB (a quarter second at 8 Mbit/s) has a caught-up viewer write one shared
# chunk four times a second, and cut the CPU per delivered Gbit/s by about 40 %
# against 64 KiB (make bench). Players buffer seconds: the added quarter second is
# not seen.
FLUSH_BYTES: Final = 256 * 1024
FLUSH_SECONDS: Final = 0.25
# A run of at least this many aligned packets proves the data is MPEG-TS (three
# in a row can happen by chance in a non-TS file, ten practically cannot).
TS_PROOF_PACKETS: Final = 10
NOT_TS_REASON: Final = (
    "the engine sends no MPEG-TS (is this a video-on-demand torrent?)"
)


class _NotMpegTsError(Exception):
    """The engine's bytes are not MPEG-TS."""


class Ingest(LifeCycle):
    """Engine bytes to ring chunks, for the producer."""

    if TYPE_CHECKING:

        def _wake_viewers(self) -> None: ...

    def _init_ingest(self) -> None:
        self.ring = Ring(self.config.max_ring_bytes, self.config.replay_window)
        self.program = ProgramInfo()
        self._aligner = TsAligner()
        self._await_rap = True
        self._discontinuity = False
        self._no_rap_bytes = 0
        self._no_rai = False
        self._undecodable = 0  # bytes since the data last proved to be MPEG-TS
        self._aligned_bytes = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._last_append = time.monotonic()
        self._rate: deque[list[int]] = deque(maxlen=BITRATE_WINDOW + 1)

    def _reopened(self) -> None:
        """After a restart viewers get null packets, then data from a keyframe."""
        if self.phase is not Phase.STARTING:
            self._to(Phase.BUFFERING)
        self._await_rap = True
        self._discontinuity = True
        self._no_rap_bytes = 0
        self._aligner.reset()
        self.program.reset()
        self._wake_viewers()

    def _feed(self, data: bytes) -> None:
        """The per-read hot path: O(bytes), never O(viewers)."""
        stats = self.stats
        size = len(data)
        stats.bytes_in += size
        now = time.monotonic()
        second = int(now)
        rate = self._rate
        if rate and rate[-1][0] == second:
            rate[-1][1] += size
        else:
            rate.append([second, size])
        aligner = self._aligner
        discarded = aligner.discarded
        aligned = aligner.feed(data)
        discarded = aligner.discarded - discarded
        stats.discarded_bytes += discarded
        stats.resyncs = aligner.resyncs
        if len(aligned) >= TS_PROOF_PACKETS * PACKET_SIZE:
            self._undecodable = 0
        else:
            # Only bytes the aligner gave up on count: the tail it holds for a
            # sync run may still start one, and is judged with the next read.
            self._undecodable += discarded
            if self._undecodable >= self.config.not_ts_bytes:
                raise _NotMpegTsError
        if aligned:
            self._aligned_bytes += len(aligned)
            if not self._pending:
                # Gathered data is flushed at FLUSH_SECONDS old at the latest, so
                # data that arrives just before a stall does not wait for it.
                self._flush_timer = asyncio.get_running_loop().call_later(
                    FLUSH_SECONDS, self._flush_due
                )
            self._pending.append(aligned)
            self._pending_size += len(aligned)
        # Reads come in whatever sizes the socket gives; viewers are woken and
        # written to per ring chunk, so gather reads into fewer, larger chunks.
        # Their age is the flush timer's business.
        if self._pending_size >= FLUSH_BYTES:
            self._flush(now)

    def _flush_due(self) -> None:
        self._flush_timer = None
        if not self._pending or self.closed:
            return
        try:
            self._flush(time.monotonic())
        except Exception:
            # Outside the producer's task: fail the broadcast the same way.
            _LOGGER.exception("Broadcast %s producer crashed", self.name)
            self._fail("internal error")

    def _flush(self, now: float) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        pending = self._pending
        chunk = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_size = 0
        program = self.program
        if self._await_rap and not program.complete:
            program.scan(chunk)
        raps = random_access_offsets(chunk, program.video_pid)
        if self._no_rai and not raps:
            raps = pat_offsets(chunk)
        if self._await_rap:
            chunk, raps = self._start_at_rap(chunk, raps)
            if not chunk:
                return
        self.ring.append(chunk, raps, now)
        if self.phase is Phase.RECOVERING:
            self._recovering(now, self._last_append)
        self._last_append = now
        self.stats.chunks += 1
        self._wake_viewers()

    def _start_at_rap(self, chunk: bytes, raps: list[int]) -> tuple[bytes, list[int]]:
        """Drop data until the first keyframe of a (re)opened session."""
        program = self.program
        if not (raps and program.complete):
            self._no_rap_bytes += len(chunk)
            if self._no_rap_bytes < self.config.rap_fallback_bytes:
                self.stats.discarded_bytes += len(chunk)
                last_counters(chunk, program.counters)
                return b"", []
            # The stream never flags keyframes: join at a PAT (or here), and later
            # viewers at PATs.
            self._no_rai = True
            raps = pat_offsets(chunk) or [0]
        first = raps[0]
        self.stats.discarded_bytes += first
        if first:
            last_counters(memoryview(chunk)[:first], program.counters)
            chunk = chunk[first:]
            raps = [offset - first for offset in raps]
        if self._discontinuity:
            # Viewers already playing get the new session's first keyframe
            # flagged as a discontinuity (decoders reset there).
            chunk = mark_discontinuity(chunk, 0)
        # PAT + PMT lead in (flagged after a restart): every join point of the
        # ring then has the stream's own tables before it.
        header = program.lead_in(self._discontinuity, chunk)
        chunk = header + chunk
        raps = [offset + len(header) for offset in raps]
        self._await_rap = False
        self._keyframe()
        return chunk, raps

    # -- numbers -----------------------------------------------------------------

    @property
    def bitrate(self) -> float:
        """Incoming bit/s over the last full seconds (up to BITRATE_WINDOW)."""
        now = int(time.monotonic())
        recent = [
            (second, size)
            for second, size in self._rate
            if now - BITRATE_WINDOW <= second < now
        ]
        if not recent:
            return 0.0
        span = now - recent[0][0]
        return sum(size for _, size in recent) * 8 / span
