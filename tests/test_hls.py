"""HLS built from the shared broadcast: segmenter alone, then through HA with ffmpeg."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import itertools
from pathlib import Path
import subprocess

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy.const import (
    CONF_HLS_SEGMENT,
    CONF_LINGER,
    CONF_MAX_VIEWERS,
    CONF_REPLAY_WINDOW,
)
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.hls import (
    PTS_WRAP,
    Segmenter,
    output as hls_output,
    pes as hls_pes,
    pes_timestamps,
    playlist_target,
    ticks,
)
from custom_components.acestream_proxy.stream.ts import (
    PACKET_SIZE,
    ProgramInfo,
    discontinuity_packet,
    last_counters,
    mark_discontinuity,
    packet_pid,
    random_access_offsets,
)
from tests.ha_fixtures import CID, PREFIX, ClientFactory, Engines, add_engine, until
from tests.helpers import (
    discontinuities,
    ffmpeg_decodes,
    read_bytes,
    read_for,
    run,
    signed_path,
    strip_nulls,
)
from tests.hls_check import (
    PlaylistChecker,
    cc_errors,
    pts_durations,
    round_half_up,
    video_pts,
)
from tests.simulator import EngineSimulator
from tests.simulator.ts import TsFixture, load_fixture
from tests.simulator.variants import strip_keyframe_flags

FIXTURE = Path(__file__).parent / "fixtures" / "sample.ts"
HLS = f"{PREFIX}/hls/{CID}/index.m3u8"


def _media_lines(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def _tag(playlist: str, name: str) -> str:
    return next(
        line.split(":", 1)[1] for line in playlist.splitlines() if line.startswith(name)
    )


def _stream(seconds: float, start: float = 0.0) -> bytes:
    """The simulator's endless stream (continuous timestamps and counters)."""
    fixture = load_fixture()
    begin = int(start * fixture.bitrate) // PACKET_SIZE * PACKET_SIZE
    size = int(seconds * fixture.bitrate) // PACKET_SIZE * PACKET_SIZE
    return fixture.read(begin, size)


def _program(data: bytes) -> ProgramInfo:
    program = ProgramInfo()
    program.scan(data)
    return program


def _feed(
    segmenter: Segmenter, data: bytes, chunk: int = 64 * PACKET_SIZE, join: int = 0
) -> None:
    """Feed like a joining viewer: PAT + PMT first, then data from keyframe ``join``."""
    program = _program(data)
    first = random_access_offsets(data, program.video_pid)
    start = first[join] if first else 0
    segmenter.feed(program.header_before([data[:start]]))
    for offset in range(start, len(data), chunk):
        segmenter.feed(data[offset : offset + chunk])


def _pids_of(data: bytes) -> dict[int, list[int]]:
    """Packet offsets per PID."""
    found: dict[int, list[int]] = {}
    for pos in range(0, len(data), PACKET_SIZE):
        found.setdefault(packet_pid(data, pos), []).append(pos)
    return found


def _audio_pid(data: bytes) -> int:
    program = _program(data)
    for pid, offsets in _pids_of(data).items():
        if pid in (0, program.pmt_pid, program.video_pid):
            continue
        for pos in offsets[:50]:
            packet = data[pos : pos + PACKET_SIZE]
            if packet[1] & 0x40 and pes_timestamps(packet) is not None:
                return pid
    raise AssertionError("no audio PID")


def _audio_pes(data: bytes, pid: int) -> list[tuple[int, bool]]:
    """(PTS, complete) of each audio PES in ``data``; raises on a PES tail first."""
    found: list[tuple[int, int, int]] = []  # pts, size, got
    for pos in range(0, len(data), PACKET_SIZE):
        if packet_pid(data, pos) != pid:
            continue
        packet = data[pos : pos + PACKET_SIZE]
        payload = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[1] & 0x40:
            stamps = pes_timestamps(packet)
            assert stamps is not None
            length = (packet[payload + 4] << 8) | packet[payload + 5]
            found.append((stamps[0], length + 6, PACKET_SIZE - payload))
        else:
            assert found, "a segment starts with the tail of an audio PES"
            pts, size, got = found[-1]
            found[-1] = (pts, size, got + PACKET_SIZE - payload)
    return [(pts, got == size) for pts, size, got in found]


def _interleave_audio(data: bytes) -> bytes:
    """Move the last packet of the audio PES before each keyframe after it.

    Hardware muxers interleave packets of different PES; ffmpeg does not, so
    the fixture is made to look like them around the cuts.
    """
    program = _program(data)
    audio = _audio_pid(data)
    packets = [data[pos : pos + PACKET_SIZE] for pos in range(0, len(data), 188)]
    keyframes = set(random_access_offsets(data, program.video_pid))
    out: list[bytes] = []
    for index, packet in enumerate(packets):
        out.append(packet)
        if index * PACKET_SIZE in keyframes and index > 20:
            for back in range(len(out) - 2, len(out) - 400, -1):
                if packet_pid(out[back], 0) == audio:
                    if not out[back][1] & 0x40:
                        out.append(out.pop(back))
                    break
    return b"".join(out)


