"""LL-HLS: segments published in parts, blocking playlist reloads, hinted parts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
import itertools
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy.const import CONF_HLS_SEGMENT, CONF_LINGER
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.hls import Segmenter
from custom_components.acestream_proxy.stream.hls.output import HlsOutput
from custom_components.acestream_proxy.stream.hls.window import (
    FIRST_SEQ,
    PART_TARGET,
    Part,
    Partial,
    SegmentWindow,
)
from custom_components.acestream_proxy.stream.ts import (
    PACKET_SIZE,
    last_counters,
    mark_discontinuity,
    packet_pid,
    random_access_offsets,
)
from custom_components.acestream_proxy.views import hls as hls_view
from tests.ha_fixtures import CID, PREFIX, ClientFactory
from tests.helpers import ffmpeg_decodes, signed_path
from tests.hls_check import PlaylistChecker, cc_errors, video_pts
from tests.simulator import EngineSimulator
from tests.test_hls import _feed, _interleave_audio, _program, _stream

HLS = f"{PREFIX}/hls/{CID}/index.m3u8"


def _parts_of(segmenter: Segmenter) -> list[bytes]:
    return [part.data for s in segmenter.segments for part in s.parts]


@pytest.mark.parametrize("interleaved", [False, True])
async def test_parts_make_their_segments_and_decode_cut_anywhere(
    tmp_path: Path, interleaved: bool
) -> None:
    """Parts put together are the segment; each ends between whole frames and
    whole PES, so any run of parts from a segment's start decodes clean."""
    data = _stream(12.0)
    if interleaved:
        data = _interleave_audio(data)  # audio PES still open where frames start
    segmenter = Segmenter(target_duration=2.0, window=20)
    _feed(segmenter, data)
    segments = list(segmenter.segments)
    assert len(segments) >= 4
    video = _program(data).video_pid
    for segment in segments:
        parts = segment.parts
        assert len(parts) >= 2
        assert b"".join(part.data for part in parts) == segment.data
        assert sum(p.duration for p in parts) == pytest.approx(segment.duration)
        # A part only ends where no audio PES is open: an interleaving muxer
        # keeps one open across a few frames, and the part runs over by them.
        longest = PART_TARGET * (1.25 if interleaved else 1.0)
        assert all(part.duration <= longest for part in parts)
        assert all(p.duration >= 0.85 * PART_TARGET for p in parts[:-1])
        # Only the first starts with the header and a keyframe.
        assert [part.independent for part in parts] == [True] + [False] * (
            len(parts) - 1
        )
        for part in parts[1:]:
            # Each part starts with the start of a video frame.
            first = next(
                pos
                for pos in range(0, len(part.data), PACKET_SIZE)
                if packet_pid(part.data, pos) == video
            )
            assert part.data[first + 1] & 0x40
    # Parts in a row: counters and video timestamps go on across them.
    parts = _parts_of(segmenter)
    assert cc_errors(b"".join(parts)) == []
    stamps = [pts for part in parts for pts in video_pts(part)]
    assert len(stamps) == len(video_pts(b"".join(parts)))
    second = segments[1]
    for count in range(1, len(second.parts) + 1):
        path = tmp_path / f"prefix{count}.ts"
        path.write_bytes(b"".join(part.data for part in second.parts[:count]))
        code, out, err = await ffmpeg_decodes(path, 10)
        assert (code, out + err) == (0, ""), count


def test_playlists_with_parts_follow_the_rules_reload_after_reload() -> None:
    """Fed as it arrives: every reload is valid, parts never change once listed,
    and the hint names the next part."""
    data = _stream(14.0)
    segmenter = Segmenter(target_duration=2.0, window=6)
    checker = PlaylistChecker()
    chunk = 40 * PACKET_SIZE
    program = _program(data)
    segmenter.feed(program.header_before([b""]))
    hints = set()
    for offset in range(0, len(data), chunk):
        segmenter.feed(data[offset : offset + chunk])
        if not segmenter.segments:
            continue
        checker.check(
            segmenter.playlist(
                lambda s: f"{s.seq}.ts", lambda seq, part: f"{seq}.{part}.ts"
            )
        )
        partial = segmenter.partial
        assert partial is not None
        # A hint even before the first part (see SegmentWindow._open_parts).
        assert checker.hint == f"{segmenter.next_seq}.{len(partial.parts)}.ts"
        hints.add(checker.hint)
    checker.check_dates()
    assert len(hints) > 2 * len(checker.segments)
    # A plain playlist (no part URLs) has none of the low-latency tags.
    plain = segmenter.playlist(lambda s: f"{s.seq}.ts")
    assert "#EXT-X-PART" not in plain
    assert "#EXT-X-PRELOAD-HINT" not in plain
    assert "#EXT-X-SERVER-CONTROL" not in plain


