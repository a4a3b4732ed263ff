"""A recording's splices through the real ffmpeg: a step back is moved forward,
the MP4 decodes without frames sharing an instant; a step forward stays; audio
the file already has is not written twice (hypothesis for the invariants)."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.acestream_proxy.stream.hls.pes import (
    _retime,
    pes_timestamps,
    ticks,
)
from custom_components.acestream_proxy.stream.remux import remux_to_mp4
from custom_components.acestream_proxy.stream.timeline import Timeline
from custom_components.acestream_proxy.stream.ts import (
    NULL_PID,
    PACKET_SIZE,
    ProgramInfo,
    discontinuity_lead,
    packet_pid,
    with_counter,
)
from tests.helpers import run
from tests.hls_check import cc_errors

FIXTURE = (Path(__file__).parent / "fixtures" / "sample.ts").read_bytes()
KEYFRAME_AT = 718160 // PACKET_SIZE * PACKET_SIZE  # the keyframe 5.42 s in
FRAME = 0.04  # the fixture's 25 fps


def _program() -> ProgramInfo:
    program = ProgramInfo()
    program.scan(FIXTURE[: 64 * PACKET_SIZE])
    assert program.video_pid is not None
    return program


def _moved(data: bytes, seconds: float) -> bytes:
    """``data`` with every clock in it moved, as another engine's would be."""
    shift = round(seconds * 90_000)
    return b"".join(
        _retime(data[i : i + PACKET_SIZE], shift)
        for i in range(0, len(data), PACKET_SIZE)
    )


def _spliced(step_back: float) -> bytes:
    """The fixture up to a keyframe, then, behind the broadcaster's flagged lead,
    the rest from a source whose clock is ``step_back`` s behind (negative:
    ahead) of where the first one stopped."""
    before, after = FIXTURE[:KEYFRAME_AT], FIXTURE[KEYFRAME_AT:]
    after = _moved(after, -(step_back + FRAME))
    header = _program().header
    return before + discontinuity_lead(header, after) + header + after


def _pes_starts(data: bytes, pid: int) -> list[tuple[int, int]]:
    """(offset, DTS) of each timed PES of ``pid`` in ``data``."""
    starts = []
    for offset in range(0, len(data), PACKET_SIZE):
        packet = data[offset : offset + PACKET_SIZE]
        if packet_pid(packet, 0) == pid and (stamps := pes_timestamps(packet)):
            starts.append((offset, stamps[1]))
    return starts


VIDEO_PID = 256
AUDIO_PID = 257
AUDIO_PES = 21_120  # the fixture's audio PES: 11 AAC frames, 0.235 s
# The video frames of the GOP that starts at the keyframe: where the gate ends a file.
FRAME_STARTS = [o for o, _ in _pes_starts(FIXTURE, VIDEO_PID) if o > KEYFRAME_AT][:24]


def _resent(
    frames: int, clock: float, *, start: int = KEYFRAME_AT, shorter: bool = False
) -> bytes:
    """A failover to an engine that starts again at the keyframe the file passed
    ``frames`` frames ago (or, unaligned, at ``start`` before it), its clock
    ``clock`` s ahead of the first one's: the audio of the moments before that
    keyframe comes again, after it. ``shorter``: its first audio PES is a packet
    shorter than the fixture's (16 packets, a whole round of the counter)."""
    before = FIXTURE[: FRAME_STARTS[frames - 1]]
    after = _moved(FIXTURE[start:], clock)
    if shorter:
        after = _without_last_packet_of_first_pes(after, AUDIO_PID)
    header = _program().header
    return before + discontinuity_lead(header, after) + header + after


def _without_last_packet_of_first_pes(data: bytes, pid: int) -> bytes:
    """``data`` with the last packet of the first PES of ``pid`` taken out and
    the PID's later counters one less, as if it had been sent that way."""
    second = _pes_starts(data, pid)[1][0]
    last = max(o for o in range(0, second, PACKET_SIZE) if packet_pid(data, o) == pid)
    packets = []
    for o in range(0, len(data), PACKET_SIZE):
        packet = data[o : o + PACKET_SIZE]
        if o > last and packet_pid(packet, 0) == pid:
            packet = with_counter(packet, (packet[3] & 0x0F) - 1)
        if o != last:
            packets.append(packet)
    return b"".join(packets)


def _through(timeline: Timeline, data: bytes, size: int = 7) -> bytes:
    timeline.video_pid = VIDEO_PID
    return b"".join(
        bytes(timeline.feed(memoryview(data[i : i + size * PACKET_SIZE])))
        for i in range(0, len(data), size * PACKET_SIZE)
    )


