"""Zap table: how soon a channel shows a picture, through a real Home Assistant.

Part of ``make bench`` (script/bench.py runs it on the same Home Assistant and
engine simulator); ``python script/zap.py`` runs it alone (``--integration`` points
at another copy of the integration, to compare with an older one).

Per run, on fresh broadcasts of the bench's source (H.264 720p25 at 8 Mbit/s, a
keyframe every 2 s, looped by the engine simulator with a 0.2 s cold start):

- cold: the first client of a broadcast nobody watches (TS, then HLS on another);
- warm: a TS viewer has watched for a full replay window (10 s), then a new TS
  client and the first HLS client arrive.

Time to first frame: from launching ``ffmpeg`` on the URL to its first decoded
video frame (it reads and probes like ffmpeg-based players do). Live delay: how far
that frame is behind what the warm viewer receives at that moment, by their PTS.
First playlist: the answer time of the first HLS playlist request. VLC (when
``cvlc`` is installed): its log on warm and cold HLS, counting what its adaptive
module says about discontinuities and clocks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import datetime
import math
import os
from pathlib import Path
import pwd
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(SCRIPT.parent))

from bench import (  # noqa: E402
    DOMAIN,
    ROOT,
    Hass,
    _import_data_plane,
    make_fixture,
    video_pid,
)
import zap_browser  # noqa: E402

PTS_HZ = 90_000
WARM_SECONDS = 10.0  # the default replay window: the ring is full
FRAME_TIMEOUT = 60.0
# ffmpeg's default probing reads up to 5 s of media (analyzeduration) before its
# first frame, whatever the server does; live players probe briefly.
PROBE = ("-analyzeduration", "500000")
SHOWINFO = re.compile(r"Parsed_showinfo.*\bpts_time:\s*([-\d.]+)")
# What VLC's adaptive demuxer and clock say when a start goes wrong.
VLC_PROBLEMS = {
    "discontinuity": re.compile(r"Ending demuxer stream.*discontinuity", re.I),
    "no reference clock": re.compile(r"Timestamp conversion failed|no reference clock"),
    "PCR too late": re.compile(r"PCR\s+is called too late"),
}
VLC_USER = "acestream-zap"


class Monitor:
    """A TS viewer that keeps the broadcast warm and knows its newest video PTS."""

    def __init__(self, hass: Hass, path: str, video_pid: int) -> None:
        """Watch ``path`` (a stream path of the integration)."""
        self.hass = hass
        self.path = path
        self.video_pid = video_pid
        self.newest: float | None = None  # seconds (PTS / 90 kHz)
        self.since = 0.0
        self._task: asyncio.Task[None] | None = None
        self.first_byte = asyncio.Event()

    def start(self) -> None:
        """Start reading in a task."""
        self.since = time.monotonic()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        import aiohttp

        _, hls = _data_plane_hls()
        buf = b""
        async with self.hass.http.get(
            f"{self.hass.url}{self.path}",
            headers={"Authorization": f"Bearer {self.hass.token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=30),
        ) as resp:
            async for chunk in resp.content.iter_any():
                self.first_byte.set()
                buf += chunk
                whole = len(buf) - len(buf) % 188
                for pos in range(0, whole, 188):
                    b1 = buf[pos + 1]
                    if b1 & 0x40 and ((b1 & 0x1F) << 8 | buf[pos + 2]) == (
                        self.video_pid
                    ):
                        stamps = hls.pes_timestamps(buf[pos : pos + 188])
                        if stamps is not None:
                            self.newest = stamps[0] / PTS_HZ
                buf = buf[whole:]

    async def warm(self, seconds: float) -> None:
        """Wait until it has watched for ``seconds``."""
        await asyncio.wait_for(self.first_byte.wait(), 60)
        left = seconds - (time.monotonic() - self.since)
        if left > 0:
            await asyncio.sleep(left)

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def _data_plane_hls() -> tuple[Any, Any]:
    _, ts = _import_data_plane()
    import importlib

    return ts, importlib.import_module(f"custom_components.{DOMAIN}.stream.hls")


async def first_frame(url: str) -> tuple[float, float]:
    """Seconds from launching ffmpeg to its first decoded video frame; its PTS.

    The frame is seen by the showinfo filter, which logs to stderr (unbuffered)
    once the decoder has given it; -copyts keeps the stream's own PTS.
    """
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "info", *PROBE,
        "-i", url, "-map", "0:v:0", "-frames:v", "1", "-copyts",
        "-vf", "showinfo", "-f", "null", "-",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        while True:
            line = await asyncio.wait_for(proc.stderr.readline(), FRAME_TIMEOUT)
            if not line:
                raise RuntimeError(f"ffmpeg ended without a frame: {url}")
            if found := SHOWINFO.search(line.decode(errors="replace")):
                return time.monotonic() - started, float(found.group(1))
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _sign(hass: Hass, path: str) -> str:
    (signed,) = await hass.api.websocket(
        {"type": "auth/sign_path", "path": path, "expires": 3600}
    )
    return f"{hass.url}{signed['path']}"


def _paths(content_id: str) -> tuple[str, str]:
    return (
        f"/api/{DOMAIN}/stream/{content_id}",
        f"/api/{DOMAIN}/hls/{content_id}/index.m3u8",
    )


async def _playlist_time(hass: Hass, url: str) -> tuple[float, int]:
    """Seconds the first playlist request takes; segments it lists."""
    started = time.monotonic()
    async with hass.http.get(url) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"playlist: HTTP {resp.status}: {text}")
    return time.monotonic() - started, text.count("#EXTINF")


async def _stop(hass: Hass, content_id: str) -> None:
    await hass.api.request(
        "POST", f"/api/services/{DOMAIN}/stop", json={"content_id": content_id}
    )


# The channels Home Assistant's frontend plays from its media browser.
COLD_CHANNEL, WARM_CHANNEL = "Zap cold", "Zap warm"


async def add_channels(hass: Hass) -> dict[str, str]:
    """Two channels for the frontend's rows; their content ids by name."""
    channels = {
        COLD_CHANNEL: secrets.token_hex(20),
        WARM_CHANNEL: secrets.token_hex(20),
    }
    for name, content_id in channels.items():
        await hass.api.add_channel(hass.entry_id, name, content_id)
    return channels