Reload = tuple[str, dict[str, bytes]]


def _reloads(segmenter: Segmenter, chunks: Iterable[bytes]) -> list[Reload]:
    """The low-latency playlist each time it changes while ``chunks`` are fed,
    with what each of its URIs serves at that moment."""
    found: list[Reload] = []
    for chunk in chunks:
        segmenter.feed(chunk)
        if not segmenter.segments:
            continue
        text = segmenter.playlist(
            lambda s: f"{s.seq}.ts", lambda seq, part: f"{seq}.{part}.ts"
        )
        if found and found[-1][0] == text:
            continue
        served = {f"{s.seq}.ts": s.data for s in segmenter.segments}
        for segment in segmenter.segments:
            for index, part in enumerate(segment.parts):
                served[f"{segment.seq}.{index}.ts"] = part.data
        partial = segmenter.partial
        for index, part in enumerate(partial.parts if partial is not None else ()):
            served[f"{segmenter.next_seq}.{index}.ts"] = part.data
        found.append((text, served))
    return found


def _chunks(data: bytes, size: int = 4 * PACKET_SIZE) -> Iterable[bytes]:
    return (data[offset : offset + size] for offset in range(0, len(data), size))


def _frame_starts(data: bytes, video: int) -> list[int]:
    return [
        pos
        for pos in range(0, len(data), PACKET_SIZE)
        if packet_pid(data, pos) == video and data[pos + 1] & 0x40
    ]


# Where the source breaks off, in video frames after the start of a segment
# (its first keyframe): inside its only frame (the segment is dropped), inside
# its second, and past its first part; and how far into that frame.
CUTS = [(frame, packets) for frame in (0, 1, 2, 14) for packets in (1, 6)]


@pytest.mark.parametrize(("frame", "packets"), CUTS)
@pytest.mark.parametrize("how", ["restart", "resume"])
def test_reloads_across_a_restart_agree_on_every_segment_and_part(
    how: str, frame: int, packets: int
) -> None:
    """The source breaks off (an upstream restart, or the segmenter resumes
    elsewhere after a pause) at frames around a segment's start. Any two
    reloads a player makes in a row (a late one, a retry) agree on what both
    list: each sequence number keeps its URI and discontinuity count, the open
    segment after them included (hls.js 1.6 stops on a "media sequence
    mismatch" otherwise), and each part or segment keeps its bytes."""
    data = _stream(5.0)
    restart = _stream(5.0, start=6.0)
    program = _program(data)
    video = program.video_pid
    assert video is not None
    segmenter = Segmenter(target_duration=1.0, window=8)
    # The source breaks off in the segment cut at the fourth keyframe.
    starts = _frame_starts(data, video)
    keyframe = random_access_offsets(data, video)[3]
    cut = starts[starts.index(keyframe) + frame] + packets * PACKET_SIZE
    reloads = _reloads(segmenter, [program.header_before([b""]), *_chunks(data[:cut])])
    first = random_access_offsets(restart, video)[0]
    if how == "resume":
        segmenter.resume()
        after = [program.header_before([restart[:first]]), restart[first:]]
    else:
        last_counters(restart[:first], program.counters)
        rest = mark_discontinuity(restart[first:], 0)
        after = [program.lead_in(True, rest), rest]
    reloads += _reloads(segmenter, itertools.chain.from_iterable(map(_chunks, after)))
    assert any("#EXT-X-DISCONTINUITY\n" in text for text, _ in reloads)
    for (before, then), (text, now) in itertools.combinations(reloads, 2):
        checker = PlaylistChecker()
        checker.check(before, then.get)
        checker.check(text, now.get)