def _vod(tmp_path: Path, segmenter: Segmenter) -> Path:
    """The segments and a closed playlist of them, as files ffmpeg can read."""
    for segment in segmenter.segments:
        (tmp_path / f"{segment.seq}.ts").write_bytes(segment.data)
    playlist = segmenter.playlist(lambda s: f"{s.seq}.ts")
    path = tmp_path / "index.m3u8"
    path.write_text(playlist + "#EXT-X-ENDLIST\n")
    return path


def _ffmpeg_warnings(path: Path) -> str:
    done = subprocess.run(
        ["ffmpeg", "-v", "warning", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_segments_are_timed_by_pts_with_a_constant_target(tmp_path: Path) -> None:
    """3 s segments from a 1 s GOP: EXTINF = PTS span, PAT/PMT/keyframe first."""
    data = _stream(40.0)
    segmenter = Segmenter(target_duration=3.0, window=20)
    _feed(segmenter, data)
    segments = list(segmenter.segments)
    assert len(segments) >= 10
    program = _program(data)
    for segment in segments:
        assert packet_pid(segment.data, 0) == 0
        assert packet_pid(segment.data, PACKET_SIZE) == program.pmt_pid
        first_rap = random_access_offsets(segment.data, program.video_pid)[0]
        assert first_rap == 2 * PACKET_SIZE
        assert cc_errors(segment.data) == []
    # Across segments too (a repeated PAT/PMT is a legal duplicate).
    assert cc_errors(b"".join(s.data for s in segments)) == []
    measured = pts_durations([s.data for s in segments])
    assert [s.duration for s in segments[:-1]] == pytest.approx(measured, abs=1e-6)
    # A short first segment (one keyframe interval), then the target duration.
    assert [s.duration for s in segments[:3]] == pytest.approx([1, 3, 3])
    assert segmenter.target == playlist_target(3.0) == 5
    checker = PlaylistChecker()
    listed = checker.check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
    assert [s.uri for s in listed] == [f"{s.seq}.ts" for s in segments]
    checker.check_dates()
    assert segmenter.get(segments[0].seq - 1) is None
    assert segmenter.get(segments[-1].seq) is segments[-1]
    assert _ffmpeg_warnings(_vod(tmp_path, segmenter)) == ""


def test_playlist_target_and_rounding() -> None:
    """The target leaves room for longer keyframe intervals; EXTINF rounds half up."""
    assert [playlist_target(t) for t in (1, 2, 3, 4, 10)] == [2, 3, 5, 6, 15]
    assert round_half_up(4.5) == 5
    assert round_half_up(2.4999) == 2
    assert ticks(PTS_WRAP - 90_000, 90_000) == 180_000
    assert ticks(90_000, PTS_WRAP - 90_000) == -180_000


def _pes_packet(pts: int, dts: int | None, pcr: int | None) -> bytes:
    """A video PES start with PTS (and DTS), and a PCR in its adaptation field."""

    def stamp(prefix: int, value: int) -> bytes:
        return bytes(
            [
                prefix << 4 | (value >> 29) & 0x0E | 1,
                (value >> 22) & 0xFF,
                (value >> 14) & 0xFE | 1,
                (value >> 7) & 0xFF,
                (value << 1) & 0xFE | 1,
            ]
        )

    head = bytes([0x47, 0x41, 0x00, 0x30 if pcr is not None else 0x10])
    if pcr is not None:
        # 33-bit base, 6 reserved bits, 9-bit extension.
        head += bytes([7, 0x50]) + (pcr << 15 | 0x3F << 9).to_bytes(6, "big")
    flags, extra = (
        (0xC0, stamp(3, pts) + stamp(1, dts))
        if dts is not None
        else (
            0x80,
            stamp(2, pts),
        )
    )
    pes = b"\x00\x00\x01\xe0\x00\x00\x80" + bytes([flags, len(extra)]) + extra
    return (head + pes).ljust(PACKET_SIZE, b"\xff")


def test_timestamp_helpers() -> None:
    """PES timestamps with and without DTS, PCR, moved across the 33-bit wrap."""
    near_wrap = PTS_WRAP - 1_000
    packet = _pes_packet(near_wrap, near_wrap - 3_600, PTS_WRAP - 9_000)
    assert pes_timestamps(packet) == (near_wrap, near_wrap - 3_600)
    moved = hls_pes._retime(packet, 10_000)
    assert pes_timestamps(moved) == (9_000, 5_400)
    assert moved[6:10] == (1_000 >> 1).to_bytes(4, "big")
    assert len(moved) == PACKET_SIZE
    assert pes_timestamps(_pes_packet(90_000, None, None)) == (90_000, 90_000)
    assert pes_timestamps(packet[:1] + b"\x01" + packet[2:]) is None  # no PES start
    no_pes = packet[:12] + b"\x00\x00\x02" + packet[15:]
    assert pes_timestamps(no_pes) is None
    no_pts = bytearray(_pes_packet(90_000, None, None))
    no_pts[11] = 0
    assert pes_timestamps(bytes(no_pts)) is None
    flag_only = discontinuity_packet(0x100, 3)
    assert pes_timestamps(flag_only[:1] + b"\x41" + flag_only[2:]) is None
    assert Segmenter().get(0) is None


def test_boundaries_keep_each_audio_pes_whole(tmp_path: Path) -> None:
    """An audio PES that straddles a cut goes whole to the segment it started in."""
    data = _interleave_audio(_stream(30.0))
    audio = _audio_pid(data)
    segmenter = Segmenter(target_duration=2.0, window=20)
    _feed(segmenter, data, join=3)
    segments = list(segmenter.segments)
    assert len(segments) >= 10
    assert segmenter.stats.tail_packets >= 5
    seen: list[int] = []
    for index, segment in enumerate(segments):
        pes = _audio_pes(segment.data, audio)
        # Every PES complete, except where the stream was joined (its start
        # is not there: dropped, not half played).
        assert all(complete for _, complete in pes), index
        seen.extend(pts for pts, _ in pes)
        assert cc_errors(segment.data) == []
    source = [pts for pts, _ in _audio_pes(data[data.index(b"\x47", 0) :], audio)]
    # Each PES exactly once, in order, none missing between the first and last.
    start = source.index(seen[0])
    assert seen == source[start : start + len(seen)]
    assert segmenter.stats.orphan_packets > 0  # the tail of the PES before the join
    assert _ffmpeg_warnings(_vod(tmp_path, segmenter)) == ""


def test_program_without_video_is_timed_by_its_audio(tmp_path: Path) -> None:
    """A radio broadcast (no video in the PMT): segments follow the audio PTS."""
    source = tmp_path / "radio.ts"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-f", "lavfi", "-i",
            "sine=frequency=440:sample_rate=48000:duration=8",
            "-c:a", "aac", "-b:a", "96k", "-f", "mpegts", str(source),
        ],
        check=True,
        timeout=60,
    )  # fmt: skip
    fixture = TsFixture(source.read_bytes())
    data = fixture.read(0, 3 * fixture.size)
    program = _program(data)
    assert program.video_pid is None
    segmenter = Segmenter(target_duration=2.0, window=20)
    segmenter.feed(program.header)
    for offset in range(0, len(data), 64 * PACKET_SIZE):
        segmenter.feed(data[offset : offset + 64 * PACKET_SIZE])
    segments = list(segmenter.segments)
    assert len(segments) >= 8
    audio = _audio_pid(data)
    firsts = [_audio_pes(s.data, audio)[0][0] for s in segments]
    measured = [ticks(a, b) / 90_000 for a, b in itertools.pairwise(firsts)]
    assert [s.duration for s in segments[:-1]] == pytest.approx(measured)
    assert all(complete for s in segments for _, complete in _audio_pes(s.data, audio))
    PlaylistChecker().check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
    assert _ffmpeg_warnings(_vod(tmp_path, segmenter)) == ""


