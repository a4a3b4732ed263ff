"""A cold start's HLS: playable segments soon after the engine's first keyframe.

The segmenter is fed deterministically (the simulator's stream with a keyframe
every 2 s, in chunks): once the first keyframe and a little more than two
QUICK_SEGMENT of video have arrived, the playlist already lists the two segments
the first playlist waits for, the first starting with that keyframe, each as long
as its timestamps say. Later segments are cut at keyframes again, the target
duration never moves, and the whole decodes clean.
Then through Home Assistant: the first playlist of a cold broadcast lists quick
segments that decode clean with the ones after them.
"""

from __future__ import annotations

from pathlib import Path
import subprocess

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy.const import CONF_HLS_SEGMENT, CONF_LINGER
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.hls import (
    PTS_HZ,
    Segmenter,
    pes_timestamps,
    playlist_target,
    ticks,
)
from custom_components.acestream_proxy.stream.hls.cutter import QUICK_LAG, QUICK_SEGMENT
from custom_components.acestream_proxy.stream.hls.output import STARTUP_SEGMENTS
from custom_components.acestream_proxy.stream.ts import (
    PACKET_SIZE,
    ProgramInfo,
    packet_pid,
    random_access_offsets,
)
from tests.ha_fixtures import ClientFactory, until
from tests.hls_check import PlaylistChecker, cc_errors, pts_durations, video_pts
from tests.simulator import EngineSimulator
from tests.simulator.ts import load_fixture
from tests.simulator.variants import strip_keyframe_flags

CID = "0123456789abcdef0123456789abcdef01234567"
HLS = f"/api/acestream_proxy/hls/{CID}/index.m3u8"
# Video past the first keyframe that is fed before the first playlist is read.
FED_PAST_QUICK = 0.1
FRAME = 0.04  # the fixture's 25 fps