def _browser_row(got: dict[str, float], name: str, found: dict[str, Any]) -> None:
    """One browser measurement into ``got``: frame, after key, delay, stalls."""
    got[name] = found["frame"]
    if found.get("after key") is not None:
        got[f"{name} key"] = found["after key"]
    stalls = found["stalls"]
    got[f"{name} stalls"] = len(stalls)
    got[f"{name} stall ms"] = max(stalls, default=0)
    if found.get("delay later") is not None:
        got[f"{name} delay later"] = found["delay later"]


async def browser_cold(
    hass: Hass, got: dict[str, float], channels: dict[str, str], workdir: Path
) -> None:
    """hls.js and Home Assistant's frontend on broadcasts nobody watches."""
    url = await _sign(hass, _paths(secrets.token_hex(20))[1])
    _browser_row(got, "hlsjs cold", await zap_browser.hlsjs_first_frame(url, workdir))
    _browser_row(
        got,
        "frontend cold",
        await zap_browser.frontend_first_frame(hass, COLD_CHANNEL, workdir),
    )
    await _stop(hass, channels[COLD_CHANNEL])


async def browser_warm(
    hass: Hass, got: dict[str, float], warm: str, workdir: Path
) -> None:
    """hls.js and Home Assistant's frontend on the warm broadcast."""
    url = await _sign(hass, _paths(warm)[1])
    found = await zap_browser.hlsjs_first_frame(url, workdir)
    _browser_row(got, "hlsjs warm", found)
    if found.get("delay") is not None:
        got["hlsjs delay"] = found["delay"]
    _browser_row(
        got,
        "frontend warm",
        await zap_browser.frontend_first_frame(hass, WARM_CHANNEL, workdir),
    )