def _keep_keyframe_flags(data: bytes, every: int) -> bytes:
    """Clear random_access_indicator except on every ``every``-th keyframe."""
    out = bytearray(data)
    program = _program(data)
    for index, offset in enumerate(random_access_offsets(data, program.video_pid)):
        if index % every:
            out[offset + 5] &= ~0x40 & 0xFF
    return bytes(out)


def test_long_keyframe_intervals_never_overflow_the_target() -> None:
    """GOPs longer than the target duration: cut early at a keyframe, or forced."""
    early = Segmenter(target_duration=6.0, window=20)
    _feed(early, _keep_keyframe_flags(_stream(60.0), 5))  # 5 s keyframe interval
    assert early.stats.early_cuts >= 3
    assert early.stats.forced_cuts == 0
    forced = Segmenter(target_duration=1.0, window=20)
    _feed(forced, _keep_keyframe_flags(_stream(30.0), 4))  # 4 s, target 2
    assert forced.stats.forced_cuts >= 3
    for segmenter in (early, forced):
        segments = list(segmenter.segments)
        measured = pts_durations([s.data for s in segments])
        assert [s.duration for s in segments[:-1]] == pytest.approx(measured)
        checker = PlaylistChecker()
        checker.check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
        assert max(round_half_up(s.duration) for s in segments) <= segmenter.target
        for segment in segments:
            assert cc_errors(segment.data) == []