def test_the_window_answers_for_parts_and_segments() -> None:
    """Which segment or part exists; a part past a segment's last stands for the
    next one's first (RFC 8216bis 6.2.5.2); a discontinuity before parts."""
    window = SegmentWindow(2.0, 3)
    assert window.next_seq == FIRST_SEQ
    window.next_seq = 0  # numbered from 0 here, for readable sequence numbers
    now = datetime(2026, 1, 1, tzinfo=UTC)
    two = (Part(b"a", 1.0, True), Part(b"b", 1.0, False))
    window._publish(b"ab", 2.0, False, now, two)
    assert window.has(0, None)
    assert window.has(0, 1)
    assert not window.has(0, 2)  # the next segment's first part: none yet
    assert not window.has(1, None)
    window._publish_partial(Partial(True, now, [Part(b"c", 1.0, True)]))
    assert window.has(0, 2)
    assert window.has(1, 0)
    assert not window.has(1, 1)
    assert window.part(1, 0) == Part(b"c", 1.0, True)
    assert window.part(0, 1) == two[1]
    assert window.part(0, 2) is None
    assert window.part(7, 0) is None
    window._publish(b"cd", 2.0, True, now, ())
    window._publish(b"ef", 2.0, False, now, ())
    assert window.has(0, 9)  # long finished
    text = window.playlist(lambda s: f"{s.seq}.ts", lambda q, p: f"{q}.{p}.ts")
    assert "#EXT-X-DISCONTINUITY\n" in text
    assert "#EXT-X-PRELOAD-HINT" not in text  # segment 3 not begun
    # Begun, no part yet: hinted, with its discontinuity, undated.
    window._publish_partial(Partial(True, now, []))
    text = window.playlist(lambda s: f"{s.seq}.ts", lambda q, p: f"{q}.{p}.ts")
    assert text.endswith(
        '2.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="3.0.ts"\n'
    )
    window._publish_partial(Partial(True, now, [Part(b"g", 1.0, True)]))
    text = window.playlist(lambda s: f"{s.seq}.ts", lambda q, p: f"{q}.{p}.ts")
    assert text.count("#EXT-X-DISCONTINUITY\n") == 2
    assert text.endswith(
        '3.0.ts",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI="3.1.ts"\n'
    )


@pytest.fixture
def entry_options() -> dict[str, int]:
    """1 s segments (the fixture's GOP) so parts and segments come quickly."""
    return {CONF_HLS_SEGMENT: 1, CONF_LINGER: 1}


def _output(hass: HomeAssistant) -> HlsOutput:
    [item] = get_hub(hass).broadcasts.values()
    assert item.hls is not None
    return item.hls


