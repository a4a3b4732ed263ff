"""Fan-out benchmark: the project's Broadcaster ("ours") against the seed design.

Run from the repository root: ``make bench`` (or ``.venv/bin/python script/bench.py``);
``--quick`` is a smoke run of a few seconds per row.

What it does, once per run:
- generates with ffmpeg a ~10 s MPEG-TS (H.264 1280x720 25 fps at ~8 Mbit/s with a
  keyframe every second, AAC audio) into a temporary directory and serves it with the
  project's engine simulator (tests/simulator: real HTTP, paced, looping);
- compiles script/bench_client.c (an epoll HTTP/1.1 load client) with gcc into the
  same temporary directory.

Then, for every scenario and design, it starts a fresh server process: a plain aiohttp
web server on 127.0.0.1 (no Home Assistant: this measures the data plane only) pinned
to core 0, which opens one engine session on the simulator through the project's
EngineClient and serves ``GET /stream``:
- ours: the project's Broadcaster; each viewer is a handler doing what views.py does
  (``join``, ``prepare``, ``viewer.stream(response.write)``, ``leave``);
- seed: the design of SEED_broadcaster_investigation.md reimplemented here: one reader
  task, a Queue(maxsize=100) per client, a lock held briefly to snapshot the clients,
  each chunk put into every queue under ``asyncio.gather``, the last 100 chunks pushed
  to each new client, a full queue marks the client dead.
After a warm-up the load client (pinned to core 1, with this process and the simulator)
opens N connections within ~1 s and reads for the window; the server reports its CPU
time (os.times), RSS and upstream bytes over a pipe at the start and end of the window.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import deque
import contextlib
from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
DASH = "\u2013"  # en dash: an empty cell, as in PERF_BASELINE.md
SERVER_CORE = 0
CLIENT_CORE = 1
SEED_CHUNK = 64 * 1024  # the seed's COPY_CHUNK_SIZE (httpx aiter_bytes chunk size)
SEED_QUEUE = 100
SEED_BACKLOG = 100
TS_HEADERS = {
    "Content-Type": "video/mp2t",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}


def _import_data_plane() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    """Import broadcaster, engine and ts without the package __init__ (it needs HA)."""
    name = "custom_components.acestream_proxy"
    if name not in sys.modules:
        sys.path.insert(0, str(ROOT))
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT / "custom_components" / "acestream_proxy")]
        sys.modules[name] = package
    import importlib

    return (
        importlib.import_module(f"{name}.broadcaster"),
        importlib.import_module(f"{name}.engine"),
        importlib.import_module(f"{name}.ts"),
    )


# --------------------------------------------------------------------------- server


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class OursPlane:
    """The project's Broadcaster behind an aiohttp handler shaped like views.py."""

    def __init__(self, client: Any, session: Any, ref: Any) -> None:
        """Build the broadcast on an opened engine session."""
        bc, _, _ = _import_data_plane()
        self._bc = bc
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = asyncio.Event()
        self.broadcaster = bc.Broadcaster(
            client=client,
            session=session,
            content=ref,
            # Production defaults except the viewer cap (50) and the linger.
            config=bc.BroadcastConfig(max_viewers=100_000, linger=600.0),
            spawn=self._spawn,
            listener=self._on_event,
            name="bench",
        )

    def _on_event(self, _broadcaster: Any, event: Any) -> None:
        if event is self._bc.BroadcastEvent.STARTED:
            self._started.set()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> None:
        """Start the producer; return once data flows."""
        self.broadcaster.start()
        await asyncio.wait_for(self._started.wait(), 60)

    @property
    def bytes_in(self) -> int:
        """Bytes read from the engine."""
        return int(self.broadcaster.stats.bytes_in)

    def extra(self) -> dict[str, Any]:
        """Design-specific counters."""
        stats = self.broadcaster.stats
        return {
            "viewers": self.broadcaster.viewer_count,
            "dropped": stats.viewers_dropped,
            "skipped": stats.viewers_skipped,
            "chunks": stats.chunks,
        }

    async def handle(self, request: Any) -> Any:
        """GET /stream, as views._serve does it once the viewer is opened."""
        from aiohttp import web

        viewer = self.broadcaster.join()
        response = web.StreamResponse(headers=TS_HEADERS)
        try:
            await response.prepare(request)
            reason = await viewer.stream(response.write)
            if reason is self._bc.EndReason.DROPPED and request.transport is not None:
                request.transport.abort()
                return response
            await response.write_eof()
        except ConnectionResetError:
            pass
        finally:
            viewer.leave()
        return response

    async def close(self) -> None:
        """End the broadcast and its engine session."""
        await self.broadcaster.async_close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class SeedBroadcaster:
    """The seed design (SEED_broadcaster_investigation.md), on the same engine client."""

    def __init__(self, client: Any, session: Any) -> None:
        """Prepare the broadcast; nothing is read until start()."""
        self.client = client
        self.session = session
        self.client_queues: set[asyncio.Queue[bytes | None]] = set()
        self.queues_lock = asyncio.Lock()
        self.recent_chunks: deque[bytes] = deque(maxlen=SEED_BACKLOG)
        self.first_chunk_event = asyncio.Event()
        self.stream_task: asyncio.Task[None] | None = None
        self.chunk_count = 0
        self.bytes_in = 0
        self.dead = 0

    async def start(self) -> None:
        """Start the reader task."""
        self.stream_task = asyncio.create_task(self._stream_loop())

    async def stop(self) -> None:
        """Stop reading and tell the clients."""
        if self.stream_task is not None:
            self.stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.stream_task
        async with self.queues_lock:
            for queue in self.client_queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
            self.client_queues.clear()

    async def add_client(self) -> asyncio.Queue[bytes | None]:
        """New client: snapshot the backlog, register under the lock, push backlog."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=SEED_QUEUE)
        buffer_snapshot = list(self.recent_chunks)
        async with self.queues_lock:
            self.client_queues.add(queue)
        for chunk in buffer_snapshot:
            try:
                queue.put_nowait(chunk)
            except asyncio.QueueFull:
                break
        return queue

    async def remove_client(self, queue: asyncio.Queue[bytes | None]) -> None:
        """Forget a client."""
        async with self.queues_lock:
            self.client_queues.discard(queue)

    async def _stream_loop(self) -> None:
        resp = await self.client.open_stream(
            self.session, connect_timeout=30.0, read_timeout=60.0
        )
        try:
            content = resp.content
            while True:
                # httpx aiter_bytes(chunk_size=64 KiB): fixed-size chunks.
                try:
                    chunk = await content.readexactly(SEED_CHUNK)
                except asyncio.IncompleteReadError as err:
                    chunk = err.partial
                if not chunk:
                    break
                self.chunk_count += 1
                self.bytes_in += len(chunk)
                self.recent_chunks.append(chunk)
                if self.chunk_count == 1:
                    self.first_chunk_event.set()

                async with self.queues_lock:
                    queues_snapshot = list(self.client_queues)

                async def broadcast_to_queue(
                    queue: asyncio.Queue[bytes | None], chunk: bytes = chunk
                ) -> asyncio.Queue[bytes | None] | None:
                    try:
                        queue.put_nowait(chunk)
                    except asyncio.QueueFull:
                        return queue  # client too slow: dead
                    return None

                results = await asyncio.gather(
                    *[broadcast_to_queue(q) for q in queues_snapshot]
                )
                dead_queues = [q for q in results if q is not None]
                if dead_queues:
                    async with self.queues_lock:
                        for queue in dead_queues:
                            self.dead += 1
                            self.client_queues.discard(queue)
                            with contextlib.suppress(asyncio.QueueFull):
                                queue.put_nowait(None)
        finally:
            resp.close()


class SeedPlane:
    """The seed broadcaster behind a handler that drains the client's queue."""

    def __init__(self, client: Any, session: Any) -> None:
        """Build the broadcast on an opened engine session."""
        self.seed = SeedBroadcaster(client, session)
        self.client = client
        self.session = session

    async def start(self) -> None:
        """Start the reader; return once data flows."""
        await self.seed.start()
        await asyncio.wait_for(self.seed.first_chunk_event.wait(), 30)

    @property
    def bytes_in(self) -> int:
        """Bytes read from the engine."""
        return self.seed.bytes_in

    def extra(self) -> dict[str, Any]:
        """Design-specific counters."""
        return {
            "viewers": len(self.seed.client_queues),
            "dead": self.seed.dead,
            "chunks": self.seed.chunk_count,
        }

    async def handle(self, request: Any) -> Any:
        """GET /stream: drain this client's queue into its response."""
        from aiohttp import web

        queue = await self.seed.add_client()
        response = web.StreamResponse(headers=TS_HEADERS)
        try:
            await response.prepare(request)
            while True:
                chunk = await queue.get()
                if chunk is None:
                    break
                await response.write(chunk)
        except ConnectionResetError:
            pass
        finally:
            await self.seed.remove_client(queue)
        return response

    async def close(self) -> None:
        """Stop reading and stop the engine session."""
        await self.seed.stop()
        with contextlib.suppress(Exception):
            await self.client.stop_session(self.session)


