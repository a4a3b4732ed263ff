"""A recording's splices through the real ffmpeg: a step back is moved forward,
the MP4 decodes without frames sharing an instant; a step forward stays."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from custom_components.acestream_proxy.stream.hls.pes import _retime
from custom_components.acestream_proxy.stream.remux import remux_to_mp4
from custom_components.acestream_proxy.stream.timeline import Timeline
from custom_components.acestream_proxy.stream.ts import (
    PACKET_SIZE,
    ProgramInfo,
    discontinuity_lead,
)
from tests.helpers import run

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


async def _mp4_errors(ts: Path) -> str:
    mp4 = await remux_to_mp4("ffmpeg", ts)
    code, _, errors = await run(
        "ffmpeg", "-v", "error", "-i", str(mp4), "-f", "null", "-"
    )
    assert code == 0
    return errors


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
