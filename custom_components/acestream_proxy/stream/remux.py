"""MPEG-TS to MP4 without transcoding, by ffmpeg (no Home Assistant imports).

Browsers, Chromecast and Home Assistant's media browser play MP4 but not MPEG-TS.
Only the container changes (``-c copy``): minutes of a match take seconds and
almost no CPU. The MP4 is written beside the TS under a temporary name and moved
into place only when ffmpeg succeeded, so a failed remux leaves the TS as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Final

_LOGGER = logging.getLogger(__package__)

# A remux reads and writes the file once; a disk slower than this is stuck.
REMUX_TIMEOUT: Final = 1800.0


class RemuxError(Exception):
    """ffmpeg could not remux the file (the TS is kept)."""


async def remux_to_mp4(
    ffmpeg: str, source: Path, *, limit: float = REMUX_TIMEOUT
) -> Path:
    """Write ``source`` (.ts) as MP4 beside it, delete the TS; return the MP4.

    Raises RemuxError; then the TS is untouched and no partial MP4 is left.
    """
    target = source.with_suffix(".mp4")
    partial = source.with_name(f".{target.name}.part")
    try:
        proc = await asyncio.create_subprocess_exec(
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(source),
            "-map",
            "0:v?",
            "-map",
            "0:a?",
            "-c",
            "copy",
            # The index up front: players start before the whole file is read.
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(partial),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as err:
        raise RemuxError(f"ffmpeg could not start: {err}") from err
    try:
        async with asyncio.timeout(limit):
            _, stderr = await proc.communicate()
    except BaseException as err:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        if isinstance(err, TimeoutError):
            raise RemuxError(f"ffmpeg took longer than {limit:.0f} s") from err
        raise
    if proc.returncode != 0:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        detail = " ".join(stderr.decode("utf-8", "replace").split())[:300]
        raise RemuxError(f"ffmpeg failed ({proc.returncode}): {detail}")
    try:
        await asyncio.to_thread(_replace, partial, target, source)
    except OSError as err:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
        raise RemuxError(f"the MP4 could not be put in place: {err}") from err
    return target


def _replace(partial: Path, target: Path, source: Path) -> None:
    partial.replace(target)
    source.unlink(missing_ok=True)