def _reply(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


async def serve(design: str, engine_port: int, content_id: str) -> None:
    """Server process: one broadcast on the simulator, GET /stream, stats on stdin."""
    import aiohttp
    from aiohttp import web

    _, engine, _ = _import_data_plane()
    loop = asyncio.get_running_loop()
    http = aiohttp.ClientSession()
    client = engine.EngineClient(http, "127.0.0.1", engine_port)
    ref = engine.ContentRef.parse(engine.ContentKind.CONTENT_ID, content_id)
    session = await client.start_session(ref)
    plane: OursPlane | SeedPlane = (
        OursPlane(client, session, ref)
        if design == "ours"
        else SeedPlane(client, session)
    )
    await plane.start()
    app = web.Application()
    app.router.add_get("/stream", plane.handle)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    _reply(
        {
            "port": port,
            "pid": os.getpid(),
            "home_assistant_loaded": "homeassistant" in sys.modules,
        }
    )
    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "stats":
                times = os.times()
                _reply(
                    {
                        "t": time.monotonic(),
                        "cpu": times.user + times.system,
                        "rss_kib": _rss_kib(),
                        "bytes_in": plane.bytes_in,
                        "extra": plane.extra(),
                    }
                )
            elif line in ("quit", ""):  # "" = EOF: the parent is gone
                break
    finally:
        await plane.close()
        await runner.cleanup()
        await http.close()


def server_main(args: argparse.Namespace) -> None:
    """Entry point of the server child process."""
    os.sched_setaffinity(0, {SERVER_CORE})
    asyncio.run(serve(args.serve, args.engine_port, args.content_id))


# --------------------------------------------------------------------------- driver


@dataclass(slots=True)
class Row:
    """One measured design x scenario."""

    design: str
    viewers: int
    paused: int
    source_kbps: float = math.nan
    cpu_cores: float = math.nan
    rates: list[float] = field(default_factory=list)
    ttfb: list[float] = field(default_factory=list)
    rai_ms: list[float] = field(default_factory=list)
    rai_bytes: list[int] = field(default_factory=list)
    pat_bytes: list[int] = field(default_factory=list)
    no_keyframe: int = 0
    paused_dropped: int = 0
    rss_kib: float = math.nan
    failed: int = 0  # active connections that got no 200 or no data
    closed_active: int = 0  # active connections the server closed
    extra: dict[str, Any] = field(default_factory=dict)
    chunks_per_s: float = math.nan  # chunks the broadcaster handed its viewers
    error: str | None = None


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def make_fixture(directory: Path, seconds: int) -> Path:
    """~8 Mbit/s H.264 + AAC MPEG-TS with a keyframe every second."""
    out = directory / "source.ts"
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
        "-map", "0:v:0", "-map", "1:a:0", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-b:v", "8M", "-maxrate", "8M", "-bufsize", "2M",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "0",
        "-flags", "+cgop",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000",
        "-f", "mpegts", "-mpegts_flags", "+resend_headers", "-pat_period", "0.1",
        "-pcr_period", "20",
        str(out),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return out


def compile_client(directory: Path) -> Path:
    """Build the C load client."""
    binary = directory / "bench_client"
    subprocess.run(
        [
            "gcc", "-O2", "-Wall", "-o", str(binary),
            str(ROOT / "script" / "bench_client.c"),
        ],
        check=True,
    )  # fmt: skip
    return binary


def describe_fixture(path: Path) -> tuple[int | None, int]:
    """Video PID and keyframe count of the generated source (project's ts module)."""
    _, _, ts = _import_data_plane()
    data = path.read_bytes()
    data = data[: len(data) - len(data) % ts.PACKET_SIZE]
    program = ts.ProgramInfo()
    program.scan(data)
    return program.video_pid, len(ts.random_access_offsets(data, program.video_pid))


class Server:
    """A server child process and its command pipe."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        """Wrap a started process."""
        self.proc = proc
        self.log = log

    @classmethod
    async def start(
        cls, design: str, engine_port: int, log: Path, limit: float = 60
    ) -> tuple[Server, dict[str, Any]]:
        """Start the server process and wait until it serves."""
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(SCRIPT),
                "--serve", design,
                "--engine-port", str(engine_port),
                "--content-id", secrets.token_hex(20),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                cwd=ROOT,
            )  # fmt: skip
        server = cls(proc, log)
        try:
            ready = await server._line(limit)
        except BaseException:
            await server.stop()
            raise
        return server, ready

    async def _line(self, limit: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), limit)
        if not raw:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server process exited:\n{tail}")
        return dict(json.loads(raw))

    async def stats(self) -> dict[str, Any]:
        """Ask the server for its counters."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        return await self._line(30)

    async def stop(self) -> None:
        """Quit cleanly; kill (this process only) if it does not go in time."""
        proc = self.proc
        if proc.returncode is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.write(b"quit\n")
            await proc.stdin.drain()
            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 20)
        except (TimeoutError, ConnectionError, AssertionError):
            pass
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _pin_client() -> None:
    os.sched_setaffinity(0, {CLIENT_CORE})