def _audio(data: bytes) -> list[tuple[int, int]]:
    """(DTS, length) of each audio PES in ``data``, its length from the AAC
    frames it holds (1,920 ticks each at 48 kHz)."""
    found: list[tuple[int, int]] = []
    payload = bytearray()

    def close() -> None:
        if found:
            frames, at = 0, 0
            while at + 6 < len(payload) and payload[at] == 0xFF:
                at += (
                    (payload[at + 3] & 0x03) << 11
                    | payload[at + 4] << 3
                    | payload[at + 5] >> 5
                )
                frames += 1
            found[-1] = (found[-1][0], frames * 1920)

    for offset in range(0, len(data), PACKET_SIZE):
        p = data[offset : offset + PACKET_SIZE]
        if packet_pid(p, 0) != AUDIO_PID or not p[3] & 0x10:
            continue
        start = 4 + (p[4] + 1 if p[3] & 0x20 else 0)
        if stamps := pes_timestamps(p):
            close()
            found.append((stamps[1], 0))
            payload = bytearray(p[start + 9 + p[start + 8] :])
        else:
            payload += p[start:]
    close()
    return found


@settings(max_examples=40, deadline=None)
@given(
    frames=st.integers(min_value=1, max_value=len(FRAME_STARTS)),
    clock=st.sampled_from([0.0, 0.01, -0.01, 0.05, -0.12, 0.3, -0.4]),
    size=st.integers(min_value=1, max_value=40),
    shorter=st.booleans(),
)
def test_no_stream_steps_back_or_writes_a_moment_twice(
    frames: int, clock: float, size: int, shorter: bool
) -> None:
    """Whatever was written before the splice and however the new clock stands:
    every PES starts after the last one of its PID ended, counters run on, and
    the audio left out is less than one PES."""
    data = _resent(frames, clock, shorter=shorter)
    out = _through(Timeline(), data, size)
    assert len(out) == len(data)
    frames_of = [(dts, 3600) for _, dts in _pes_starts(out, VIDEO_PID)]
    for pes in (frames_of, _audio(out)):
        gaps = [ticks(a + length, b) for (a, length), (b, _) in itertools.pairwise(pes)]
        assert min(gaps) >= 0, gaps  # nothing overlaps what came before
        assert max(gaps) < max(clock, 0) * 90_000 + AUDIO_PES, gaps
    assert cc_errors(out) == cc_errors(data)  # none added


def _left_out(data: bytes, out: bytes, pid: int) -> list[int]:
    """Packets of ``pid`` in ``data`` that ``out`` has as null packets."""
    return [
        o
        for o in range(0, len(data), PACKET_SIZE)
        if packet_pid(data, o) == pid and packet_pid(out, o) == NULL_PID
    ]


def test_audio_left_out_is_nulled_and_its_counters_closed_up() -> None:
    """The overlapping PES (15 packets here) becomes null packets, and the PID's
    later packets count on from the last one kept."""
    data = _resent(5, 0.0, shorter=True)
    out = _through(Timeline(), data)
    gone = _left_out(data, out, AUDIO_PID)
    assert len(gone) == 15
    after = [
        o
        for o in range(gone[-1] + PACKET_SIZE, len(data), PACKET_SIZE)
        if packet_pid(data, o) == AUDIO_PID
    ]
    assert all(out[o + 3] & 0x0F == (data[o + 3] - 15) & 0x0F for o in after)
    assert cc_errors(out) == cc_errors(data)


def test_audio_before_the_first_frame_is_left_out() -> None:
    """A session that starts before a keyframe (a stream joined where it was):
    its audio cannot be placed until the video is, so it is not written."""
    start = _pes_starts(FIXTURE[:KEYFRAME_AT], AUDIO_PID)[-1][0]
    data = _resent(5, 0.0, start=start)
    out = _through(Timeline(), data)
    first_frame = _pes_starts(data[FRAME_STARTS[4] :], VIDEO_PID)[0][0]
    early = _left_out(data, out, AUDIO_PID)
    assert early
    assert early[0] > FRAME_STARTS[4]
    assert early[0] < FRAME_STARTS[4] + first_frame
    starts = [dts for _, dts in _pes_starts(out, AUDIO_PID)]
    assert all(ticks(a, b) > 0 for a, b in itertools.pairwise(starts))


