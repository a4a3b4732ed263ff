"""A recording's timestamps kept going forward across splices (no Home Assistant).

Where the source restarts (an outage, a failover to another engine, the recording's
own resume), the new session may begin a little before where the file was: the
same frames again, with timestamps that step back. ffmpeg, remuxing the file to
MP4, takes a step back of more than 0.1 s as a new timeline, but squeezes a smaller
one into one-tick steps: frames that share one instant in the MP4, which decoders
report. After each flagged splice the first video frame, and everything after it,
is moved to one frame after the last one written, as ffmpeg does with the larger
steps; a step forward (time lost in the outage) is kept as it is.

It runs in the file's writer thread: the event loop never parses the recording.
"""

from __future__ import annotations

from typing import Final

from .hls.pes import PTS_HZ, PTS_WRAP, _retime, pes_timestamps, ticks
from .ts import PACKET_SIZE

# A frame step longer than this is a gap, not the frame rate.
_MAX_STEP: Final = PTS_HZ // 2
_DEFAULT_STEP: Final = PTS_HZ // 25


class Timeline:
    """Rewrites PCR, PTS and DTS of packed TS so video never steps back at a splice."""

    __slots__ = ("_last", "_shift", "_splice", "_step", "video_pid")

    def __init__(self) -> None:
        """Nothing written yet; ``video_pid`` is set by the recording."""
        self.video_pid: int | None = None
        self._shift = 0
        self._splice = False
        self._last: int | None = None  # DTS of the last video frame, as written
        self._step = _DEFAULT_STEP

    def feed(self, data: bytes | memoryview) -> bytes | memoryview:
        """``data`` (whole packets) as it is to be written."""
        video = self.video_pid
        if video is None:  # radio: nothing to keep in step
            return data
        out: bytearray | None = None
        flags = zip(data[1::PACKET_SIZE], data[3::PACKET_SIZE], strict=False)
        for index, (b1, b3) in enumerate(flags):
            if not (b1 & 0x40 or b3 & 0x20):
                continue  # the rest of a PES: no clock in it
            offset = index * PACKET_SIZE
            packet = bytes(data[offset : offset + PACKET_SIZE])
            if len(packet) < PACKET_SIZE:
                break
            if b3 & 0x20 and packet[4] and packet[5] & 0x80:
                self._splice = True  # discontinuity_indicator: the source broke
            if b1 & 0x40 and ((b1 & 0x1F) << 8 | packet[2]) == video:
                self._frame(packet)
            if self._shift:
                if out is None:
                    out = bytearray(data)
                out[offset : offset + PACKET_SIZE] = _retime(packet, self._shift)
        return data if out is None else bytes(out)

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
            elif 0 < ticks(last, dts) <= _MAX_STEP:
                self._step = ticks(last, dts)
        self._splice = False
        self._last = dts