async def run_row(
    design: str,
    viewers: int,
    paused: int,
    *,
    engine_port: int,
    client_bin: Path,
    video_pid: int | None,
    window: float,
    warmup: float,
    workdir: Path,
) -> Row:
    """One fresh server, warm-up, one client run, the numbers."""
    row = Row(design, viewers, paused)
    log = workdir / f"server-{design}-{viewers}-{paused}.log"
    try:
        before, after, report = await _measure(
            design,
            viewers,
            paused,
            engine_port=engine_port,
            client_bin=client_bin,
            video_pid=video_pid,
            window=window,
            warmup=warmup,
            log=log,
        )
    except Exception as err:  # one bad row must not lose the others
        row.error = f"{type(err).__name__}: {err}"
        return row
    _fill(row, before, after, report)
    return row


async def _measure(
    design: str,
    viewers: int,
    paused: int,
    *,
    engine_port: int,
    client_bin: Path,
    video_pid: int | None,
    window: float,
    warmup: float,
    log: Path,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    server, ready = await Server.start(design, engine_port, log)
    client: asyncio.subprocess.Process | None = None
    try:
        if ready.get("home_assistant_loaded"):
            raise RuntimeError("the server imported Home Assistant")
        await asyncio.sleep(warmup)
        before = await server.stats()
        client = await asyncio.create_subprocess_exec(
            str(client_bin),
            "--port", str(ready["port"]),
            "--path", "/stream",
            "--conns", str(viewers),
            "--paused", str(paused),
            "--window", str(window),
            "--ramp", "1.0",
            "--pid", str(video_pid if video_pid is not None else -1),
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=_pin_client,
        )  # fmt: skip
        await asyncio.sleep(window - 0.05)
        after = await server.stats()
        out, _ = await asyncio.wait_for(client.communicate(), window + 30)
        if client.returncode != 0:
            raise RuntimeError(f"load client exited with {client.returncode}")
    finally:
        if client is not None and client.returncode is None:
            client.kill()
            await client.wait()
        await server.stop()
    return before, after, dict(json.loads(out))


def _fill(
    row: Row, before: dict[str, Any], after: dict[str, Any], report: dict[str, Any]
) -> None:
    viewers = row.viewers
    span = after["t"] - before["t"]
    row.source_kbps = (after["bytes_in"] - before["bytes_in"]) * 8 / span / 1000
    row.cpu_cores = (after["cpu"] - before["cpu"]) / span
    row.rss_kib = (after["rss_kib"] - before["rss_kib"]) / viewers
    row.extra = after["extra"]
    row.chunks_per_s = (after["extra"]["chunks"] - before["extra"]["chunks"]) / span
    window_ms = report["window_s"] * 1000
    for conn in report["conns"]:
        if conn["p"]:
            row.paused_dropped += conn["c"]
            continue
        if conn["st"] != 200 or conn["ttfb"] is None or conn["t"] is None:
            row.failed += 1
            continue
        row.closed_active += conn["c"]
        alive_s = (window_ms - conn["t"]) / 1000
        row.rates.append(conn["b"] * 8 / alive_s / 1000)
        row.ttfb.append(conn["ttfb"])
        if conn["rai_ms"] is None:
            row.no_keyframe += 1
        else:
            row.rai_ms.append(conn["rai_ms"])
            row.rai_bytes.append(conn["rai_b"])
            if conn["pat_b"] >= 0:
                row.pat_bytes.append(conn["pat_b"])


# --------------------------------------------------------------------------- report


def _f(value: float, digits: int = 1) -> str:
    return DASH if value is None or math.isnan(value) else f"{value:.{digits}f}"


def render(rows: list[Row]) -> list[str]:
    """The two markdown tables."""
    lines = [
        "| design | viewers | paused | source kbit/s | server CPU (cores) "
        "| CPU per viewer (ms/s) | min / median kbit/s | ttfb p50 / p99 ms "
        "| paused dropped | RSS KiB/viewer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.error:
            lines.append(
                f"| {r.design} | {r.viewers} | {r.paused} | error: {r.error} "
                "| | | | | | |"
            )
            continue
        rate = (
            f"{_f(min(r.rates), 0)} / {_f(statistics.median(r.rates), 0)}"
            if r.rates
            else DASH
        )
        if r.failed:
            rate += f" ({r.failed} failed)"
        lines.append(
            f"| {r.design} | {r.viewers} | {r.paused} | {_f(r.source_kbps, 0)} "
            f"| {_f(r.cpu_cores, 3)} | {_f(r.cpu_cores * 1000 / r.viewers, 2)} "
            f"| {rate} | {_f(pct(r.ttfb, 50))} / {_f(pct(r.ttfb, 99))} "
            f"| {f'{r.paused_dropped}/{r.paused}' if r.paused else DASH} "
            f"| {_f(r.rss_kib, 0) if r.viewers > 1 else DASH} |"
        )
    lines += [
        "",
        "Join (active viewers): when the first keyframe packet (random_access_indicator on "
        "the video PID) arrived after connect, and how many body bytes came before it "
        "(bytes a decoder cannot use) and before the first PAT.",
        "",
        "| design | viewers | paused | first keyframe p50 / p99 ms "
        "| bytes before keyframe median / max | bytes before first PAT median "
        "| server counters |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.error:
            continue
        rai_b = (
            f"{statistics.median(r.rai_bytes):,.0f} / {max(r.rai_bytes):,}"
            if r.rai_bytes
            else DASH
        )
        if r.no_keyframe:
            rai_b += f" ({r.no_keyframe} saw none)"
        pat_b = f"{statistics.median(r.pat_bytes):,.0f}" if r.pat_bytes else DASH
        counters = ", ".join(
            [f"{r.chunks_per_s:.1f} chunks/s"]
            + [f"{k} {v}" for k, v in r.extra.items() if k not in ("chunks", "viewers")]
        )
        lines.append(
            f"| {r.design} | {r.viewers} | {r.paused} "
            f"| {_f(pct(r.rai_ms, 50))} / {_f(pct(r.rai_ms, 99))} | {rai_b} | {pat_b} "
            f"| {counters or DASH} |"
        )
    return lines


def _n(viewers: int) -> str:
    return f"{viewers} viewer{'s' if viewers != 1 else ''}"


def interpret(rows: list[Row]) -> list[str]:
    """A few lines computed from the numbers."""
    out: list[str] = []
    by = {(r.design, r.viewers, r.paused): r for r in rows if not r.error}
    for key in sorted({(r.viewers, r.paused) for r in rows}):
        ours, seed = by.get(("ours", *key)), by.get(("seed", *key))
        if ours is None or seed is None:
            continue
        label = _n(key[0]) + (f" ({key[1]} paused)" if key[1] else "")
        ratio = ours.cpu_cores / seed.cpu_cores if seed.cpu_cores else math.nan
        ttfb_o, ttfb_s = pct(ours.ttfb, 50), pct(seed.ttfb, 50)
        out.append(
            f"- {label}: server CPU ours/seed = {_f(ratio, 2)} "
            f"({_f(ours.cpu_cores, 3)} vs {_f(seed.cpu_cores, 3)} cores); "
            f"ttfb p50 {_f(ttfb_o)} vs {_f(ttfb_s)} ms; first keyframe p50 "
            f"{_f(pct(ours.rai_ms, 50))} vs {_f(pct(seed.rai_ms, 50))} ms."
        )
    ours_rows = [r for r in by.values() if r.design == "ours" and r.rai_bytes]
    seed_rows = [r for r in by.values() if r.design == "seed" and r.rai_bytes]
    if ours_rows and seed_rows:
        o = statistics.median(b for r in ours_rows for b in r.rai_bytes)
        s = statistics.median(b for r in seed_rows for b in r.rai_bytes)
        out.append(
            f"- Joining: ours starts every viewer with PAT+PMT then a keyframe "
            f"(median {o:,.0f} bytes before it); seed hands each new viewer its backlog "
            f"from its oldest chunk (median {s:,.0f} bytes before the first keyframe"
            + (", data a decoder must throw away)." if s > 10 * 188 else ").")
        )
    ours_c = [r.chunks_per_s for r in by.values() if r.design == "ours"]
    seed_c = [r.chunks_per_s for r in by.values() if r.design == "seed"]
    if ours_c and seed_c:
        out.append(
            f"- Write rate: ours gathers upstream reads into ring chunks of 64 KiB or "
            f"100 ms ({statistics.median(ours_c):.1f} chunks/s, about that many writes "
            "and wake-ups per viewer per second while it keeps up); seed re-chunks to "
            f"64 KiB ({statistics.median(seed_c):.1f} chunks/s). Per-viewer cost is "
            "mostly per write (socket send, aiohttp's chunked framing, asyncio "
            "bookkeeping), so the chunk rate weighs on CPU; ours arms no timer per "
            "write (one watchdog tick per broadcast)."
        )
    for r in by.values():
        if r.design == "seed" and r.rates and r.source_kbps > 0:
            excess = statistics.median(r.rates) / r.source_kbps - 1
            if excess > 0.02:
                out.append(
                    f"- seed at {_n(r.viewers)}: median rate {excess:.0%} above the "
                    "source over the window: the 100-chunk backlog burst at join."
                )
                break
    for r in sorted(by.values(), key=lambda r: (r.viewers, r.design)):
        if r.rates and r.source_kbps > 0 and min(r.rates) < 0.95 * r.source_kbps:
            out.append(
                f"- {r.design} at {_n(r.viewers)}: the slowest viewer got "
                f"{min(r.rates) / r.source_kbps:.0%} of the source rate."
            )
        if r.failed or r.closed_active:
            out.append(
                f"- {r.design} at {_n(r.viewers)}: {r.failed} viewers got no "
                f"stream, {r.closed_active} were closed by the server."
            )
    for r in by.values():
        if r.paused:
            out.append(
                f"- {r.design}, {r.paused} paused viewers: {r.paused_dropped} closed "
                "by the server within the window"
                + (
                    f" (seed marked {r.extra.get('dead', 0)} queues dead; a dead "
                    "client's connection stays open and its handler blocked)"
                    if r.design == "seed"
                    else " (ours drops a viewer whose write blocks for write_timeout "
                    "= 10 s)"
                )
                + "."
            )
    return out


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


async def hls_figures(sim: Any, fixture_path: Path) -> list[str]:
    """Segmenting CPU at the source's rate, and time to the first HLS segment."""
    import importlib

    broadcaster_mod, engine_mod, _ = _import_data_plane()
    hls_mod = importlib.import_module("custom_components.acestream_proxy.hls")
    data = await asyncio.to_thread(fixture_path.read_bytes)
    segmenter = hls_mod.Segmenter(target_duration=3.0, window=8)
    step = 64 * 1024 // 188 * 188
    cpu_start = time.process_time()
    loops = 6
    for _ in range(loops):
        for offset in range(0, len(data), step):
            segmenter.feed(data[offset : offset + step])
    cpu = time.process_time() - cpu_start
    media_seconds = loops * sim.fixture.duration
    lines = [
        f"- Segmenting {sim.bitrate * 8 / 1e6:.1f} Mbit/s into 3 s segments: "
        f"{cpu / media_seconds * 1000:.2f} ms CPU per second of media "
        f"({cpu / media_seconds * 100:.2f} % of a core; {segmenter.next_seq} segments "
        f"cut from {media_seconds:.0f} s)."
    ]

    import aiohttp

    ref = engine_mod.ContentRef.parse(engine_mod.ContentKind.CONTENT_ID, "ab" * 20)
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Any, name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def first_segment(output: Any) -> float:
        start = time.monotonic()
        output.touch("bench")
        assert await output.wait_for_segment(30)
        return time.monotonic() - start

    async with aiohttp.ClientSession() as http:
        client = engine_mod.EngineClient(http, "127.0.0.1", sim.port)
        start = time.monotonic()
        session = await client.start_session(ref)
        broadcaster = broadcaster_mod.Broadcaster(
            client=client,
            session=session,
            content=ref,
            config=broadcaster_mod.BroadcastConfig(linger=0.5),
            spawn=spawn,
            listener=lambda *_: None,
        )
        broadcaster.start()
        output = hls_mod.HlsOutput(broadcaster, target_duration=3.0)
        cold = await first_segment(output)
        cold_total = time.monotonic() - start
        again = time.monotonic()
        output.touch("bench-2")
        ready = output.segmenter.segments and time.monotonic() - again
        await asyncio.sleep(2)
        # Warm: the broadcast already plays (a TS viewer), HLS asked for the first time.
        warm_output = hls_mod.HlsOutput(broadcaster, target_duration=3.0)
        viewer = broadcaster.join()

        async def sink(_data: Any) -> None:
            return None

        ts_task = spawn(viewer.stream(sink), "bench ts viewer")
        await asyncio.sleep(1)
        warm = await first_segment(warm_output)
        await broadcaster.async_close()
        await asyncio.gather(ts_task, return_exceptions=True)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lines.append(
        f"- First playlist ready, cold (getstream to the two startup segments, "
        f"simulator cold start {sim.cold_start:.1f} s): {cold_total * 1000:.0f} ms "
        f"(the playlist request itself waited {cold * 1000:.0f} ms)."
    )
    lines.append(
        f"- First playlist ready, warm (broadcast already playing, HLS asked the first "
        f"time): {warm * 1000:.0f} ms: the next keyframe, a one-keyframe-interval first "
        "segment, then one target duration of media."
    )
    lines.append(
        f"- Playlist when segments exist: {float(ready or 0) * 1000:.2f} ms "
        "(no wait). A real engine adds its own 10-25 s cold start to the cold figure."
    )
    return lines


async def bench(args: argparse.Namespace) -> int:
    """Driver: source, client, every row, the report."""
    from tests.simulator import EngineSimulator, load_fixture

    started = time.monotonic()
    if args.quick:
        scenarios = [(1, 0), (50, 0)]
        window, warmup = 5.0, 1.5
    else:
        scenarios = [(1, 0), (100, 0), (500, 0), (500, 50)]
        window, warmup = 15.0, 7.0
    window = args.window or window
    warmup = args.warmup if args.warmup is not None else warmup
    if os.cpu_count() is None or len(os.sched_getaffinity(0)) < 2:
        print("warning: fewer than 2 usable cores; server and client share a core")
    workdir = Path(tempfile.mkdtemp(prefix="acestream-bench-"))
    rows: list[Row] = []
    try:
        print("generating the source with ffmpeg and compiling the client ...")
        fixture_path = make_fixture(workdir, 10)
        client_bin = compile_client(workdir)
        video_pid, keyframes = describe_fixture(fixture_path)
        fixture = load_fixture(fixture_path)
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {CLIENT_CORE})
        sim = EngineSimulator(
            fixture=fixture_path, cold_start=0.2, burst_seconds=0.5, idle_timeout=120
        )
        await sim.start()
        try:
            for viewers, paused in scenarios:
                for design in ("ours", "seed"):
                    print(
                        f"  {design}: {viewers} viewers, {paused} paused ...",
                        flush=True,
                    )
                    row = await run_row(
                        design,
                        viewers,
                        paused,
                        engine_port=sim.port,
                        client_bin=client_bin,
                        video_pid=video_pid,
                        window=window,
                        warmup=warmup,
                        workdir=workdir,
                    )
                    if row.error:
                        print(f"    error: {row.error}")
                    rows.append(row)
            print("  hls: segmenting cost and startup ...", flush=True)
            hls_lines = await hls_figures(sim, fixture_path)
        finally:
            await sim.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    cpu = _cpu_model()
    import aiohttp

    print()
    print(f"# Fan-out benchmark{' (quick)' if args.quick else ''}")
    print()
    print(
        f"Machine: {os.cpu_count()} cores ({cpu}); Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}. Data plane only: a plain aiohttp web server on "
        "127.0.0.1, no Home Assistant (same handler shape as views.py), pinned to core "
        f"{SERVER_CORE}; the C epoll client (HTTP/1.1, chunked bodies) and the engine "
        f"simulator pinned to core {CLIENT_CORE}."
    )
    print(
        f"Source: ffmpeg testsrc2 1280x720 25 fps H.264 (x264 ultrafast, 8M CBR-ish, "
        f"keyframe every 1 s, {keyframes} keyframes in {fixture.duration:.1f} s) + AAC, "
        f"{fixture.bitrate * 8 / 1000:.0f} kbit/s, served in a loop by the project's "
        "engine simulator (cold start 0.2 s, burst 0.5 s), read once per server "
        "through EngineClient."
    )
    print(
        f"Each row: fresh server, {warmup:.1f} s warm-up after the first byte "
        f"(seed's 100 x 64 KiB backlog {'is' if warmup >= 7 else 'is not yet'} full), "
        f"N connections opened within 1 s, {window:.0f} s window. Rates per viewer are "
        "body bytes over its connected time (join burst included); paused viewers "
        "(part of N) read the headers and then stop (64 KiB receive buffer); CPU is the "
        "server process's user+system time over the window; ttfb is connect to first "
        "body byte."
    )
    print()
    for line in render(rows):
        print(line)
    print()
    print("Interpretation:")
    for line in interpret(rows):
        print(line)
    print()
    print("HLS (same source, in this process, no HTTP):")
    for line in hls_lines:
        print(line)
    print()
    print(f"Wall time: {time.monotonic() - started:.0f} s")
    return 1 if any(r.error for r in rows) else 0


def main() -> int:
    """Parse the arguments; run the driver or (internally) a server process."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--window", type=float, default=None, help="seconds per row")
    parser.add_argument("--warmup", type=float, default=None, help="seconds")
    parser.add_argument("--serve", choices=("ours", "seed"), help=argparse.SUPPRESS)
    parser.add_argument("--engine-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--content-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        server_main(args)
        return 0
    sys.path.insert(0, str(ROOT))
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