def _stream(seconds: float) -> bytes:
    fixture = load_fixture()
    return fixture.read(0, int(seconds * fixture.bitrate) // PACKET_SIZE * PACKET_SIZE)


def _gop_2s(data: bytes) -> bytes:
    """The fixture's keyframes (every 1 s) flagged every other one: a 2 s GOP."""
    out = bytearray(data)
    for index, offset in enumerate(
        random_access_offsets(data, _program(data).video_pid)
    ):
        if index % 2:
            out[offset + 5] &= ~0x40 & 0xFF
    return bytes(out)


def _program(data: bytes) -> ProgramInfo:
    program = ProgramInfo()
    program.scan(data)
    return program


def _video_at(data: bytes, start: int, seconds: float) -> int:
    """Offset of the first video PES start ``seconds`` past the one at ``start``."""
    video = _program(data).video_pid
    first: int | None = None
    for pos in range(start, len(data), PACKET_SIZE):
        packet = data[pos : pos + PACKET_SIZE]
        if packet_pid(data, pos) != video or not packet[1] & 0x40:
            continue
        stamps = pes_timestamps(packet)
        if stamps is None:
            continue
        if first is None:
            first = stamps[1]
        elif ticks(first, stamps[1]) >= seconds * PTS_HZ:
            return pos
    raise AssertionError(f"no video {seconds} s past byte {start}")


def _join(segmenter: Segmenter, data: bytes, until_seconds: float) -> int:
    """Feed like a joining viewer (PAT + PMT, then from the first keyframe) up to
    the video PES ``until_seconds`` past it (that one included); where it ended."""
    program = _program(data)
    start = random_access_offsets(data, program.video_pid)[0]
    end = _video_at(data, start, until_seconds) + PACKET_SIZE
    segmenter.feed(program.header_before([data[:start]]))
    for offset in range(start, end, 7 * PACKET_SIZE):
        segmenter.feed(data[offset : min(offset + 7 * PACKET_SIZE, end)])
    return end


def _listed(segmenter: Segmenter) -> list[float]:
    checker = PlaylistChecker()
    listed = checker.check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
    assert checker.target == playlist_target(segmenter.target_duration)
    return [s.duration for s in listed]


def _ffmpeg_clean(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    done = subprocess.run(
        ["ffmpeg", "-v", "warning", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""


def test_cold_first_playlist_lists_segments_just_past_the_first_keyframe(
    tmp_path: Path,
) -> None:
    """Keyframe + 2 x QUICK_SEGMENT + 0.1 s fed: the first playlist can answer."""
    data = _gop_2s(_stream(14.0))
    program = _program(data)
    quick = Segmenter(target_duration=2.0, window=20, quick_start=True)
    plain = Segmenter(target_duration=2.0, window=20)
    for segmenter in (quick, plain):
        fed = _join(segmenter, data, STARTUP_SEGMENTS * QUICK_SEGMENT + FED_PAST_QUICK)
    # Without a quick start nothing is listed before the next keyframe (2 s).
    assert _listed(plain) == []
    listed = _listed(quick)
    assert len(listed) == STARTUP_SEGMENTS
    for duration in listed:
        assert QUICK_SEGMENT - FRAME - 1e-6 <= duration <= QUICK_SEGMENT + FRAME + 1e-6
    first = quick.segments[0].data
    # PAT, PMT, then the first keyframe: a player starts on it.
    assert packet_pid(first, 0) == 0
    assert packet_pid(first, PACKET_SIZE) == program.pmt_pid
    assert random_access_offsets(first, program.video_pid)[0] == 2 * PACKET_SIZE
    assert cc_errors(b"".join(s.data for s in quick.segments)) == []

    # The rest: quick pieces up to the next keyframe, then keyframe cuts of the
    # segment duration; the target never moved and everything decodes as one.
    for offset in range(fed, len(data), 64 * PACKET_SIZE):
        quick.feed(data[offset : offset + 64 * PACKET_SIZE])
    durations = _listed(quick)
    assert sum(durations[:4]) == pytest.approx(2.0, abs=1e-6)
    assert max(durations[:4]) <= QUICK_SEGMENT + FRAME + 1e-6
    assert durations[4:7] == pytest.approx([2.0, 2.0, 2.0], abs=1e-6)
    assert quick.stats.quick_cuts == 4
    assert quick.stats.forced_cuts == 0
    bodies = [s.data for s in quick.segments]
    for body in bodies[4:]:
        first_rap = random_access_offsets(body, program.video_pid)[0]
        assert first_rap == 2 * PACKET_SIZE
    # The last one's successor is not listed yet: its duration is the frames'.
    assert pts_durations(bodies) == pytest.approx(durations[:-1], abs=1e-6)
    joined = b"".join(bodies)
    assert cc_errors(joined) == []
    stamps = video_pts(joined)
    assert len(stamps) == len(set(stamps))
    _ffmpeg_clean(tmp_path / "joined.ts", joined)


def test_warm_and_unflagged_starts_are_not_cut_quick(tmp_path: Path) -> None:
    """Data from the ring's past is cut at keyframes; without keyframe flags the
    quick pieces stop after one segment duration and PAT cuts take over."""
    data = _stream(12.0)
    warm = Segmenter(target_duration=2.0, window=20, quick_start=True)
    warm.lag = QUICK_LAG + 4.0
    _join(warm, data, 6.0)
    assert warm.stats.quick_cuts == 0
    assert _listed(warm)[:2] == pytest.approx([1.0, 2.0], abs=1e-6)

    bare = strip_keyframe_flags(_stream(20.0))
    unflagged = Segmenter(target_duration=2.0, window=20, quick_start=True)
    program = _program(bare)
    unflagged.feed(program.header_before([b""]))
    for offset in range(0, len(bare), 64 * PACKET_SIZE):
        unflagged.feed(bare[offset : offset + 64 * PACKET_SIZE])
    durations = _listed(unflagged)
    # 2 s of quick pieces (the last ends where the quick start does), then PATs.
    quick = unflagged.stats.quick_cuts
    assert 4 <= quick <= 5
    assert sum(durations[:quick]) == pytest.approx(2.0, abs=FRAME + 1e-6)
    assert max(durations[:quick]) <= QUICK_SEGMENT + FRAME + 1e-6
    assert unflagged.stats.pat_cuts >= 4
    joined = b"".join(s.data for s in unflagged.segments)
    assert cc_errors(joined) == []
    _ffmpeg_clean(tmp_path / "unflagged.ts", joined)


@pytest.fixture
def entry_options() -> dict[str, int]:
    """The default 2 s segments; a short linger."""
    return {CONF_HLS_SEGMENT: 2, CONF_LINGER: 5}


async def test_cold_broadcast_first_playlist_through_home_assistant(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
    tmp_path: Path,
) -> None:
    """The first playlist of a cold broadcast lists quick segments: clean, timed."""
    client: TestClient = await hass_client()
    resp = await client.get(HLS)
    assert resp.status == 200
    checker = PlaylistChecker()
    listed = checker.check(await resp.text())
    assert checker.target == playlist_target(2)
    assert listed
    assert listed[0].duration <= QUICK_SEGMENT + FRAME + 1e-3
    [item] = get_hub(hass).broadcasts.values()
    hls = item.hls
    assert hls is not None
    # Wait for the quick start to end (the stream's next keyframe) and one more.
    await until(
        lambda: hls.segmenter.next_seq >= hls.segmenter.stats.quick_cuts + 2, 20
    )
    resp = await client.get(HLS)
    listed = checker.check(await resp.text())
    checker.check_dates()
    bodies = []
    for segment in listed:
        got = await client.get(segment.uri)
        assert got.status == 200
        bodies.append(await got.read())
    quick = hls.segmenter.stats.quick_cuts
    assert quick >= 1
    assert all(s.duration <= QUICK_SEGMENT + FRAME + 1e-3 for s in listed[:quick])
    measured = pts_durations(bodies)
    for segment, duration in zip(listed, measured, strict=False):
        assert abs(segment.duration - duration) < 0.05, (segment, duration)
    joined = b"".join(bodies)
    assert cc_errors(joined) == []
    _ffmpeg_clean(tmp_path / "joined.ts", joined)
    assert engine_sim.counters.sessions_opened == 1
