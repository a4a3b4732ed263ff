"""HLS built from the shared broadcast: segmenter alone, then through HA with ffmpeg."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy import hls as hls_module
from custom_components.acestream_proxy.const import CONF_HLS_SEGMENT, CONF_LINGER
from custom_components.acestream_proxy.hls import Segmenter, keyframe_pts
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.ts import (
    PACKET_SIZE,
    ProgramInfo,
    mark_discontinuity,
    packet_pid,
    random_access_offsets,
)
from tests.helpers import read_bytes, run, signed_path
from tests.simulator import EngineSimulator

FIXTURE = Path(__file__).parent / "fixtures" / "sample.ts"
CID = "0123456789abcdef0123456789abcdef01234567"
HLS = f"/api/acestream_proxy/hls/{CID}/index.m3u8"

type ClientFactory = Callable[[], Awaitable[TestClient]]


def _media_lines(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def _tag(playlist: str, name: str) -> str:
    return next(
        line.split(":", 1)[1] for line in playlist.splitlines() if line.startswith(name)
    )


def test_segmenter_cuts_at_keyframes() -> None:
    """3 s segments from a 1 s GOP, each starting with PAT/PMT then a keyframe."""
    data = FIXTURE.read_bytes()
    segmenter = Segmenter(target_duration=3.0, window=6)
    for _ in range(2):  # 16 s: the fixture twice, through a timestamp jump
        for offset in range(0, len(data), 64 * PACKET_SIZE):
            segmenter.feed(data[offset : offset + 64 * PACKET_SIZE])
    segments = list(segmenter.segments)
    assert len(segments) >= 4
    program = ProgramInfo()
    program.scan(data)
    for segment in segments:
        assert packet_pid(segment.data, 0) == 0
        assert packet_pid(segment.data, PACKET_SIZE) == program.pmt_pid
        first_rap = random_access_offsets(segment.data, program.video_pid)[0]
        assert first_rap == 2 * PACKET_SIZE
        assert keyframe_pts(segment.data[first_rap : first_rap + PACKET_SIZE])
    # A short first segment (one keyframe interval), then the target duration.
    assert [round(s.duration) for s in segments[:3]] == [1, 3, 3]
    playlist = segmenter.playlist(lambda s: f"{s.seq}.ts")
    assert _tag(playlist, "#EXT-X-TARGETDURATION") == "3"
    assert int(_tag(playlist, "#EXT-X-MEDIA-SEQUENCE")) == segments[0].seq
    assert "#EXT-X-PROGRAM-DATE-TIME:" in playlist
    assert _media_lines(playlist) == [f"{s.seq}.ts" for s in segments]
    assert segmenter.get(segments[0].seq - 1) is None
    assert segmenter.get(segments[-1].seq) is segments[-1]


def test_segmenter_discontinuity() -> None:
    """A flagged keyframe (upstream restart) starts a segment marked discontinuous."""
    data = FIXTURE.read_bytes()
    program = ProgramInfo()
    program.scan(data)
    raps = random_access_offsets(data, program.video_pid)
    segmenter = Segmenter(target_duration=3.0, window=3)
    segmenter.feed(data[: raps[4]])
    restarted = mark_discontinuity(data[raps[4] :], 0)
    segmenter.feed(restarted)
    segmenter.feed(data)  # keeps going until the flagged segment leaves the window
    flagged = [s for s in segmenter.segments if s.discontinuity]
    playlist = segmenter.playlist(lambda s: f"{s.seq}.ts")
    if flagged:
        assert "#EXT-X-DISCONTINUITY\n" in playlist
    else:
        assert _tag(playlist, "#EXT-X-DISCONTINUITY-SEQUENCE") == "1"
    assert segmenter.next_seq >= 5
    resumed = Segmenter(target_duration=1.0)
    resumed.feed(data[: raps[3]])
    resumed.resume()
    resumed.feed(data[raps[5] :])
    assert any(s.discontinuity for s in resumed.segments)


@pytest.fixture
def entry_options() -> dict[str, int]:
    """1 s segments (the fixture's GOP) so playlists roll within a test."""
    return {CONF_HLS_SEGMENT: 1, CONF_LINGER: 1}


@pytest.fixture(autouse=True)
def quick_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """HLS clients count as gone after 2 s without a fetch."""
    monkeypatch.setattr(hls_module, "IDLE_MIN", 2.0)


async def test_ffmpeg_plays_hls_through_home_assistant(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
    hass_access_token: str,
) -> None:
    """A signed playlist URL is all ffmpeg needs; H.264 + AAC decode over segments."""
    client = await hass_client()
    url = client.make_url(signed_path(hass, HLS, hass_access_token))
    code, _, err = await run(
        "ffmpeg",
        "-v",
        "error",
        "-i",
        str(url),
        "-t",
        "4",
        "-f",
        "null",
        "-",
        timeout=60,
    )
    assert code == 0, err
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
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """Media sequence moves on; an upstream cut shows as a discontinuity."""
    client = await hass_client()
    first = await (await client.get(HLS)).text()
    assert first.startswith("#EXTM3U")
    start_seq = int(_tag(first, "#EXT-X-MEDIA-SEQUENCE"))
    segment_url = _media_lines(first)[0]
    assert "authSig=" in segment_url
    resp = await client.get(segment_url)
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
            playlist = await (await client.get(HLS)).text()
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
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """Bad ids, unknown names, segments of nothing, engine errors."""
    client = await hass_client()
    assert (await client.get("/api/acestream_proxy/hls/xyz/index.m3u8")).status == 400
    assert (await client.get(f"/api/acestream_proxy/hls/{CID}/x.txt")).status == 404
    assert (await client.get(f"/api/acestream_proxy/hls/{CID}/3.ts")).status == 404
    engine_sim.unknown_content.add(CID)
    resp = await client.get(HLS)
    assert resp.status == 502
    engine_sim.unknown_content.clear()
    infohash = engine_sim.infohash_for(CID)
    by_infohash = f"/api/acestream_proxy/hls/infohash/{infohash}/index.m3u8"
    resp = await client.get(by_infohash)
    assert resp.status == 502  # the engine never loaded this content
    assert "failed to load content" in await resp.text()
    assert (await client.get(HLS)).status == 200
    resp = await client.get(by_infohash)
    assert resp.status == 200  # the same broadcast, learnt from the content id
    assert engine_sim.counters.sessions_opened == 1
    assert (await client.get(f"/api/acestream_proxy/hls/{CID}/99999.ts")).status == 404


async def test_hls_and_ts_share_one_session_and_viewers_count(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
) -> None:
    """An HLS client is a viewer while it fetches; then the broadcast lingers."""
    client = await hass_client()
    async with client.get(f"/api/acestream_proxy/stream/{CID}") as ts:
        await read_bytes(ts, 50_000)
        assert (await client.get(HLS)).status == 200
        [item] = get_hub(hass).broadcasts.values()
        broadcaster = item.broadcaster
        assert broadcaster.viewer_count == 2
    assert engine_sim.counters.sessions_opened == 1
    async with asyncio.timeout(5):
        while broadcaster.viewer_count:
            await asyncio.sleep(0.1)
    # Nobody fetches: the segmenter stops, the broadcast lingers, then stops (and
    # leaves the hub once its engine session is stopped).
    async with asyncio.timeout(10):
        while get_hub(hass).broadcasts:
            await asyncio.sleep(0.1)
    assert broadcaster.closed
    assert engine_sim.counters.sessions_stopped == 1