async def test_a_blocking_reload_answers_once_the_part_is_cut(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """The hinted part does not exist when asked for; the reload comes back with
    it listed (before the part after it), and the part itself is served."""
    first = await owner_client.get(HLS)
    assert first.status == 200
    text = await first.text()
    assert "CAN-BLOCK-RELOAD=YES" in text
    segmenter = _output(hass).segmenter
    partial = segmenter.partial
    seq, part = segmenter.next_seq, len(partial.parts) if partial else 0
    uri = f"{PREFIX}/hls/{CID}/{seq}.{part}.ts"
    assert segmenter.part(seq, part) is None
    hinted = asyncio.ensure_future(owner_client.get(uri))
    resp = await owner_client.get(f"{HLS}?_HLS_msn={seq}&_HLS_part={part}")
    assert resp.status == 200
    reloaded = await resp.text()
    assert f"/{seq}.{part}.ts?" in reloaded or f"/{seq}.ts?" in reloaded
    assert f"/{seq}.{part + 2}.ts?" not in reloaded
    checker = PlaylistChecker()
    checker.check(text)
    checker.check(reloaded)
    body = await hinted
    assert body.status == 200
    assert body.content_type == "video/mp2t"
    assert await body.read() == segmenter.part(seq, part).data  # type: ignore[union-attr]
    # A whole segment: _HLS_msn alone waits for it to be finished.
    resp = await owner_client.get(f"{HLS}?_HLS_msn={segmenter.next_seq}")
    assert resp.status == 200
    assert segmenter.get(segmenter.next_seq - 1) is not None


async def test_a_cold_start_answers_a_blocking_reload_at_the_first_part(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """A reload blocking for the first segment's first part answers as soon as
    it is cut; a plain first request still waits for two whole segments."""
    resp = await owner_client.get(f"{HLS}?_HLS_msn={FIRST_SEQ}&_HLS_part=0")
    assert resp.status == 200
    text = await resp.text()
    checker = PlaylistChecker()
    assert checker.check(text) == []  # no whole segment yet
    [part] = checker.open_parts
    assert part.uri.split("?")[0].endswith(f"/{FIRST_SEQ}.0.ts")
    assert part.independent
    plain = await (await owner_client.get(HLS)).text()
    listed = checker.check(plain)
    assert len(listed) >= 2
    assert listed[0].seq == FIRST_SEQ
    # The parts of the first segment are the segment.
    whole = await (await owner_client.get(listed[0].uri)).read()
    parts = [await (await owner_client.get(p.uri)).read() for p in listed[0].parts]
    assert b"".join(parts) == whole
    assert cc_errors(whole) == []


async def test_blocking_reload_refusals(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Malformed or too-far requests: 400 at once; nothing in time: 503; parts
    that will never be: 404."""
    assert (await owner_client.get(HLS)).status == 200
    segmenter = _output(hass).segmenter
    for query, status in (
        ("_HLS_part=1", 400),
        ("_HLS_msn=x", 400),
        ("_HLS_msn=1&_HLS_part=-1", 400),
        (f"_HLS_msn={segmenter.next_seq + 3}", 400),
        (f"_HLS_msn={segmenter.next_seq}&_HLS_part=9", 400),
        ("_HLS_msn=0&_HLS_part=0", 200),  # long past: answered at once
    ):
        resp = await owner_client.get(f"{HLS}?{query}")
        assert resp.status == status, (query, await resp.text())
    assert (await owner_client.get(f"{PREFIX}/hls/{CID}/0.99.ts")).status == 404
    other = f"{PREFIX}/hls/{CID[:-1]}0/0.0.ts"
    assert (await owner_client.get(other)).status == 404  # no such broadcast
    far = f"{PREFIX}/hls/{CID}/{segmenter.next_seq + 1}.0.ts"
    assert (await owner_client.get(far)).status == 404
    # The engine stalls: nothing comes within the (shortened) wait.
    monkeypatch.setattr(hls_view, "BLOCK_TARGETS", 0.5)
    engine_sim.stall = True
    resp = await owner_client.get(f"{HLS}?_HLS_msn={segmenter.next_seq + 1}")
    assert resp.status == 503
    assert "did not come in time" in await resp.text()
    engine_sim.stall = False


async def test_a_waiting_request_ends_with_the_broadcast(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    loaded_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reload or a part waiting when the broadcast is stopped, or the entry
    unloaded, ends (nothing left behind for the cleanup check)."""
    entered = asyncio.Event()
    for name in ("wait_for", "wait_for_part"):
        real = getattr(HlsOutput, name)

        async def spy(self: HlsOutput, *args: Any, real: Any = real) -> Any:
            entered.set()
            return await real(self, *args)

        monkeypatch.setattr(HlsOutput, name, spy)
    assert (await owner_client.get(HLS)).status == 200
    segmenter = _output(hass).segmenter
    engine_sim.stall = True
    waiting = asyncio.ensure_future(
        owner_client.get(f"{HLS}?_HLS_msn={segmenter.next_seq + 1}")
    )
    await entered.wait()
    await hass.services.async_call(
        "acestream_proxy", "stop", {"content_id": CID}, blocking=True
    )
    resp = await asyncio.wait_for(waiting, 10)
    assert resp.status == 404
    assert "the broadcast ended" in await resp.text()
    engine_sim.stall = False
    assert (await owner_client.get(HLS)).status == 200
    segmenter = _output(hass).segmenter
    engine_sim.stall = True
    partial = segmenter.partial
    coming = len(partial.parts) if partial is not None else 0
    entered.clear()
    hinted = asyncio.ensure_future(
        owner_client.get(f"{PREFIX}/hls/{CID}/{segmenter.next_seq}.{coming}.ts")
    )
    await entered.wait()
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    resp = await asyncio.wait_for(hinted, 10)
    assert resp.status == 404


async def test_a_signed_playlist_url_reloads_with_the_players_parameters(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client_no_auth: ClientFactory,
    hass_access_token: str,
) -> None:
    """hls.js adds _HLS_msn/_HLS_part to the signed URL it was given; the
    signature still holds for them, not for any other change; parts are signed."""
    client = await hass_client_no_auth()
    signed = signed_path(hass, f"{HLS}?_HLS_msn=1&_HLS_part=0", hass_access_token)
    resp = await client.get(signed)
    assert resp.status == 200
    text = await resp.text()
    segmenter = _output(hass).segmenter
    reload = signed.replace("_HLS_msn=1", f"_HLS_msn={segmenter.next_seq}")
    assert (await client.get(reload)).status == 200
    bare = signed_path(hass, HLS, hass_access_token)
    assert (await client.get(f"{bare}&_HLS_msn=0")).status == 200
    assert (await client.get(f"{bare}&other=1")).status == 401
    assert (await client.get(signed.replace(CID, CID[:-1] + "0"))).status == 401
    part = next(line for line in text.splitlines() if line.startswith("#EXT-X-PART:"))
    part_uri = part.split('URI="', 1)[1].split('"', 1)[0]
    ok = await client.get(part_uri)
    assert ok.status == 200
    assert ok.content_type == "video/mp2t"
    assert (await client.get(part_uri.split("?", 1)[0])).status == 401