def test_stream_without_keyframe_flags_is_cut_at_pats() -> None:
    """No random_access_indicator at all: PAT cuts within the same bounds."""
    data = strip_keyframe_flags(_stream(30.0))
    segmenter = Segmenter(target_duration=2.0, window=20)
    _feed(segmenter, data)
    segments = list(segmenter.segments)
    assert segmenter.stats.pat_cuts >= 8
    assert segmenter.stats.keyframe_cuts == 0
    for segment in segments:
        assert packet_pid(segment.data, 0) == 0
        assert cc_errors(segment.data) == []
    measured = pts_durations([s.data for s in segments])
    assert [s.duration for s in segments[:-1]] == pytest.approx(measured)
    PlaylistChecker().check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
    # The unfinished segment is bounded in bytes too (cut at the end of the chunk
    # past the bound; the frame in progress still ends in it).
    small = Segmenter(target_duration=2.0, window=20, max_bytes=200_000)
    _feed(small, data)
    assert small.stats.byte_cuts >= 1
    assert max(len(s.data) for s in small.segments) < 200_000 + 128 * PACKET_SIZE
    PlaylistChecker().check(small.playlist(lambda s: f"{s.seq}.ts"))


def test_restart_wrap_and_resume_make_discontinuities() -> None:
    """A flagged restart, an unflagged jump, a resume; timing stays exact."""
    fixture = load_fixture()
    # Just before the 33-bit wrap of the timestamps.
    loop = PTS_WRAP // fixture.duration_ticks - 1
    before = fixture.read(loop * fixture.size, 3 * fixture.size)
    segmenter = Segmenter(target_duration=2.0, window=10)
    _feed(segmenter, before)
    assert segmenter.stats.discontinuities == 0  # the wrap is no discontinuity
    wrapped = list(segmenter.segments)
    measured = pts_durations([s.data for s in wrapped])
    assert [s.duration for s in wrapped[:-1]] == pytest.approx(measured)
    # Restart: the new session's lead-in, then its keyframe flagged.
    restart = _stream(10.0)
    program = _program(restart)
    first = random_access_offsets(restart, program.video_pid)[0]
    last_counters(restart[:first], program.counters)
    segmenter.feed(program.lead_in(True))
    segmenter.feed(mark_discontinuity(restart[first:], 0))
    # An unflagged jump back (a source that restarted on its own).
    segmenter.feed(restart[first:])
    assert segmenter.stats.discontinuities == 2
    flagged = [s for s in segmenter.segments if s.discontinuity]
    assert len(flagged) == 2
    before_restart = segmenter.get(flagged[0].seq - 1)
    assert before_restart is not None
    # Timed by its own frames (last frame + one), not by the wall clock.
    frames = video_pts(before_restart.data)
    assert before_restart.duration == pytest.approx(
        (ticks(frames[0], frames[-1]) + 3600) / 90_000
    )
    for segment in segmenter.segments:
        assert cc_errors(segment.data) == []
    checker = PlaylistChecker()
    checker.check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
    segmenter.resume()
    resumed = _stream(24.0, start=20.0)
    program = _program(resumed)
    start = random_access_offsets(resumed, program.video_pid)[0]
    segmenter.feed(program.header_before([resumed[:start]]))
    for offset in range(start, len(resumed), 256 * PACKET_SIZE):
        segmenter.feed(resumed[offset : offset + 256 * PACKET_SIZE])
        checker.check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
    checker.check_dates()
    assert segmenter.discontinuity_seq == 3
    assert not any(s.discontinuity for s in segmenter.segments)


def _pes_payloads(data: bytes, pid: int) -> list[bytes]:
    """The elementary stream bytes of each PES of ``pid`` that starts in ``data``."""
    found: list[bytearray] = []
    for pos in range(0, len(data), PACKET_SIZE):
        packet = data[pos : pos + PACKET_SIZE]
        if packet_pid(packet, 0) != pid or not packet[3] & 0x10:
            continue
        payload = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[1] & 0x40:
            found.append(bytearray(packet[payload + 9 + packet[payload + 8] :]))
        elif found:
            found[-1] += packet[payload:]
    return [bytes(pes) for pes in found]