async def _after_key(hass: Hass, url: str, frame_wall: float) -> float | None:
    """Seconds from the first segment's date (a cold broadcast's first keyframe,
    as the proxy received it) to ``frame_wall``; None once it left the playlist."""
    async with hass.http.get(url) as resp:
        text = await resp.text()
    if "#EXT-X-MEDIA-SEQUENCE:1\n" not in text:
        return None
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = datetime.fromisoformat(line.split(":", 1)[1])
            return frame_wall - date.timestamp()
    return None


async def one_run(
    hass: Hass,
    video_pid: int,
    channels: dict[str, str] | None = None,
    workdir: Path | None = None,
) -> dict[str, float]:
    """Cold TS, cold HLS, then warm TS and warm HLS on fresh broadcasts; with
    ``channels``, the browser rows too (the warm broadcast is a channel's)."""
    got: dict[str, float] = {}
    cold_ts, cold_hls, warm = (secrets.token_hex(20) for _ in range(3))
    if channels is not None:
        warm = channels[WARM_CHANNEL]
    got["ts cold"], _ = await first_frame(await _sign(hass, _paths(cold_ts)[0]))
    hls_url = await _sign(hass, _paths(cold_hls)[1])
    got["hls cold"], _ = await first_frame(hls_url)
    key = await _after_key(hass, hls_url, time.time())
    if key is not None:
        got["hls cold key"] = key
    if channels is not None and workdir is not None:
        await browser_cold(hass, got, channels, workdir)
    monitor = Monitor(hass, _paths(warm)[0], video_pid)
    monitor.start()
    try:
        await monitor.warm(WARM_SECONDS)
        hls_url = await _sign(hass, _paths(warm)[1])
        got["playlist warm"], got["segments warm"] = await _playlist_time(hass, hls_url)
        got["hls warm"], pts = await first_frame(hls_url)
        if monitor.newest is not None:
            got["hls delay"] = monitor.newest - pts
        got["ts warm"], pts = await first_frame(await _sign(hass, _paths(warm)[0]))
        if monitor.newest is not None:
            got["ts delay"] = monitor.newest - pts
        if channels is not None and workdir is not None:
            await browser_warm(hass, got, warm, workdir)
    finally:
        await monitor.stop()
        for content_id in (cold_ts, cold_hls, warm):
            with contextlib.suppress(Exception):
                await _stop(hass, content_id)
    return got


