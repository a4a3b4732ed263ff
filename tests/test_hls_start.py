"""HLS starts from the ring's past: a warm broadcast's first playlist lists segments.

Through Home Assistant's real HTTP stack against the engine simulator: a TS viewer
warms the broadcast, then the first HLS playlist must already list three target
durations of complete segments, whose bytes decode clean (ffmpeg), whose counters
run on without a jump and whose timestamps match the playlist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
import time

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy.const import (
    CONF_HLS_SEGMENT,
    CONF_LINGER,
    CONF_REPLAY_WINDOW,
)
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.broadcast import Broadcaster
from tests.helpers import read_bytes, run
from tests.hls_check import PlaylistChecker, cc_errors, pts_durations, video_pts
from tests.simulator import EngineSimulator

CID = "0123456789abcdef0123456789abcdef01234567"
HLS = f"/api/acestream_proxy/hls/{CID}/index.m3u8"
STREAM = f"/api/acestream_proxy/stream/{CID}"

type ClientFactory = Callable[[], Awaitable[TestClient]]


@pytest.fixture
def entry_options() -> dict[str, int]:
    """1 s segments (the fixture's GOP): a playlist target of 2 s."""
    return {CONF_HLS_SEGMENT: 1, CONF_LINGER: 5, CONF_REPLAY_WINDOW: 15}


async def _warm(broadcaster: Broadcaster, seconds: float) -> None:
    """Wait until the ring holds ``seconds`` of the broadcast."""
    ring = broadcaster.ring
    async with asyncio.timeout(seconds + 20):
        while ring.age(ring.first_seq, time.monotonic()) < seconds:
            await asyncio.sleep(0.2)


async def test_warm_first_playlist_lists_clean_segments_at_once(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client: ClientFactory,
    tmp_path: Path,
) -> None:
    """Three target durations at the first request, cut from the ring's past."""
    client = await hass_client()
    async with client.get(STREAM) as ts:
        await read_bytes(ts, 10_000)
        [item] = get_hub(hass).broadcasts.values()
        await _warm(item.broadcaster, 10.0)
        asked = datetime.now(UTC)
        resp = await client.get(HLS)
        assert resp.status == 200
        playlist = await resp.text()
    checker = PlaylistChecker()
    listed = checker.check(playlist)
    assert checker.target == 2
    # Nothing new was cut while the request waited: all of it is the ring's past.
    assert sum(s.duration for s in listed) >= 3 * checker.target, playlist
    checker.check_dates()
    first, last = listed[0], listed[-1]
    assert first.date is not None
    assert last.date is not None
    # Dated by when their data arrived, not by when they were cut.
    assert last.date + timedelta(seconds=last.duration) <= asked + timedelta(seconds=1)
    assert first.date <= asked - timedelta(seconds=7)
    assert not any(s.discontinuity for s in listed)

    bodies = []
    for segment in listed:
        got = await client.get(segment.uri)
        assert got.status == 200
        bodies.append(await got.read())
    joined = b"".join(bodies)
    # Each segment opens with PAT + PMT whose counters lead into the stream's.
    assert cc_errors(joined) == []
    for body in bodies:
        assert (body[1] & 0x1F) << 8 | body[2] == 0
    # Timestamps: the playlist's durations are the video's, and they only grow.
    measured = pts_durations(bodies)
    for segment, duration in zip(listed, measured, strict=False):
        assert abs(segment.duration - duration) < 0.05, (segment, duration)
    stamps = video_pts(joined)
    assert stamps == sorted(stamps)
    path = tmp_path / "joined.ts"
    path.write_bytes(joined)
    code, out, err = await run(
        "ffmpeg", "-v", "warning", "-i", str(path), "-f", "null", "-", timeout=60
    )
    assert code == 0, err
    assert out + err == ""
    assert engine_sim.counters.sessions_opened == 1