def test_a_source_cut_anywhere_in_a_frame_leaves_no_piece_of_it(tmp_path: Path) -> None:
    """The source breaks off after every packet of a segment's first frame (its
    keyframe) and of the frame after it, then restarts: no segment holds a
    truncated frame or audio PES (a decoder reports a corrupt frame), the segment
    whose only frame broke off is dropped, and ffmpeg (-v warning) plays on."""
    data = _interleave_audio(_stream(3.0))
    program = _program(data)
    video = program.video_pid
    assert video is not None
    audio = _audio_pid(data)
    frames = set(_pes_payloads(_stream(9.0), video))
    keyframe = random_access_offsets(data, video)[2]
    starts = [
        pos
        for pos in range(keyframe + PACKET_SIZE, len(data), PACKET_SIZE)
        if packet_pid(data, pos) == video and data[pos + 1] & 0x40
    ]
    restart = _interleave_audio(_stream(3.0, start=5.0))
    first = random_access_offsets(restart, video)[0]
    last_counters(restart[:first], program.counters)
    rest = mark_discontinuity(restart[first:], 0)
    lead_in = program.lead_in(True, rest)
    cuts = range(keyframe + PACKET_SIZE, starts[1] + PACKET_SIZE, PACKET_SIZE)
    dropped = 0
    for cut in cuts:
        segmenter = Segmenter(target_duration=1.0, window=20)
        _feed(segmenter, data[:cut])
        segmenter.feed(lead_in)
        segmenter.feed(rest)
        assert segmenter.stats.discontinuities == 1
        dropped += segmenter.stats.dropped_segments
        for segment in segmenter.segments:
            assert set(_pes_payloads(segment.data, video)) <= frames, cut
            pes = _audio_pes(segment.data, audio)
            assert all(complete for _, complete in pes), cut
            assert cc_errors(segment.data) == [], cut
        PlaylistChecker().check(segmenter.playlist(lambda s: f"{s.seq}.ts"))
        if cut in (cuts[0], cuts[len(cuts) // 2], cuts[-1]):
            assert _ffmpeg_warnings(_vod(tmp_path, segmenter)) == "", cut
    # Every cut before the keyframe's last packet broke off the segment's only frame.
    assert dropped >= (starts[0] - keyframe) // PACKET_SIZE - 10


@pytest.fixture
def entry_options() -> dict[str, int]:
    """1 s segments (the fixture's GOP) so playlists roll within a test."""
    return {CONF_HLS_SEGMENT: 1, CONF_LINGER: 1}


@pytest.fixture(autouse=True)
def quick_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """HLS clients count as gone after 2 s without a fetch."""
    monkeypatch.setattr(hls_output, "IDLE_MIN", 2.0)


async def test_ffmpeg_plays_hls_through_home_assistant(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    hass_access_token: str,
) -> None:
    """A signed playlist URL is all ffmpeg needs; H.264 + AAC decode over segments."""
    url = owner_client.make_url(signed_path(hass, HLS, hass_access_token))
    code, out, err = await ffmpeg_decodes(url, 4, timeout=60)
    assert code == 0, err
    assert out + err == ""
    code, out, err = await run(
        "ffprobe",
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name",
        "-of",
        "csv=p=0",
        str(url),
        timeout=60,
    )
    assert code == 0, err
    assert set(out.split()) == {"h264", "aac"}
    hub = get_hub(hass)
    [item] = hub.broadcasts.values()
    assert item.hls is not None
    assert item.hls.segmenter.next_seq >= 3
    assert engine_sim.counters.sessions_opened == 1


async def test_playlist_rolls_and_marks_a_restart(
    engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Media sequence moves on; an upstream cut shows as a discontinuity."""
    first = await (await owner_client.get(HLS)).text()
    assert first.startswith("#EXTM3U")
    start_seq = int(_tag(first, "#EXT-X-MEDIA-SEQUENCE"))
    segment_url = _media_lines(first)[0]
    assert "authSig=" in segment_url
    resp = await owner_client.get(segment_url)
    assert resp.status == 200
    body = await resp.read()
    assert packet_pid(body, 0) == 0
    engine_sim.cut_readers()
    playlist = first
    async with asyncio.timeout(20):
        while "#EXT-X-DISCONTINUITY\n" not in playlist or (
            int(_tag(playlist, "#EXT-X-MEDIA-SEQUENCE")) <= start_seq
        ):
            await asyncio.sleep(0.5)
            playlist = await (await owner_client.get(HLS)).text()
    seqs = [
        int(line.split(".ts")[0].rsplit("/", 1)[1]) for line in _media_lines(playlist)
    ]
    assert seqs == sorted(seqs)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_signed_playlist_signs_its_segments(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client_no_auth: ClientFactory,
    hass_access_token: str,
) -> None:
    """Anonymous: 401. Signed playlist: its signed segments play; tampered fail."""
    client = await hass_client_no_auth()
    assert (await client.get(HLS)).status == 401
    playlist = await (
        await client.get(signed_path(hass, HLS, hass_access_token))
    ).text()
    segment = _media_lines(playlist)[-1]
    ok = await client.get(segment)
    assert ok.status == 200
    assert ok.content_type == "video/mp2t"
    path, _, query = segment.partition("?")
    seq = int(path.rsplit("/", 1)[1].removesuffix(".ts"))
    other = f"{path.rsplit('/', 1)[0]}/{seq - 1}.ts?{query}"
    assert (await client.get(other)).status == 401
    assert (await client.get(path)).status == 401


async def test_hls_errors(
    engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Bad ids, unknown names, segments of nothing, engine errors."""
    assert (await owner_client.get(f"{PREFIX}/hls/xyz/index.m3u8")).status == 400
    assert (await owner_client.get(f"{PREFIX}/hls/{CID}/x.txt")).status == 404
    assert (await owner_client.get(f"{PREFIX}/hls/{CID}/3.ts")).status == 404
    engine_sim.unknown_content.add(CID)
    resp = await owner_client.get(HLS)
    assert resp.status == 502
    engine_sim.unknown_content.clear()
    infohash = engine_sim.infohash_for(CID)
    by_infohash = f"{PREFIX}/hls/infohash/{infohash}/index.m3u8"
    resp = await owner_client.get(by_infohash)
    assert resp.status == 502  # the engine never loaded this content
    assert "failed to load content" in await resp.text()
    assert (await owner_client.get(HLS)).status == 200
    resp = await owner_client.get(by_infohash)
    assert resp.status == 200  # the same broadcast, learnt from the content id
    assert engine_sim.counters.sessions_opened == 1
    assert (await owner_client.get(f"{PREFIX}/hls/{CID}/99999.ts")).status == 404


async def test_hls_and_ts_share_one_session_and_viewers_count(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """An HLS client is a viewer while it fetches; then the broadcast lingers."""
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as ts:
        await read_bytes(ts, 50_000)
        assert (await owner_client.get(HLS)).status == 200
        [item] = get_hub(hass).broadcasts.values()
        broadcaster = item.broadcaster
        assert broadcaster.viewer_count == 2
    assert engine_sim.counters.sessions_opened == 1
    await until(lambda: not broadcaster.viewer_count, 5, 0.1)
    # Nobody fetches: the segmenter stops, the broadcast lingers, then stops (and
    # leaves the hub once its engine session is stopped).
    await until(lambda: not get_hub(hass).broadcasts, 10, 0.1)
    assert broadcaster.closed
    assert engine_sim.counters.sessions_stopped == 1


# Faults play out in a second; streams without keyframe flags join soon.
FAST = {
    "stall_timeout": 1.0,
    "start_timeout": 5.0,
    "getstream_timeout": 2.0,
    "retry_backoff_max": 0.3,
    "keepalive_interval": 0.3,
    "rap_fallback_bytes": 300_000,
}


class PlaylistFollower:
    """Reloads a playlist like a player, checks each reload, keeps the segments."""

    def __init__(self, client: TestClient, url: str) -> None:
        self.client = client
        self.url = url
        self.checker = PlaylistChecker()
        self.data: dict[int, bytes] = {}
        self.task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        resp = await self.client.get(self.url)
        assert resp.status == 200, await resp.text()
        for segment in self.checker.check(await resp.text()):
            if segment.seq not in self.data:
                got = await self.client.get(segment.uri)
                assert got.status == 200
                self.data[segment.seq] = await got.read()

    async def run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(0.4)

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.task = None

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                assert self.task is not None
                assert not self.task.done(), self.task
                await asyncio.sleep(0.1)

    def discontinuities(self) -> int:
        return sum(s.discontinuity for s in self.checker.segments.values())

    def timing_errors(self) -> list[float]:
        """|EXTINF - media time from PTS| of every consecutive pair fetched."""
        errors = []
        segments = self.checker.segments
        for seq, segment in sorted(segments.items()):
            if seq not in self.data:
                continue
            following = segments.get(seq + 1)
            if following is not None and not following.discontinuity:
                if seq + 1 not in self.data:
                    continue
                [measured] = pts_durations([self.data[seq], self.data[seq + 1]])
            else:
                # Before a discontinuity: its last frame plus one frame.
                frames = video_pts(self.data[seq])
                measured = (ticks(frames[0], frames[-1]) + 3600) / 90_000
                if following is None:
                    continue
            errors.append(abs(segment.duration - measured))
        return errors

    def cc_errors(self) -> list[str]:
        return [
            f"segment {seq}: {error}"
            for seq, data in sorted(self.data.items())
            for error in cc_errors(data)
        ]


@pytest.mark.parametrize("broadcast_config", [FAST])
@pytest.mark.parametrize("second_strict", [False])
async def test_hls_across_a_cut_and_a_failover_is_clean(
    hass: HomeAssistant,
    owner_client: TestClient,
    hass_access_token: str,
    engines: Engines,
) -> None:
    """ffmpeg (-v warning) plays on through an upstream cut and a failover.

    The playlist keeps its target duration, marks both discontinuities and counts
    them as they leave; every EXTINF is the PTS duration; every segment's counters
    are continuous.
    """
    url = owner_client.make_url(signed_path(hass, HLS, hass_access_token))
    ffmpeg = asyncio.create_task(ffmpeg_decodes(url, 20, timeout=90))
    follower = PlaylistFollower(owner_client, HLS)
    await until(lambda: get_hub(hass).broadcasts, 30, 0.1)
    follower.start()
    try:
        await follower.until(lambda: len(follower.data) >= 4, 30)
        [item] = get_hub(hass).broadcasts.values()
        serving = item.entry_id
        sims = engines.sims
        assert sims[serving].cut_readers() == 1
        await follower.until(lambda: follower.discontinuities() >= 1, 20)
        seen = len(follower.data)
        await follower.until(lambda: len(follower.data) >= seen + 3, 20)
        await sims[serving].stop()  # the engine dies: failover
        await follower.until(lambda: follower.discontinuities() >= 2, 30)
        assert item.entry_id != serving
        seen = len(follower.data)
        await follower.until(lambda: len(follower.data) >= seen + 3, 20)
        # ffmpeg (three segments behind the live edge) reads across both.
        assert not ffmpeg.done()
        code, out, err = await ffmpeg
        # Segments keep coming until every discontinuity left the window.
        await follower.until(
            lambda: follower.checker.discontinuity_seq >= 2,
            30,
        )
        await follower.until(lambda: len(follower.data) >= 22, 30)
    finally:
        await follower.stop()
        if not ffmpeg.done():
            ffmpeg.cancel()
    assert code == 0, err
    assert out + err == ""
    assert len(follower.data) >= 20
    assert follower.checker.target == playlist_target(1)
    follower.checker.check_dates()
    errors = follower.timing_errors()
    assert len(errors) >= 20
    print(
        f"\n>>> {len(errors)} segments through HA: max |EXTINF - PTS| "
        f"{max(errors) * 1e6:.0f} us; target duration "
        f"{follower.checker.target} over {follower.checker.reloads} reloads, "
        f"{follower.discontinuities()} discontinuities"
    )
    assert max(errors) <= 0.001
    assert follower.cc_errors() == []
    assert await hass.config_entries.async_unload(engines.second.entry_id)


@pytest.fixture
async def no_keyframe_flags_sim(
    tmp_path: Path, socket_enabled: None
) -> AsyncIterator[EngineSimulator]:
    """An engine whose stream never flags keyframes (PAT + PMT before each)."""
    fixture = tmp_path / "no_keyframe_flags.ts"
    fixture.write_bytes(
        strip_keyframe_flags(FIXTURE.read_bytes(), tables_at_keyframes=True)
    )
    async with EngineSimulator(fixture=fixture, cold_start=0.2) as sim:
        yield sim


@pytest.mark.parametrize("broadcast_config", [FAST])
async def test_hls_of_a_stream_without_keyframe_flags_is_clean(
    hass: HomeAssistant,
    no_keyframe_flags_sim: EngineSimulator,
    hass_client: ClientFactory,
    hass_access_token: str,
    entry_options: dict[str, int],
) -> None:
    """Cut at PATs: ffmpeg decodes 10+ segments without a warning."""
    entry = await add_engine(hass, no_keyframe_flags_sim, entry_options)
    client = await hass_client()
    url = client.make_url(signed_path(hass, HLS, hass_access_token))
    follower = PlaylistFollower(client, HLS)
    ffmpeg = asyncio.create_task(ffmpeg_decodes(url, 12, timeout=60))
    await until(lambda: get_hub(hass).broadcasts, 30, 0.1)
    follower.start()
    try:
        code, out, err = await ffmpeg
    finally:
        await follower.stop()
    assert code == 0, err
    assert out + err == ""
    assert len(follower.data) >= 10
    [item] = get_hub(hass).broadcasts.values()
    assert item.hls is not None
    stats = item.hls.segmenter.stats
    assert stats.pat_cuts >= 10
    assert stats.keyframe_cuts == stats.forced_cuts == 0
    assert max(follower.timing_errors()) <= 0.001
    assert follower.cc_errors() == []
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize("broadcast_config", [FAST])
async def test_idle_hls_client_ends_a_broadcast_without_keyframe_flags(
    hass: HomeAssistant,
    no_keyframe_flags_sim: EngineSimulator,
    hass_client: ClientFactory,
    entry_options: dict[str, int],
) -> None:
    """One playlist request, then nothing: the tick forgets the client, it lingers
    and stops (segments or not)."""
    await add_engine(hass, no_keyframe_flags_sim, entry_options)
    client = await hass_client()
    assert (await client.get(HLS)).status == 200
    [item] = get_hub(hass).broadcasts.values()
    broadcaster = item.broadcaster
    assert broadcaster.viewer_count == 1
    await until(lambda: not get_hub(hass).broadcasts, 15, 0.1)
    assert broadcaster.closed
    assert broadcaster.viewer_count == 0
    assert no_keyframe_flags_sim.counters.sessions_stopped == 1


@pytest.mark.parametrize(
    "entry_options", [{CONF_HLS_SEGMENT: 1, CONF_LINGER: 1, CONF_MAX_VIEWERS: 2}]
)
async def test_hls_clients_count_against_max_viewers(owner_client: TestClient) -> None:
    """A new HLS client past the limit gets 503 with Retry-After; known ones play."""
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as ts:
        await read_bytes(ts, 20_000)
        first = await owner_client.get(HLS, headers={"User-Agent": "tv"})
        assert first.status == 200
        segment = _media_lines(await first.text())[-1]
        refused = await owner_client.get(HLS, headers={"User-Agent": "phone"})
        assert refused.status == 503
        assert refused.headers["Retry-After"]
        assert "maximum number of viewers" in await refused.text()
        refused = await owner_client.get(segment, headers={"User-Agent": "phone"})
        assert refused.status == 503
        assert (await owner_client.get(HLS, headers={"User-Agent": "tv"})).status == 200
        assert (
            await owner_client.get(segment, headers={"User-Agent": "tv"})
        ).status == 200
        # A TS viewer is refused too while the HLS client counts.
        async with owner_client.get(f"{PREFIX}/stream/{CID}") as third:
            assert third.status == 503


async def test_joiner_and_restart_counters_are_continuous(
    engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """A late TS joiner's first seconds have no counter jump on any PID; across an
    upstream restart every jump is flagged discontinuity_indicator."""
    url = f"{PREFIX}/stream/{CID}"
    async with owner_client.get(url) as first:
        await read_bytes(first, 200_000)
        async with owner_client.get(url) as late:
            joined = strip_nulls(await read_for(late, 3.0))
        assert len(joined) > 300_000
        assert packet_pid(joined, 0) == 0
        assert cc_errors(joined) == []
        before = await read_for(first, 1.0)
        engine_sim.cut_readers()
        # One read stream: a read can end in the middle of a packet.
        stream = strip_nulls(before + await read_for(first, 4.0))
    assert discontinuities(stream) >= 3  # PAT, PMT, audio, video
    assert cc_errors(stream) == []


@pytest.mark.parametrize(
    "entry_options",
    [{CONF_HLS_SEGMENT: 1, CONF_LINGER: 60, CONF_REPLAY_WINDOW: 2}],
)
async def test_hls_resumes_after_idle_and_after_a_skip(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Segments stop with the last client and resume with the next, marked as a
    discontinuity; so does a segmenter that fell out of the replay window and
    skipped ahead."""
    # The segmenter's writes can be held, as a slow consumer's would be.
    flowing, holding = asyncio.Event(), asyncio.Event()
    flowing.set()
    write = hls_output.HlsOutput._write

    async def held(output: hls_output.HlsOutput, data: bytes | memoryview) -> None:
        if not flowing.is_set():
            holding.set()
            await flowing.wait()
        await write(output, data)

    monkeypatch.setattr(hls_output.HlsOutput, "_write", held)
    checker = PlaylistChecker()
    checker.check(await (await owner_client.get(HLS)).text())
    [item] = get_hub(hass).broadcasts.values()
    broadcaster = item.broadcaster
    hls = item.hls
    assert hls is not None
    await until(lambda: not broadcaster.viewer_count, 10, 0.1)
    assert not broadcaster.closed  # lingering
    produced = hls.segmenter.next_seq
    checker.check(await (await owner_client.get(HLS)).text())
    await until(lambda: any(s.discontinuity for s in hls.segmenter.segments), 10, 0.1)
    assert hls.segmenter.next_seq > produced
    assert broadcaster.viewer_count == 1
    # Hold the segmenter until the ring has dropped every chunk it could be at.
    flagged = sum(s.discontinuity for s in hls.segmenter.segments)
    viewer = next(v for v in broadcaster.viewers if v.internal)
    assert viewer.skips == 0
    ring = broadcaster.ring
    flowing.clear()
    async with asyncio.timeout(5):
        await holding.wait()
    held_at = ring.next_seq  # the held write's data came from before this chunk
    # The replay window is 2 s.
    await until(lambda: ring.first_seq > held_at, 10, 0.1)
    assert viewer.write_since  # still in its write, not dropped
    flowing.set()
    async with asyncio.timeout(10):
        while sum(s.discontinuity for s in hls.segmenter.segments) <= flagged:
            await asyncio.sleep(0.1)
            checker.check(await (await owner_client.get(HLS)).text())
    assert viewer.skips == 1
    assert broadcaster.stats.viewers_skipped == 1
    assert engine_sim.counters.sessions_opened == 1
