"""MPEG-TS recordings remuxed to MP4 by the real ffmpeg, and what a failure keeps."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import shutil

import pytest

from custom_components.acestream_proxy.stream.remux import RemuxError, remux_to_mp4
from tests.helpers import ffprobe_streams, run

FIXTURE = Path(__file__).parent / "fixtures" / "sample.ts"


def files(folder: Path) -> list[Path]:
    """What a folder holds, sorted."""
    return sorted(folder.iterdir())


async def test_a_recording_becomes_an_mp4_that_plays(tmp_path: Path) -> None:
    """Same codecs, no transcoding, the TS replaced by the MP4."""
    source = tmp_path / "match.ts"
    shutil.copy(FIXTURE, source)
    target = await remux_to_mp4("ffmpeg", source)
    assert target == tmp_path / "match.mp4"
    assert not source.exists()
    streams = await ffprobe_streams(target)
    assert sorted(s["codec_name"] for s in streams) == ["aac", "h264"]
    code, _, errors = await run(
        "ffmpeg", "-v", "error", "-i", str(target), "-f", "null", "-"
    )
    assert code == 0
    assert not errors
    assert files(tmp_path) == [target]


async def test_a_failed_remux_keeps_the_ts(tmp_path: Path) -> None:
    """ffmpeg refuses the input: the TS stays, no partial MP4 is left."""
    source = tmp_path / "broken.ts"
    source.write_bytes(b"not a video at all" * 100)
    with pytest.raises(RemuxError, match="ffmpeg failed"):
        await remux_to_mp4("ffmpeg", source)
    assert files(tmp_path) == [source]


async def test_no_ffmpeg_or_a_stuck_one_keeps_the_ts(tmp_path: Path) -> None:
    """A binary that is not there, or one that never ends, fails the remux only."""
    source = tmp_path / "match.ts"
    shutil.copy(FIXTURE, source)
    with pytest.raises(RemuxError, match="could not start"):
        await remux_to_mp4(str(tmp_path / "no-ffmpeg"), source)
    fifo = tmp_path / "stuck.ts"
    os.mkfifo(fifo)  # ffmpeg waits for a writer that never comes
    with pytest.raises(RemuxError, match="longer than"):
        await remux_to_mp4("ffmpeg", fifo, limit=1.0)
    assert files(tmp_path) == [source, fifo]
    assert not asyncio.all_tasks() - {asyncio.current_task()}


async def test_an_mp4_that_cannot_be_put_in_place_keeps_the_ts(tmp_path: Path) -> None:
    """A folder stands where the MP4 goes: the TS stays, the partial file goes."""
    source = tmp_path / "match.ts"
    shutil.copy(FIXTURE, source)
    (tmp_path / "match.mp4").mkdir()
    with pytest.raises(RemuxError, match="could not be put in place"):
        await remux_to_mp4("ffmpeg", source)
    assert files(tmp_path) == [source.with_suffix(".mp4"), source]