def _vlc_user() -> str | None:
    """VLC refuses to run as root: a system user of its own (created if root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(VLC_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false",
             VLC_USER],
            check=True, capture_output=True,
        )  # fmt: skip
    return VLC_USER


async def vlc_log(url: str, seconds: float, workdir: Path) -> str:
    """What cvlc logs (-vv) playing ``url`` for ``seconds``, video and audio dropped."""
    cmd = [
        "cvlc", "-I", "dummy", "--vout", "dummy", "--aout", "dummy", "-vv",
        "--no-media-library", "--run-time", f"{seconds:g}", "--play-and-exit", url,
    ]  # fmt: skip
    user = _vlc_user()
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, "HOME": str(workdir)},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    return out.decode(errors="replace")


def vlc_problems(log: str) -> dict[str, int]:
    """How often each problem shows in a VLC log."""
    return {
        name: sum(1 for line in log.splitlines() if pattern.search(line))
        for name, pattern in VLC_PROBLEMS.items()
    }


async def vlc_runs(hass: Hass, workdir: Path) -> list[str]:
    """VLC on the HLS of a cold and of a warm broadcast: problems in its log."""
    if shutil.which("cvlc") is None:
        return ["VLC: not measured (cvlc not installed)."]
    await asyncio.to_thread(workdir.chmod, 0o777)
    lines = []
    cold, warm = secrets.token_hex(20), secrets.token_hex(20)
    monitor = Monitor(hass, _paths(warm)[0], 0)
    monitor.start()
    try:
        logs = {"cold": await vlc_log(await _sign(hass, _paths(cold)[1]), 10, workdir)}
        await monitor.warm(WARM_SECONDS)
        logs["warm"] = await vlc_log(await _sign(hass, _paths(warm)[1]), 10, workdir)
    finally:
        await monitor.stop()
        for content_id in (cold, warm):
            with contextlib.suppress(Exception):
                await _stop(hass, content_id)
    for state, log in logs.items():
        (workdir / f"vlc-{state}.log").write_text(log)
        found = vlc_problems(log)
        lines.append(
            f"VLC on {state} HLS, 10 s: "
            + ", ".join(f"{name} x{count}" for name, count in found.items())
        )
    return lines


async def hls_run(hass: Hass, video_pid: int) -> dict[str, float]:
    """HLS only: a cold first client, and the first client of a warm broadcast."""
    got: dict[str, float] = {}
    cold, warm = secrets.token_hex(20), secrets.token_hex(20)
    got["hls cold"], _ = await first_frame(await _sign(hass, _paths(cold)[1]))
    monitor = Monitor(hass, _paths(warm)[0], video_pid)
    monitor.start()
    try:
        await monitor.warm(WARM_SECONDS)
        hls_url = await _sign(hass, _paths(warm)[1])
        got["playlist warm"], got["segments warm"] = await _playlist_time(hass, hls_url)
        got["hls warm"], pts = await first_frame(hls_url)
        if monitor.newest is not None:
            got["hls delay"] = monitor.newest - pts
    finally:
        await monitor.stop()
        for content_id in (cold, warm):
            with contextlib.suppress(Exception):
                await _stop(hass, content_id)
    return got


async def segment_sweep(
    hass: Hass, video_pid: int, durations: tuple[float, ...]
) -> list[str]:
    """The option *HLS segment duration*, each value measured once."""
    lines = [
        "HLS segment duration (the option; this source has a keyframe every 2 s), "
        "one run each:",
        "",
        "| segment | target | first frame cold | first frame warm | live delay "
        "(warm) | first playlist (warm) |",
        "|---|---|---|---|---|---|",
    ]
    for duration in durations:
        print(f"zap: segment duration {duration:g} s ...", flush=True)
        await hass.api.set_options(hass.entry_id, hls_segment=duration)
        await hass.api.wait_entry_loaded(hass.entry_id)
        got = await hls_run(hass, video_pid)
        target = math.ceil(duration) + max(1, math.ceil(duration / 2))
        lines.append(
            f"| {duration:g} s | {target} s | {got['hls cold']:.2f} s "
            f"| {got['hls warm']:.2f} s | {got.get('hls delay', math.nan):.2f} s "
            f"| {got['playlist warm'] * 1000:.0f} ms, "
            f"{got['segments warm']:.0f} segments |"
        )
    return lines


def _cell(values: list[float], unit: str = "s") -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} {unit}"
    return (
        f"{statistics.median(values):.2f} {unit} "
        f"({min(values):.2f}\u2013{max(values):.2f})"
    )


def _stalls(counts: list[float], longest: list[float]) -> str:
    if not counts:
        return "-"
    return (
        f"{sum(counts):.0f} in {len(counts)} runs, longest "
        f"{max(longest, default=0):.0f} ms"
    )


async def zap_table(
    hass: Hass,
    video_pid: int,
    workdir: Path,
    runs: int = 3,
    sweep: tuple[float, ...] = (),
) -> list[str]:
    """Every run, then the table (median and range over the runs)."""
    results: list[dict[str, float]] = []
    why_not = zap_browser.missing()
    channels = None if why_not else await add_channels(hass)
    for index in range(runs):
        print(f"zap run {index + 1}/{runs} ...", flush=True)
        results.append(await one_run(hass, video_pid, channels, workdir))

    def col(key: str) -> list[float]:
        return [r[key] for r in results if key in r]

    segments = col("segments warm")
    lines = [
        f"Zap: time to first decoded frame (ffmpeg, from launch), median and "
        f"range of {runs} runs; live delay behind a viewer at the live edge. Warm "
        "HLS: ffmpeg starts right after the first playlist request, timed apart.",
        "",
        "| | cold | warm | live delay (warm) | first playlist (warm) |",
        "|---|---|---|---|---|",
        f"| MPEG-TS, ffmpeg | {_cell(col('ts cold'))} | {_cell(col('ts warm'))} "
        f"| {_cell(col('ts delay'))} | |",
        f"| HLS, ffmpeg | {_cell(col('hls cold'))} | {_cell(col('hls warm'))} "
        f"| {_cell(col('hls delay'))} | {_cell([v * 1000 for v in col('playlist warm')], 'ms')}"
        f", {min(segments, default=0):.0f}\u2013{max(segments, default=0):.0f} "
        "segments |",
    ]
    if why_not:
        lines += ["", f"Browser rows not measured: {why_not}."]
    else:
        lines[2:2] = [
            "Browsers (headless Chromium): hls.js from being given the URL to its "
            "first presented frame, live delay by EXT-X-PROGRAM-DATE-TIME; Home "
            "Assistant's frontend (signed in, media browser, this browser as the "
            "player) from the click on the channel to its player's first frame.",
            "",
        ]
        lines += [
            f"| hls.js in Chromium | {_cell(col('hlsjs cold'))} "
            f"| {_cell(col('hlsjs warm'))} | {_cell(col('hlsjs delay'))} | |",
            f"| Home Assistant's frontend | {_cell(col('frontend cold'))} "
            f"| {_cell(col('frontend warm'))} | | |",
            "",
            "Cold starts after the broadcast's first keyframe (the date of its "
            "first segment), and what the browsers did in the "
            f"{zap_browser.WATCH:g} s after their first frame: stalls (count, "
            "longest) and the live delay then.",
            "",
            "| | cold, after the first keyframe | stalls cold | stalls warm "
            "| live delay 10 s in (cold / warm) |",
            "|---|---|---|---|---|",
            f"| HLS, ffmpeg | {_cell(col('hls cold key'))} | | | |",
        ]
        for name, key in (
            ("hls.js in Chromium", "hlsjs"),
            ("Home Assistant's frontend", "frontend"),
        ):
            lines.append(
                f"| {name} | {_cell(col(f'{key} cold key'))} "
                f"| {_stalls(col(f'{key} cold stalls'), col(f'{key} cold stall ms'))} "
                f"| {_stalls(col(f'{key} warm stalls'), col(f'{key} warm stall ms'))} "
                f"| {_cell(col(f'{key} cold delay later'))} / "
                f"{_cell(col(f'{key} warm delay later'))} |"
            )
    lines += ["", *await vlc_runs(hass, workdir)]
    if sweep:
        lines += ["", *await segment_sweep(hass, video_pid, sweep)]
    return lines


async def main_async(args: argparse.Namespace) -> int:
    """Alone: the bench's source, simulator and Home Assistant, then the table."""
    sys.path.insert(0, str(ROOT))
    from tests.simulator import EngineSimulator

    integration = (args.integration or ROOT / "custom_components" / DOMAIN).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="acestream-zap-"))
    hass = Hass(workdir, integration)
    try:
        fixture = make_fixture(workdir, 10)
        pid = video_pid(fixture)
        assert pid is not None
        sim = EngineSimulator(
            fixture=fixture, cold_start=0.2, burst_seconds=0.5, idle_timeout=600
        )
        await sim.start()
        try:
            print("starting Home Assistant ...", flush=True)
            await hass.start(sim.port, 50)
            lines = await zap_table(hass, pid, workdir, args.runs, tuple(args.sweep))
        finally:
            await hass.stop()
            await sim.stop()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"Integration: {integration}")
    for line in lines:
        print(line)
    return 0


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--integration", type=Path)
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=[],
        help="also measure HLS at these segment durations (the option), e.g. 1 2 3 6",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
