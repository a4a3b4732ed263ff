"""Reading the stream for the cutter: tables, clocks, timestamps, restarts.

The segmenter reads TS as a viewer receives it. Most packets need no look (the
rest of a PES already started in the segment); PES starts, tables and packets with
an adaptation field do: the video's timestamps time the segments (a program
without video is timed by its first stream with timestamps), the stream's own PAT
and PMT head every segment, and an upstream restart (flagged by the broadcaster,
or timestamps that jump) is a discontinuity after which timestamps are rebased to
go on from where the output was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
import functools
import re
from typing import Final

from ..broadcast import KEEPALIVE
from ..ts import NULL_PID, PACKET_SIZE, PAT_PID, ProgramInfo
from .cutter import MAX_SEGMENT_BYTES, Cutter
from .pes import (
    PTS_HZ,
    PTS_WRAP,
    _flagged,
    _pes_size,
    _retime,
    pes_timestamps,
    ticks,
)
from .window import FIRST_SEQ, Partial

# Video timestamps that move back, or forward by more than this, without a flag:
# the source restarted anyway.
JUMP_SECONDS: Final = 5.0
# Seconds between the output's last timestamp and the first after a discontinuity.
REBASE_GAP: Final = 1.0


# Third byte of a packet without an adaptation field (0x20 clear).
_NO_AF: Final = rb"[\x00-\x1f\x40-\x5f\x80-\x9f\xc0-\xdf]"


@functools.cache
def _plain_run(
    pids: frozenset[int],
) -> Callable[[bytes, int, int], re.Match[bytes] | None]:
    """``match`` of a run of packets that need no look: one of ``pids``, no
    payload_unit_start, no adaptation field (the rest of a PES started before)."""
    heads = b"|".join(
        b"["
        + re.escape(bytes(pid >> 8 | flags for flags in (0, 0x20, 0x80, 0xA0)))
        + b"]"
        + re.escape(bytes([pid & 0xFF]))
        for pid in sorted(pids)
    )
    if not heads:
        return re.compile(b"").match
    return re.compile(
        rb"(?:\x47(?:" + heads + rb")" + _NO_AF + rb".{184})*", re.DOTALL
    ).match


class Segmenter(Cutter):
    """Cuts a TS byte stream (as a viewer receives it) into HLS segments."""

    def __init__(
        self,
        target_duration: float = 2.0,
        window: int = 8,
        max_bytes: int = MAX_SEGMENT_BYTES,
    ) -> None:
        """Aim for ``target_duration`` segments; keep at least ``window`` of them."""
        super().__init__(target_duration, window, max_bytes)
        self.program = ProgramInfo()
        self._pat = b""
        self._pmt = b""
        # Output timestamps = source + shift (mod 2**33): set at discontinuities.
        self._shift = 0
        self._raw_clock: int | None = None
        self._video_end: int | None = None
        self._audio_end: int | None = None
        self._restarted = False
        self._pats = 0  # PATs since the start: the first is the viewer's header
        # What times segments: the video PID (or the first timed stream if none).
        self._clock_pid: int | None = None

    def resume(self) -> None:
        """The consumer rejoins after a pause: what follows is discontinuous.

        The segment being cut ends as at an upstream restart: its parts stay as
        listed, what is left of it without its unfinished PES is its last part.
        """
        if self._closing is not None:
            self._finish_closing()
        building = self._building
        if building is not None and building.start is not None:
            duration = self._drop_unfinished(building)
            if duration is not None:
                self._finish(building, duration)
        self._building = None
        self.partial = None
        self._plain = set()
        self._pats = 0
        self._discontinuity = bool(self.segments) or self.next_seq > FIRST_SEQ
        if self._discontinuity:
            # The playlist hints the next segment, discontinuous whatever comes.
            self._publish_partial(Partial(True, datetime.now(UTC)))

    def feed(self, data: bytes | memoryview) -> None:
        """Consume aligned TS (what a viewer is sent)."""
        if data is KEEPALIVE:
            return
        chunk = bytes(data)
        size = len(chunk) - len(chunk) % PACKET_SIZE
        key = frozenset(self._plain)
        skip = _plain_run(key)
        run = pos = 0
        while pos < size:
            # The common case, a run of packets that carry more of a PES started
            # in the segment, is skipped by the regular expression engine.
            match = skip(chunk, pos, size)
            if match is not None and match.end() > pos:
                pos = match.end()
                continue
            if run < pos and self._building is not None:
                self._building.data += chunk[run:pos]
            self._packet(chunk[pos : pos + PACKET_SIZE])
            pos += PACKET_SIZE
            run = pos
            if len(self._plain) != len(key) or not key <= self._plain:
                key = frozenset(self._plain)
                skip = _plain_run(key)
        building = self._building
        if building is not None:
            if run < size:
                building.data += chunk[run:size]
            if len(building.data) > self.max_bytes:
                self.stats.byte_cuts += 1
                self._cut(None, discontinuity=False)

    def _packet(self, packet: bytes) -> None:
        """A packet that needs a look: a PES start, a table, or a PES tail."""
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        if pid == NULL_PID:
            return
        start = bool(packet[1] & 0x40)
        video = pid == self._clock_pid or (start and self._clocks(pid, packet))
        if self._shift and (start or packet[3] & 0x20) and not (start and video):
            packet = _retime(packet, self._shift)  # a video start: see _video
        if pid in (PAT_PID, self.program.pmt_pid):
            self._table(pid, packet, start)
            return
        if self._tail(pid, packet, start):
            return
        if video:
            if start and self._video(pid, packet):
                return
            if not packet[3] & 0x10 and _flagged(packet)[1]:
                # The broadcaster's mark of an upstream restart: the next frame
                # starts anew, whatever its timestamps say.
                self._restarted = True
        building = self._building
        if building is None:
            return
        if start:
            building.pes[pid] = (len(building.data), _pes_size(packet))
            building.data += packet
            self._plain.add(pid)
            stamps = pes_timestamps(packet)
            if stamps is not None:
                self._audio_end = stamps[0]
        elif pid in self._plain:
            building.data += packet  # one with an adaptation field
        else:
            # The rest of a PES whose start this segment does not have.
            self.stats.orphan_packets += 1

    def _clocks(self, pid: int, packet: bytes) -> bool:
        """Whether a PES start makes its PID the clock: a program without video
        (radio) is timed by its first stream with timestamps."""
        if (
            self._clock_pid is None
            and self.program.video_pid is None
            and self.program.complete
            and pes_timestamps(packet) is not None
        ):
            self._clock_pid = pid
            return True
        return False

    def _table(self, pid: int, packet: bytes, start: bool) -> None:
        program = self.program
        if start:
            if pid == PAT_PID:
                if program.pat is None or program.pat[4:] != packet[4:]:
                    program.reset()
                    program.scan(packet)
                    self._clock_pid = None
                self._pat = packet
                self._pats += 1
                building = self._building
                if (
                    building is not None
                    and building.clock is not None
                    and building.start is not None
                    and self._no_keyframes(building.clock)
                    and ticks(building.start, building.clock) + self._frame
                    >= self._target()
                ):
                    # No keyframe flags: cut at the PAT. The segment header
                    # replaces the packet itself.
                    self.stats.pat_cuts += 1
                    self._cut(None, discontinuity=False)
                    return
            else:
                if program.pmt is None or program.pmt[4:] != packet[4:]:
                    program.pmt = None
                    program.scan(packet)
                    self._clock_pid = program.video_pid
                self._pmt = packet
            building = self._building
            if building is not None and pid in building.tables:
                # The header's copy leads into this one, whatever came before.
                offset = building.tables.pop(pid) + 3
                data = building.data
                data[offset] = (data[offset] & 0xF0) | ((packet[3] - 1) & 0x0F)
        if self._building is not None:
            self._building.data += packet

    def _video(self, pid: int, packet: bytes) -> bool:
        """A video PES starts: time it, maybe cut before it. False: no timestamp."""
        stamps = pes_timestamps(packet)
        if stamps is None:
            return False
        raw = stamps[1]
        keyframe, flagged = _flagged(packet)
        flagged |= self._restarted
        self._restarted = False
        building = self._building
        if building is None and not keyframe and self._pats < 2:
            # No keyframe flag: start after a PAT of the stream itself (the first
            # one is the viewer's header), where a decoder can start.
            return False
        previous, self._raw_clock = self._raw_clock, raw
        step = ticks(previous, raw) if previous is not None else 0
        jumped = step < -PTS_HZ or step > JUMP_SECONDS * PTS_HZ
        if building is None:
            if self._discontinuity:
                self._rebase(raw)
            clock = (raw + self._shift) % PTS_WRAP
            self._track_keyframe(clock, keyframe)
            self._begin(clock, self._discontinuity)
        elif building.start is not None and (flagged or jumped):
            self.stats.discontinuities += 1
            duration = self._drop_unfinished(building)
            self._rebase(raw)
            clock = (raw + self._shift) % PTS_WRAP
            self._track_keyframe(clock, keyframe)
            self._cut(clock, discontinuity=True, duration=duration)
        else:
            clock = (raw + self._shift) % PTS_WRAP
            self._track_keyframe(clock, keyframe)
            if building.start is None:
                self._started(building, clock)
            elif self._should_cut(building, clock, keyframe):
                self._cut(clock, discontinuity=False)
            else:
                if step > 0:
                    building.frame = self._frame = step
                building.clock = clock
                if self._closing is not None:
                    self._maybe_finish_closing()
        self._video_end = clock
        if self._shift:
            packet = _retime(packet, self._shift)
        building = self._building
        assert building is not None
        self._part(building, clock, keyframe)
        building.pes[pid] = (len(building.data), -1)
        building.data += packet
        self._plain.add(pid)
        return True

    def _rebase(self, raw: int) -> None:
        """After a discontinuity timestamps go on from where the output was.

        Players that read segments as one stream (ffmpeg) need them monotonic;
        the gap leaves room for audio muxed ahead of the new session's video.
        """
        end = self._video_end
        if end is None:
            return
        if self._audio_end is not None and ticks(end, self._audio_end) > 0:
            end = self._audio_end
        self._shift = (end + int(REBASE_GAP * PTS_HZ) - raw) % PTS_WRAP