def test_a_piece_that_ends_mid_packet_keeps_its_tail() -> None:
    """Only whole packets are read; a torn one at the end is left as it came."""
    timeline = Timeline()
    timeline.video_pid = VIDEO_PID
    # Torn in the keyframe's first packet: a PES start, with a clock.
    torn = FIXTURE[: 10 * PACKET_SIZE] + FIXTURE[3 * PACKET_SIZE :][:100]
    assert bytes(timeline.feed(torn)) == torn


async def _video_dts(path: Path) -> list[float]:
    code, out, err = await run(
        "ffprobe", "-v", "error", "-select_streams", "v",
        "-show_entries", "packet=dts_time", "-of", "csv=p=0", str(path),
    )  # fmt: skip
    assert code == 0, err
    return [float(x.strip(",")) for x in out.split() if x.strip(",")]


def _write(path: Path, data: bytes, timeline: Timeline | None) -> None:
    if timeline is not None:
        timeline.video_pid = _program().video_pid
        # As the writer thread gets it: in pieces that cut anywhere between packets.
        pieces = [
            data[i : i + 7 * PACKET_SIZE] for i in range(0, len(data), 7 * PACKET_SIZE)
        ]
        data = b"".join(bytes(timeline.feed(memoryview(p))) for p in pieces)
    path.write_bytes(data)


async def _decode_errors(path: Path) -> str:
    code, _, errors = await run(
        "ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"
    )  # fmt: skip
    assert code == 0, errors
    return errors


async def _mp4_errors(ts: Path) -> str:
    return await _decode_errors(await remux_to_mp4("ffmpeg", ts))


@pytest.mark.parametrize("step_back", [0.08, 0.05, 3.0])
async def test_a_step_back_goes_on_one_frame_later(
    tmp_path: Path, step_back: float
) -> None:
    """What a failover to an engine a little behind gave: the video goes on one
    frame after the last one written, and the MP4 decodes clean."""
    ts = tmp_path / "match.ts"
    _write(ts, _spliced(step_back), Timeline())
    dts = await _video_dts(ts)
    steps = [round(b - a, 3) for a, b in itertools.pairwise(dts)]
    assert min(steps) == pytest.approx(FRAME, abs=0.002), steps
    assert not await _mp4_errors(ts)


async def test_without_it_ffmpeg_squeezes_a_small_step_back(tmp_path: Path) -> None:
    """The failure it prevents: frames sharing an instant in the MP4."""
    ts = tmp_path / "match.ts"
    _write(ts, _spliced(0.08), None)
    assert "non monotonically increasing dts" in await _mp4_errors(ts)


async def test_a_step_forward_is_kept(tmp_path: Path) -> None:
    """Time lost in an outage stays lost: the file's clock jumps over it."""
    ts = tmp_path / "match.ts"
    _write(ts, _spliced(-2.0), Timeline())
    dts = await _video_dts(ts)
    steps = [round(b - a, 3) for a, b in itertools.pairwise(dts)]
    assert max(steps) == pytest.approx(2.0, abs=0.002)
    assert min(steps) == pytest.approx(FRAME, abs=0.002)
    assert not await _mp4_errors(ts)


def test_radio_and_plain_runs_pass_through_untouched() -> None:
    """No video PID: nothing to keep in step; no splice: the same bytes, uncopied."""
    spliced = _spliced(0.08)
    assert Timeline().feed(spliced) is spliced
    timeline = Timeline()
    timeline.video_pid = _program().video_pid
    assert timeline.feed(FIXTURE) is FIXTURE


@pytest.mark.parametrize(("frames", "clock"), [(5, 0.0), (16, -0.05), (23, 0.01)])
async def test_a_resent_keyframe_decodes_clean(
    tmp_path: Path, frames: int, clock: float
) -> None:
    """A failover that sends the last GOP again: the file and its MP4 decode
    without a word from ffmpeg, and its audio only goes forward."""
    ts = tmp_path / "match.ts"
    ts.write_bytes(_through(Timeline(), _resent(frames, clock)))
    assert not await _decode_errors(ts)
    code, out, err = await run(
        "ffprobe", "-v", "error", "-select_streams", "a",
        "-show_entries", "packet=dts", "-of", "csv=p=0", str(ts),
    )  # fmt: skip
    assert code == 0, err
    dts = [int(x.strip(",")) for x in out.split()]
    assert all(a < b for a, b in itertools.pairwise(dts))
    assert not await _mp4_errors(ts)  # the remux replaces the TS
