"""A recording's timestamps kept going forward across splices (no Home Assistant).

Where the source restarts (an outage, a failover to another engine, the recording's
own resume), the new session may begin a little before where the file was: the
same frames again, with timestamps that step back. ffmpeg, remuxing the file to
MP4, takes a step back of more than 0.1 s as a new timeline, but squeezes a smaller
one into one-tick steps: frames that share one instant in the MP4, which decoders
report. After each flagged splice the first video frame, and everything after it,
is moved to one frame after the last one written, as ffmpeg does with the larger
steps; a step forward (time lost in the outage) is kept as it is.

Audio needs more than the move. A muxer writes an audio PES once its frames are
whole, a fraction of a second after the video beside it, so a session that starts
again at a keyframe sends first the audio of the moments just before it. The file
already has audio up to where the old session stopped: moved with the video, the
new audio would overlap it, and its timestamps step back. So after a splice each
audio (or other timed) PES that would start before the last one written ends is
left out, as null packets, and the PID's later continuity counters close the gap.
Audio that comes before the new session's first video frame cannot be placed yet
and is left out too. At most one PES of silence (about 0.2 s) replaces the overlap.

It runs in the file's writer thread: the event loop never parses the recording.
"""

from __future__ import annotations

from typing import Final

from .hls.pes import PTS_HZ, PTS_WRAP, _retime, pes_timestamps, ticks
from .ts import PACKET_SIZE, null_packets, with_counter

# A frame step longer than this is a gap, not the frame rate.
_MAX_STEP: Final = PTS_HZ // 2
_DEFAULT_STEP: Final = PTS_HZ // 25
_NULL: Final = null_packets(1)


class Timeline:
    """Rewrites PCR, PTS and DTS of packed TS so no stream steps back at a splice."""

    __slots__ = (
        "_counters",
        "_last",
        "_others",
        "_shift",
        "_skipping",
        "_splice",
        "_step",
        "_trimming",
        "video_pid",
    )

    def __init__(self) -> None:
        """Nothing written yet; ``video_pid`` is set by the recording."""
        self.video_pid: int | None = None
        self._shift = 0
        self._splice = False
        self._last: int | None = None  # DTS of the last video frame, as written
        self._step = _DEFAULT_STEP
        # Other timed PIDs: (DTS of the last PES written, the longest PES's length).
        self._others: dict[int, tuple[int, int]] = {}
        self._trimming: set[int] = set()  # checked against _others since a splice
        self._skipping: set[int] = set()  # the PES being received is left out
        self._counters: dict[int, int] = {}  # payload packets left out, mod 16 (not 0)

    def feed(self, data: bytes | memoryview) -> bytes | memoryview:
        """``data`` (whole packets) as it is to be written: the same length."""
        video = self.video_pid
        if video is None:  # radio: nothing to keep in step
            return data
        out: bytearray | None = None
        heads = zip(
            data[1::PACKET_SIZE],
            data[2::PACKET_SIZE],
            data[3::PACKET_SIZE],
            strict=False,
        )
        for index, (b1, b2, b3) in enumerate(heads):
            pid = (b1 & 0x1F) << 8 | b2
            if not (b1 & 0x40 or b3 & 0x20) and not (
                pid in self._skipping or pid in self._counters
            ):
                continue  # the rest of a PES, kept as it is: no clock in it
            offset = index * PACKET_SIZE
            packet = bytes(data[offset : offset + PACKET_SIZE])
            if len(packet) < PACKET_SIZE:
                break
            if b3 & 0x20 and packet[4] and packet[5] & 0x80:
                self._splice = True  # discontinuity_indicator: the source broke
                # A decoder takes any counter after it, and what the PID was
                # sending is over.
                self._counters.pop(pid, None)
                self._skipping.discard(pid)
            if b1 & 0x40:
                if pid == video:
                    self._frame(packet)
                else:
                    self._other(pid, packet)
            written = self._written(pid, packet)
            if written is not packet:
                if out is None:
                    out = bytearray(data)
                out[offset : offset + PACKET_SIZE] = written
        return data if out is None else bytes(out)

    def _written(self, pid: int, packet: bytes) -> bytes:
        """What of ``packet`` goes to the file."""
        if pid in self._skipping:
            if packet[3] & 0x10:  # its counter is missing from the file now
                missing = (self._counters.get(pid, 0) + 1) & 0x0F
                if missing:
                    self._counters[pid] = missing
                else:  # a whole round: the counters line up again
                    self._counters.pop(pid, None)
            return _NULL
        if self._shift:
            packet = _retime(packet, self._shift)
        if left_out := self._counters.get(pid):
            packet = with_counter(packet, (packet[3] - left_out) & 0x0F)
        return packet

    def _frame(self, packet: bytes) -> None:
        stamps = pes_timestamps(packet)
        if stamps is None:
            return
        dts = (stamps[1] + self._shift) % PTS_WRAP
        last = self._last
        if last is not None:
            if self._splice:
                behind = ticks(dts, (last + self._step) % PTS_WRAP)
                if behind > 0:
                    self._shift = (self._shift + behind) % PTS_WRAP
                    dts = (dts + behind) % PTS_WRAP
                self._trimming = set(self._others)
            elif 0 < ticks(last, dts) <= _MAX_STEP:
                self._step = ticks(last, dts)
        self._splice = False
        self._last = dts

    def _other(self, pid: int, packet: bytes) -> None:
        """A PES (or section) starts on a PID that is not the video."""
        self._skipping.discard(pid)
        stamps = pes_timestamps(packet)
        if stamps is None:
            return  # a table, or a PES without a clock: nothing to overlap
        if self._splice and self._last is not None:
            self._skipping.add(pid)  # no video placed yet: its time is unknown
            return
        dts = (stamps[1] + self._shift) % PTS_WRAP
        last, length = self._others.get(pid, (None, 0))
        if last is not None and pid in self._trimming:
            if ticks((last + length) % PTS_WRAP, dts) < 0:
                self._skipping.add(pid)  # the file has this moment already
                return
            self._trimming.discard(pid)
        elif last is not None and 0 < ticks(last, dts) <= _MAX_STEP:
            # The longest seen: a muxer's PES vary by a frame, and a PES thought
            # shorter than it is would overlap the next.
            length = max(length, ticks(last, dts))
        self._others[pid] = (dts, length)
