"""Fan-out benchmark through Home Assistant's real HTTP stack.

Run from the repository root: ``make bench`` (about 9 minutes) or
``make bench ARGS=--quick`` (about 2 minutes, small viewer counts).

What it runs, once:
- generates with ffmpeg a 10 s MPEG-TS (H.264 1280x720 25 fps at about 8 Mbit/s, a
  keyframe every 2 s, AAC audio), served in a loop by the project's engine simulator
  (tests/simulator, real HTTP, paced at the file's own rate);
- compiles script/bench_client.c (a C epoll HTTP/1.1 client) with gcc;
- measures the loopback ceiling of this machine with iperf3 (100 TCP streams, sender
  on the server core, receiver on the client core), if iperf3 is installed or can be
  installed with apt-get;
- starts a real Home Assistant (``python -m homeassistant``, the project venv) with
  its default integrations plus onboarding, config and the integration (no recorder),
  pinned to core 0 with taskset; onboards a user, adds the integration through its
  config flow pointing at the simulator and sets its options (linger, max viewers)
  through the options flow; takes a long-lived access token and signs stream paths.

Then, for every row (N viewers joining over a stated time, or all at once):
- hass: a fresh broadcast (one warm-up viewer starts it, then linger keeps it), N
  connections from the C client (pinned to core 1 with the simulator): every other
  one with ``Authorization: Bearer <token>``, the others with a signed URL
  (``?authSig=``); after the joins the steady rate of every viewer is measured over
  the window; the broadcast is stopped with the ``acestream_proxy.stop`` action.
- ring: the floor, in the same run: a minimal aiohttp server (no Home Assistant, no
  auth, no keyframe join, no stats) with a ring of chunks and one cursor per viewer;
  one wake-up event per chunk; a viewer writes all it has not sent in one write.
- seed (a few rows): the design this project replaced (a queue per client filled
  under ``asyncio.gather``, a 100-chunk backlog pushed to every joiner).

Then HLS at scale (script/hls_load.py), on the same Home Assistant: N hls.js-like clients
(200; quick 50), then N like hls.js in low-latency mode (blocking reloads, parts), against
N MPEG-TS viewers: CPU per client, and p50/p99 of the playlist, segment and part requests.

Then the zap table (script/zap.py), on the same Home Assistant: time to first decoded
frame over MPEG-TS and HLS on cold and warm broadcasts, live delay, the first playlist's
answer time, and VLC's log on HLS; with Chromium and hls.js installed (script/e2e_setup.sh),
hls.js in headless Chromium and Home Assistant's own frontend (its media browser) too.

CPU is read from /proc for the server process (all its threads); Home Assistant's idle
CPU (measured before any broadcast) is taken out of its figures. ``--profile`` (on in
the full run) samples Home Assistant with py-spy (installed into the venv with pip if
missing) in extra runs of the 2,000-viewer row (its steady window) and of the join
storm (from the first connect).
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter, deque
import contextlib
from dataclasses import dataclass, field
import importlib
import itertools
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
DOMAIN = "acestream_proxy"
DASH = "\u2013"
SERVER_CORE = 0
CLIENT_CORE = 1
TS_HEADERS = {
    "Content-Type": "video/mp2t",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}
RING_CHUNK = 348 * 188  # 65,424 bytes: the size our broadcaster gathers reads into
RING_CHUNKS = 160  # about 10 s at 8 Mbit/s, like the default replay window
RING_WRITE_TIMEOUT = 10.0
SEED_CHUNK = 64 * 1024  # the seed's COPY_CHUNK_SIZE (httpx aiter_bytes chunk size)
SEED_QUEUE = 100
SEED_BACKLOG = 100
HASS_IDLE_SECONDS = 5.0
WARMUP = 2.5  # seconds a fresh broadcast plays before the joins (2 s GOP)
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Scenario:
    """N viewers (M of them paused) joining over ``ramp`` seconds (0: at once)."""

    viewers: int
    paused: int = 0
    ramp: float = 1.0
    seed: bool = False  # also run the seed design
    profile: bool = False  # sample Home Assistant with py-spy
    # One more reader of the broadcast beside the N: "viewer" (an HTTP client in
    # the driver) or "recording" (acestream_proxy.record into Home Assistant's media).
    extra: str = ""

    @property
    def how(self) -> str:
        """How they join, for the table."""
        text = "all at once" if self.ramp == 0 else f"over {self.ramp:g} s"
        text += f", {self.paused} paused" if self.paused else ""
        return text + (f", + 1 {self.extra}" if self.extra else "")


FULL = (
    Scenario(100, seed=True),
    Scenario(500, seed=True),
    Scenario(500, 50),
    Scenario(500, extra="viewer"),
    Scenario(500, extra="recording"),
    Scenario(1000, ramp=2.0),
    Scenario(2000, ramp=4.0, profile=True),
    Scenario(500, ramp=0.0),
    Scenario(1000, ramp=0.0, profile=True),
)
QUICK = (
    Scenario(50, seed=True),
    Scenario(50, 5),
    Scenario(50, extra="viewer"),
    Scenario(50, extra="recording"),
    Scenario(200, ramp=0.0),
)


# ----------------------------------------------------------------- server processes


def _import_data_plane() -> tuple[types.ModuleType, types.ModuleType]:
    """Import engine and ts without the package __init__ (it needs HA)."""
    name = "custom_components.acestream_proxy"
    if name not in sys.modules:
        sys.path.insert(0, str(ROOT))
        package = types.ModuleType(name)
        package.__path__ = [str(ROOT / "custom_components" / "acestream_proxy")]
        sys.modules[name] = package
    return (
        importlib.import_module(f"{name}.stream.engine"),
        importlib.import_module(f"{name}.stream.ts"),
    )


class RingPlane:
    """The floor: a ring of chunks and one cursor per viewer, nothing else."""

    def __init__(self, client: Any, session: Any) -> None:
        """Prepare on an opened engine session."""
        self.client = client
        self.session = session
        self.chunks: deque[bytes] = deque()
        self.first = 0  # index of chunks[0]
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reading; return once a chunk is there."""
        self.task = asyncio.create_task(self._read())
        while not self.chunks:
            await self.wake.wait()

    async def _read(self) -> None:
        resp = await self.client.open_stream(
            self.session, connect_timeout=30.0, read_timeout=60.0
        )
        try:
            while True:
                try:
                    chunk = await resp.content.readexactly(RING_CHUNK)
                except asyncio.IncompleteReadError as err:
                    chunk = err.partial
                if not chunk:
                    break
                self.chunks.append(chunk)
                if len(self.chunks) > RING_CHUNKS:
                    self.chunks.popleft()
                    self.first += 1
                wake, self.wake = self.wake, asyncio.Event()
                wake.set()
        finally:
            resp.close()

    async def handle(self, request: Any) -> Any:
        """GET /stream: from the newest chunk on."""
        from aiohttp import web

        response = web.StreamResponse(headers=TS_HEADERS)
        await response.prepare(request)
        cursor = self.first + len(self.chunks) - 1
        try:
            while True:
                cursor = max(cursor, self.first)
                end = self.first + len(self.chunks)
                if cursor < end:
                    pieces = list(
                        itertools.islice(self.chunks, cursor - self.first, None)
                    )
                    cursor = end
                    async with asyncio.timeout(RING_WRITE_TIMEOUT):
                        await response.write(
                            pieces[0] if len(pieces) == 1 else b"".join(pieces)
                        )
                else:
                    await self.wake.wait()
        except (ConnectionResetError, TimeoutError):
            if request.transport is not None:
                request.transport.abort()
        return response

    async def close(self) -> None:
        """Stop reading."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class SeedPlane:
    """The seed design: a queue per client, the backlog pushed to every joiner."""

    def __init__(self, client: Any, session: Any) -> None:
        """Prepare on an opened engine session."""
        self.client = client
        self.session = session
        self.client_queues: set[asyncio.Queue[bytes | None]] = set()
        self.queues_lock = asyncio.Lock()
        self.recent_chunks: deque[bytes] = deque(maxlen=SEED_BACKLOG)
        self.first_chunk_event = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the reader task."""
        self.task = asyncio.create_task(self._stream_loop())
        await asyncio.wait_for(self.first_chunk_event.wait(), 30)

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

    async def _stream_loop(self) -> None:
        resp = await self.client.open_stream(
            self.session, connect_timeout=30.0, read_timeout=60.0
        )
        try:
            while True:
                try:
                    chunk = await resp.content.readexactly(SEED_CHUNK)
                except asyncio.IncompleteReadError as err:
                    chunk = err.partial
                if not chunk:
                    break
                self.recent_chunks.append(chunk)
                self.first_chunk_event.set()
                async with self.queues_lock:
                    snapshot = list(self.client_queues)

                async def put(
                    queue: asyncio.Queue[bytes | None], chunk: bytes = chunk
                ) -> asyncio.Queue[bytes | None] | None:
                    try:
                        queue.put_nowait(chunk)
                    except asyncio.QueueFull:
                        return queue  # client too slow: dead
                    return None

                results = await asyncio.gather(*[put(q) for q in snapshot])
                dead = [q for q in results if q is not None]
                if dead:
                    async with self.queues_lock:
                        for queue in dead:
                            self.client_queues.discard(queue)
                            with contextlib.suppress(asyncio.QueueFull):
                                queue.put_nowait(None)
        finally:
            resp.close()

    async def handle(self, request: Any) -> Any:
        """GET /stream: drain this client's queue into its response."""
        from aiohttp import web

        queue = await self.add_client()
        response = web.StreamResponse(headers=TS_HEADERS)
        try:
            await response.prepare(request)
            while (chunk := await queue.get()) is not None:
                await response.write(chunk)
        except ConnectionResetError:
            pass
        finally:
            async with self.queues_lock:
                self.client_queues.discard(queue)
        return response

    async def close(self) -> None:
        """Stop reading."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def serve(design: str, engine_port: int) -> None:
    """Server process: one broadcast from the simulator on GET /stream."""
    import aiohttp
    from aiohttp import web

    engine, _ = _import_data_plane()
    loop = asyncio.get_running_loop()
    http = aiohttp.ClientSession()
    client = engine.EngineClient(http, "127.0.0.1", engine_port)
    ref = engine.ContentRef.parse(engine.ContentKind.CONTENT_ID, secrets.token_hex(20))
    session = await client.start_session(ref)
    plane = (
        RingPlane(client, session) if design == "ring" else SeedPlane(client, session)
    )
    await plane.start()
    app = web.Application()
    app.router.add_get("/stream", plane.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    # aiohttp's default listen backlog (128), as Home Assistant's server has.
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
    try:
        await reader.readline()  # "quit" or EOF
    finally:
        await plane.close()
        with contextlib.suppress(Exception):
            await client.stop_session(session)
        await runner.cleanup()
        await http.close()


def _pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


# --------------------------------------------------------------------- measurements


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid: int) -> int:
    """Resident set size of a process."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def core_times(core: int) -> tuple[float, float]:
    """(busy, total) jiffies of one core, interrupts and softirqs included."""
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                values = [float(v) for v in line.split()[1:9]]
                idle = values[3] + values[4]
                return sum(values) - idle, sum(values)
    return math.nan, math.nan


def listen_overflows() -> int:
    """Connections the kernel refused because a listen queue was full (all sockets)."""
    with open("/proc/net/netstat", encoding="ascii") as netstat:
        lines = netstat.read().splitlines()
    for names, values in itertools.pairwise(lines):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split(), values.split(), strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@dataclass(slots=True)
class Result:
    """One design measured on one scenario."""

    design: str
    scenario: Scenario
    cpu: float = math.nan  # cores over the steady window (hass: idle taken out)
    delivered_gbps: float = math.nan
    rates: list[float] = field(default_factory=list)  # steady kbit/s, active viewers
    late: int = 0  # active viewers that had no data yet at the start of the window
    ttfb: list[float] = field(default_factory=list)
    rai_ms: list[float] = field(default_factory=list)
    join_bytes: list[int] = field(default_factory=list)  # bytes before the window
    failed: int = 0
    closed_active: int = 0
    paused_dropped: int = 0
    rss_per_viewer_kib: float = math.nan
    # Home Assistant serves every row in one process: its RSS at the end of the row
    # less its RSS before the first broadcast (the ring of the broadcast included).
    rss_total_per_viewer_kib: float = math.nan
    core_busy: float = math.nan  # the server core, whatever ran on it (softirq too)
    client_busy: float = math.nan  # the client core (client, simulator, driver)
    overflows: int = 0  # listen queue overflows during the row (SYNs dropped)
    slow_joins: int = 0  # first byte after more than 1 s: a SYN was retransmitted
    extra_kbps: float = math.nan  # the extra reader's own rate over its life
    # --probe: Home Assistant's loop lag and GC pauses from the first connect until
    # the joins settled (script/bench_probe).
    probe: dict[str, Any] | None = None
    census: list[dict[str, Any]] = field(default_factory=list)  # --census
    error: str | None = None

    @property
    def cpu_per_gbps(self) -> float:
        """Cores per delivered Gbit/s."""
        return self.cpu / self.delivered_gbps if self.delivered_gbps else math.nan


@dataclass(slots=True)
class Target:
    """Where the client connects and which process to measure."""

    port: int
    pid: int
    path: str
    header: str | None = None
    alt_path: str | None = None
    idle_cpu: float = 0.0
    rss_base: int = 0  # the server's RSS before its first broadcast


def make_fixture(directory: Path, seconds: int) -> Path:
    """About 8 Mbit/s of H.264 + AAC MPEG-TS with a keyframe every 2 s."""
    out = directory / "source.ts"
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
        "-map", "0:v:0", "-map", "1:a:0", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-b:v", "8M", "-maxrate", "8M", "-bufsize", "2M",
        "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-bf", "0",
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
            "gcc",
            "-O2",
            "-Wall",
            "-o",
            str(binary),
            str(SCRIPT.parent / "bench_client.c"),
        ],
        check=True,
    )
    return binary


def video_pid(path: Path) -> int | None:
    """The video PID of the generated source (the project's ts module)."""
    _, ts = _import_data_plane()
    data = path.read_bytes()
    program = ts.ProgramInfo()
    program.scan(data[: len(data) - len(data) % ts.PACKET_SIZE])
    return program.video_pid  # type: ignore[no-any-return]


async def loopback_ceiling(seconds: float) -> tuple[float | None, str]:
    """Gbit/s over loopback with 100 TCP streams (iperf3), and how it was measured."""
    if shutil.which("iperf3") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing iperf3 with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for args in (["update", "-qq"], ["install", "-y", "-qq", "iperf3"]):
            proc = await asyncio.create_subprocess_exec(
                "apt-get", *args, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await proc.wait()
    if shutil.which("iperf3") is None:
        return None, "iperf3 is not installed (apt-get install iperf3)"
    port = 5201 + secrets.randbelow(1000)
    server = await asyncio.create_subprocess_exec(
        "taskset", "-c", str(CLIENT_CORE), "iperf3", "-s", "-1", "-p", str(port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.5)
        client = await asyncio.create_subprocess_exec(
            "taskset", "-c", str(SERVER_CORE), "iperf3", "-c", "127.0.0.1",
            "-p", str(port), "-P", "100", "-t", str(int(seconds)), "-J",
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await client.communicate()
        report = json.loads(out)
        gbps = report["end"]["sum_received"]["bits_per_second"] / 1e9
    except (KeyError, ValueError) as err:
        return None, f"iperf3 failed: {err!r}"
    finally:
        if server.returncode is None:
            server.kill()
        await server.wait()
    return gbps, (
        f"iperf3, 100 TCP streams for {int(seconds)} s, sender on core {SERVER_CORE}, "
        f"receiver on core {CLIENT_CORE}"
    )


# ------------------------------------------------------------------- Home Assistant


def _harness() -> types.ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    return importlib.import_module("harness")


class Hass:
    """A real Home Assistant process with the integration set up."""

    def __init__(
        self, workdir: Path, integration: Path, *, probe: bool = False
    ) -> None:
        """Prepare a configuration folder using ``integration`` (and, with
        ``probe``, script/bench_probe measuring the loop inside the process)."""
        self.workdir = workdir
        self.integration = integration
        self.probe = probe
        self.census = False
        self.process: Any = None
        self.api: Any = None
        self.http: Any = None
        self.url = ""
        self.port = 0
        self.token = ""
        self.entry_id = ""
        self.idle = math.nan  # cores with nothing playing
        self.rss_base = 0

    @property
    def pid(self) -> int:
        """Home Assistant's process id (taskset execs it)."""
        return int(self.process.child.pid)

    async def start(self, engine_port: int, max_viewers: int) -> None:
        """Start, onboard, add the entry, set its options, take a token."""
        harness = _harness()
        harness.INTEGRATION = self.integration
        self.process = harness.HassProcess(
            self.workdir / "hass",
            name="AceStream Proxy bench",
            port=harness.pick_port(0, {engine_port}),
            components=("onboarding", "config", "frontend")
            + (("bench_probe",) if self.probe else ()),
            logs={f"custom_components.{DOMAIN}": "warning"},
            prefix=("taskset", "-c", str(SERVER_CORE)),
            custom={"bench_probe": SCRIPT.parent / "bench_probe"} if self.probe else {},
        )
        await self.process.start()
        self.api = api = self.process.api
        self.http = api.session
        self.url, self.port = self.process.url, self.process.port
        self.entry_id, _ = await api.add_entry("127.0.0.1", engine_port)
        await api.wait_entry_loaded(self.entry_id)
        await api.set_options(self.entry_id, linger=3600, max_viewers=max_viewers)
        self.token = await api.long_lived_token("bench")

    async def probe_window(self, start: float, end: float) -> dict[str, Any]:
        """Loop lag and GC pauses between two monotonic times (--probe)."""
        answer: dict[str, Any] = await self.api.request(
            "GET", f"/api/bench_probe?start={start:.6f}&end={end:.6f}"
        )
        return answer

    async def take_census(self) -> dict[str, Any]:
        """Objects the collector tracks, and what grew since the last census."""
        answer: dict[str, Any] = await self.api.request(
            "GET", "/api/bench_probe/census"
        )
        return answer

    async def idle_cpu(self, seconds: float) -> float:
        """Cores Home Assistant uses with nothing playing."""
        start, t0 = proc_cpu(self.pid), time.monotonic()
        await asyncio.sleep(seconds)
        return (proc_cpu(self.pid) - start) / (time.monotonic() - t0)

    async def open_broadcast(self, warmup: float) -> Target:
        """Start a fresh broadcast with one short viewer; return where to connect."""
        import aiohttp

        content_id = secrets.token_hex(20)
        path = f"/api/{DOMAIN}/stream/{content_id}"
        (signed,) = await self.api.websocket(
            {"type": "auth/sign_path", "path": path, "expires": 3600}
        )
        header = f"Authorization: Bearer {self.token}"
        async with self.http.get(
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=60),
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"warm-up viewer: HTTP {resp.status}")
            got = 0
            async for chunk in resp.content.iter_any():
                got += len(chunk)
                if got > 200_000:
                    break
        await asyncio.sleep(warmup)  # a keyframe (2 s GOP) is in the replay window
        return Target(
            self.port,
            self.pid,
            path,
            header,
            str(signed["path"]),
            rss_base=self.rss_base,
        )

    async def extra_viewer(self, target: Target, got: list[int]) -> None:
        """One more viewer, reading (and counting) until cancelled."""
        import aiohttp

        async with self.http.get(
            f"{self.url}{target.path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=None),
        ) as resp:
            async for chunk in resp.content.iter_any():
                got[0] += len(chunk)

    async def record(self, target: Target) -> str:
        """Start recording the row's broadcast; its recording id."""
        answer = await self.api.request(
            "POST",
            f"/api/services/{DOMAIN}/record?return_response",
            json={"content_id": target.path.rsplit("/", 1)[1], "name": "bench"},
        )
        return str(answer["service_response"]["recording_id"])

    async def stop_recording(self, recording_id: str) -> float:
        """Stop it; the rate it recorded at, kbit/s."""
        answer = await self.api.request(
            "POST",
            f"/api/services/{DOMAIN}/stop_recording?return_response",
            json={"recording_id": recording_id},
        )
        [done] = answer["service_response"]["stopped"]
        return float(done["bytes"]) * 8 / 1000 / max(float(done["duration"]), 0.1)

    async def stop_broadcast(self, target: Target) -> None:
        """End the row's broadcast (the stop action)."""
        await self.api.request(
            "POST",
            f"/api/services/{DOMAIN}/stop",
            json={"content_id": target.path.rsplit("/", 1)[1]},
        )

    async def stop(self) -> None:
        """Stop Home Assistant."""
        if self.process is not None:
            await self.process.stop()


class ExtraReader:
    """One more reader of a row's broadcast: a viewer, or a recording."""

    def __init__(self, hass: Hass, target: Target, kind: str) -> None:
        """Read ``target`` as ``kind`` ("viewer" or "recording")."""
        self.hass, self.target, self.kind = hass, target, kind
        self.got = [0]
        self.task: asyncio.Task[None] | None = None
        self.recording = ""
        self.started = time.monotonic()

    async def start(self) -> None:
        """Join the broadcast."""
        self.started = time.monotonic()
        if self.kind == "recording":
            self.recording = await self.hass.record(self.target)
        else:
            self.task = asyncio.create_task(
                self.hass.extra_viewer(self.target, self.got)
            )

    async def stop(self) -> float:
        """Leave; the rate it read at over its life, kbit/s."""
        if self.recording:
            return await self.hass.stop_recording(self.recording)
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        return self.got[0] * 8 / 1000 / (time.monotonic() - self.started)


class RefServer:
    """A ring or seed server child process on the server core."""

    def __init__(self, design: str, engine_port: int, log: Path) -> None:
        """Remember how to start it."""
        self.design = design
        self.engine_port = engine_port
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Target:
        """Start and wait until it serves."""
        with self.log.open("wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(SCRIPT), "--serve", self.design,
                "--engine-port", str(self.engine_port),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, cwd=ROOT, preexec_fn=lambda: _pin(SERVER_CORE),
            )  # fmt: skip
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not raw:
            raise RuntimeError(f"{self.design} server exited: {self.log.read_text()}")
        ready = json.loads(raw)
        return Target(int(ready["port"]), int(ready["pid"]), "/stream")

    async def stop(self) -> None:
        """Quit; kill this process if it does not go in time."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def run_client(
    client_bin: Path,
    target: Target,
    scenario: Scenario,
    *,
    settle: float,
    window: float,
    pid_video: int | None,
    on_mark: Any = None,
    on_start: Any = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run the load; sample the server's CPU at the window's start and end."""
    mark = scenario.ramp + settle
    total = mark + window
    args = [
        str(client_bin), "--port", str(target.port), "--path", target.path,
        "--conns", str(scenario.viewers), "--paused", str(scenario.paused),
        "--window", f"{total:.3f}", "--ramp", f"{scenario.ramp:.3f}",
        "--mark", f"{mark:.3f}", "--pid", str(pid_video if pid_video else -1),
    ]  # fmt: skip
    if target.header:
        args += ["--header", target.header]
    if target.alt_path:
        args += ["--alt-path", target.alt_path]
    rss0 = proc_rss_kib(target.pid)
    rss_base = target.rss_base or rss0
    overflows = listen_overflows()
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, preexec_fn=lambda: _pin(CLIENT_CORE)
    )
    started = time.monotonic()
    try:
        if on_start is not None:
            await on_start()
        await asyncio.sleep(max(0.0, started + mark - time.monotonic()))
        cpu0, t0 = proc_cpu(target.pid), time.monotonic()
        core0 = core_times(SERVER_CORE)
        client0 = core_times(CLIENT_CORE)
        if on_mark is not None:
            await on_mark()
        await asyncio.sleep(max(0.0, started + total - 0.05 - time.monotonic()))
        cpu1, t1 = proc_cpu(target.pid), time.monotonic()
        core1 = core_times(SERVER_CORE)
        client1 = core_times(CLIENT_CORE)
        rss1 = proc_rss_kib(target.pid)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load client exited with {proc.returncode}")
    return json.loads(out), {
        "cpu": (cpu1 - cpu0) / (t1 - t0),
        "rss_kib": float(rss1 - rss0),
        "rss_total_kib": float(rss1 - rss_base),
        "core_busy": (core1[0] - core0[0]) / (core1[1] - core0[1]),
        "client_busy": (client1[0] - client0[0]) / (client1[1] - client0[1]),
        "overflows": float(listen_overflows() - overflows),
    }


def fill(
    result: Result, report: dict[str, Any], server: dict[str, float], idle: float
) -> None:
    """Per-viewer figures from the client's report."""
    scenario = result.scenario
    mark_s = report["mark_s"]
    steady_s = report["window_s"] - mark_s
    result.cpu = server["cpu"] - idle
    result.rss_per_viewer_kib = server["rss_kib"] / scenario.viewers
    result.rss_total_per_viewer_kib = server.get("rss_total_kib", math.nan) / (
        scenario.viewers
    )
    result.core_busy = server["core_busy"]
    result.client_busy = server["client_busy"]
    result.overflows = int(server["overflows"])
    delivered = 0
    for conn in report["conns"]:
        if conn["p"]:
            result.paused_dropped += conn["c"]
            continue
        if conn["st"] != 200 or conn["ttfb"] is None:
            result.failed += 1
            continue
        result.closed_active += conn["c"]
        result.ttfb.append(conn["ttfb"])
        result.slow_joins += conn["ttfb"] > 1000
        if conn["rai_ms"] is not None:
            result.rai_ms.append(conn["rai_ms"])
        result.join_bytes.append(conn["m"])
        delivered += conn["b"] - conn["m"]
        if conn["t"] + conn["ttfb"] > mark_s * 1000:
            result.late += 1
            continue
        span_ms = (conn["te"] or 0) - (conn["tm"] or 0)
        if conn["tm"] is None or span_ms < 500 * steady_s:
            result.late += 1  # too little data in the window to tell a rate
            continue
        result.rates.append((conn["b"] - conn["m"]) * 8 / span_ms)
    result.delivered_gbps = delivered * 8 / steady_s / 1e9


def hls_cost(fixture_path: Path, media_seconds: float) -> str:
    """CPU of cutting the source into HLS segments (in this process, no HTTP)."""
    _import_data_plane()
    hls = importlib.import_module(f"custom_components.{DOMAIN}.stream.hls")
    data = fixture_path.read_bytes()
    data = data[: len(data) // 188 * 188]
    segmenter = hls.Segmenter(target_duration=3.0, window=8)
    step = 348 * 188 * 4
    loops = 6
    cpu = time.process_time()
    for _ in range(loops):
        for offset in range(0, len(data), step):
            segmenter.feed(data[offset : offset + step])
    cpu = time.process_time() - cpu
    return (
        f"Cutting HLS segments (3 s) from this source costs "
        f"{cpu / (loops * media_seconds) * 1000:.2f} ms of CPU per second of media."
    )


# ---------------------------------------------------------------------- profiling


def ensure_py_spy(given: Path | None = None) -> Path | None:
    """py-spy: ``given``, or the venv's, installed with pip when missing."""
    if given is not None:
        return given if given.exists() else None
    binary = Path(sys.executable).parent / "py-spy"
    if not binary.exists():
        print("installing py-spy into the venv with pip ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "py-spy"],
            check=False,
            capture_output=True,
        )
    return binary if binary.exists() else None


SEND_FUNCS = ("write", "writelines", "_write_ready", "_write_send", "_sock_send")


def layer_of(frame: str) -> str:
    """The layer a leaf frame (``func (file:line)``) belongs to."""
    func, _, where = frame.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    name = Path(path).name
    method = func.rsplit(".", 1)[-1]
    if name == "selector_events.py" and method in SEND_FUNCS:
        return "socket send (syscall + kernel copy, loopback TCP)"
    if name == "selector_events.py" and ("read" in method or "recv" in method):
        return "socket receive and accept"
    if name in ("selectors.py", "base_events.py", "events.py"):
        return "event loop (epoll, callbacks, timers)"
    layers = (
        ("asyncio/", "asyncio tasks, futures, events, streams"),
        ("aiohttp/", "aiohttp (HTTP parser, response writer)"),
        ("multidict", "aiohttp (HTTP parser, response writer)"),
        ("yarl/", "aiohttp (HTTP parser, response writer)"),
        ("homeassistant/", "Home Assistant (http middlewares, auth, bus)"),
        ("acestream_proxy/", "integration (views, broadcaster, ring)"),
        ("jwt/", "JWT (bearer token and signed URL checks)"),
    )
    for needle, layer in layers:
        if needle in path:
            return layer
    return "other (stdlib, ...)"


def summarize_profile(raw: Path, top: int = 10) -> list[str]:
    """Top leaf functions and the share of each layer, from py-spy's raw output."""
    leaves: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        func, _, where = leaf.rpartition(" (")
        path = where.rsplit(":", 1)[0]
        name = f"{func} ({'/'.join(Path(path).parts[-2:])})"
        leaves[name] += int(count)
        layers[layer_of(leaf)] += int(count)
        total += int(count)
    if not total:
        return ["(no samples)"]
    lines = [f"{total} samples (all threads, idle excluded). By layer (self time):"]
    lines += [f"  {share / total:6.1%}  {name}" for name, share in layers.most_common()]
    lines.append("Top functions (self time):")
    lines += [
        f"  {share / total:6.1%}  {name}" for name, share in leaves.most_common(top)
    ]
    return lines


class Profiler:
    """py-spy record on a process for a while, pinned to the client core."""

    def __init__(self, binary: Path, pid: int, out: Path, seconds: float) -> None:
        """Remember what to sample."""
        self.args = [
            str(binary), "record", "-p", str(pid), "-d", str(max(1, round(seconds))),
            "-r", "200", "--nonblocking", "-f", "raw", "-o", str(out),
        ]  # fmt: skip
        self.out = out
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start sampling (returns at once)."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _pin(CLIENT_CORE),
        )

    async def wait(self) -> list[str]:
        """Wait for it; summarize."""
        if self.proc is None:
            return ["(not started)"]
        await self.proc.wait()
        if not self.out.exists():
            return ["(py-spy wrote nothing)"]
        return summarize_profile(self.out)


# -------------------------------------------------------------------------- report


def _f(value: float, digits: int = 1) -> str:
    return DASH if value is None or math.isnan(value) else f"{value:.{digits}f}"


def render(
    results: list[Result], source_kbps: float, ceiling: float | None
) -> list[str]:
    """The tables."""
    by = {(r.design, r.scenario): r for r in results}
    scenarios = list(dict.fromkeys(r.scenario for r in results))

    def steady(r: Result | None) -> str:
        if r is None or r.error:
            return "error" if r else DASH
        if not r.rates:
            return DASH
        text = (
            f"{min(r.rates) / source_kbps:.1%} "
            f"({statistics.median(r.rates) / source_kbps:.1%})"
        )
        extra = []
        if below := sum(1 for rate in r.rates if rate < 0.98 * source_kbps):
            extra.append(f"{below} below 98%")
        if r.failed:
            extra.append(f"{r.failed} failed")
        if r.late:
            extra.append(f"{r.late} late")
        if r.closed_active:
            extra.append(f"{r.closed_active} closed")
        return text + (f" ({', '.join(extra)})" if extra else "")

    def num(r: Result | None, attr: str, digits: int = 3) -> str:
        if r is None or r.error:
            return DASH
        return _f(getattr(r, attr), digits)

    def rss(r: Result | None) -> str:
        if r is None or r.error:
            return DASH
        return (
            f"{max(r.rss_per_viewer_kib, 0):.0f}\u2013{r.rss_total_per_viewer_kib:.0f}"
        )

    def busy(r: Result | None) -> str:
        if r is None or r.error:
            return DASH
        return f"{r.core_busy:.0%} ({r.client_busy:.0%})"

    def join(r: Result | None) -> str:
        if r is None or r.error or not r.ttfb:
            return DASH
        return f"{_f(pct(r.ttfb, 50), 0)}/{_f(pct(r.ttfb, 99), 0)}"

    lines = [
        "| viewers | how they join | steady min (median), % of source: hass | ring "
        "| CPU cores: hass (net of idle) | ring | hass / ring "
        "| CPU per delivered Gbit/s: hass | ring | join ms p50/p99: hass | ring "
        "| RSS KiB per viewer: hass | ring "
        "| server core busy (client core): hass | ring "
        "| delivered Gbit/s: hass (% of ceiling) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sc in scenarios:
        hass, ring = by.get(("hass", sc)), by.get(("ring", sc))
        ratio = (
            hass.cpu / ring.cpu
            if hass and ring and not hass.error and not ring.error and ring.cpu
            else math.nan
        )
        delivered = (
            f"{hass.delivered_gbps:.2f}"
            + (f" ({hass.delivered_gbps / ceiling:.0%})" if ceiling else "")
            if hass and not hass.error
            else DASH
        )
        lines.append(
            f"| {sc.viewers} | {sc.how} | {steady(hass)} | {steady(ring)} "
            f"| {num(hass, 'cpu')} | {num(ring, 'cpu')} | {_f(ratio, 2)} "
            f"| {num(hass, 'cpu_per_gbps')} | {num(ring, 'cpu_per_gbps')} "
            f"| {join(hass)} | {join(ring)} "
            f"| {rss(hass)} "
            f"| {num(ring, 'rss_per_viewer_kib', 0)} | {busy(hass)} | {busy(ring)} "
            f"| {delivered} |"
        )
    storms = [r for r in results if r.scenario.ramp == 0 and not r.error]
    if storms:
        lines += [
            "",
            "Joins all at once against the listen backlog (Home Assistant's server and "
            "the ring both listen with aiohttp's default backlog of 128; the kernel "
            "drops the SYNs beyond it and the client retransmits them after 1 s, then "
            "3 s):",
            "",
        ]
        for r in storms:
            lines.append(
                f"- {r.design}, {r.scenario.viewers} at once: {r.overflows} listen "
                f"queue overflows, {r.slow_joins} viewers got their first byte after "
                f"more than 1 s; join p50/p90/p99/max "
                f"{_f(pct(r.ttfb, 50), 0)}/{_f(pct(r.ttfb, 90), 0)}/"
                f"{_f(pct(r.ttfb, 99), 0)}/{_f(max(r.ttfb, default=math.nan), 0)} ms."
            )
    paused = [r for r in results if r.scenario.paused and not r.error]
    if paused:
        lines.append("")
        for r in paused:
            lines.append(
                f"- {r.design}, {r.scenario.viewers} viewers with {r.scenario.paused} "
                f"paused: {r.paused_dropped} paused viewers closed by the server "
                "within the run; the others' steady minimum is in the table."
            )
    seeds = [r for r in results if r.design == "seed"]
    if seeds:
        lines += [
            "",
            "Against the seed design (same rows, same run; CPU normalised by the bytes "
            "each design delivered in the steady window). The seed pushes its whole "
            f"backlog ({SEED_BACKLOG} x 64 KiB = 6.6 MB, non keyframe-aligned) to every "
            "joiner at once, Home Assistant sends from the newest keyframe (up to one "
            "GOP); both bursts fall before the window, so the CPU compares steady "
            "delivery only; the last column shows what each joiner got before it:",
            "",
            "| viewers | how they join | CPU per delivered Gbit/s: seed / ring / hass "
            "| steady min rate: seed | join ms p50 / p99: seed "
            "| MB per viewer before the window: seed / hass |",
            "|---|---|---|---|---|---|",
        ]
        for seed in seeds:
            sc = seed.scenario
            hass, ring = by.get(("hass", sc)), by.get(("ring", sc))

            def mb(r: Result | None) -> str:
                if r is None or r.error or not r.join_bytes:
                    return DASH
                return f"{statistics.median(r.join_bytes) / 1e6:.1f}"

            lines.append(
                f"| {sc.viewers} | {sc.how} "
                f"| {num(seed, 'cpu_per_gbps')} / {num(ring, 'cpu_per_gbps')} / "
                f"{num(hass, 'cpu_per_gbps')} | {steady(seed)} | {join(seed)} "
                f"| {mb(seed)} / {mb(hass)} |"
            )
    errors = [r for r in results if r.error]
    for r in errors:
        lines.append(f"- {r.design} {r.scenario.viewers} {r.scenario.how}: {r.error}")
    return lines


def extra_readers(results: list[Result], source_kbps: float) -> list[str]:
    """The rows with one more reader, side by side: a recording against a viewer."""
    rows = {
        (r.scenario.viewers, r.scenario.extra): r
        for r in results
        if r.design == "hass" and r.scenario.extra and not r.error
    }
    lines = []
    for viewers in sorted({v for v, _ in rows}):
        viewer, recording = (
            rows.get((viewers, "viewer")),
            rows.get((viewers, "recording")),
        )
        if viewer is None or recording is None:
            continue
        lines += [
            "",
            f"| {viewers} viewers + 1 viewer | {viewers} viewers + 1 recording |",
            "|---|---|",
            f"| CPU {_f(viewer.cpu, 3)} cores | CPU {_f(recording.cpu, 3)} cores |",
            f"| viewers' slowest {min(viewer.rates, default=0) / source_kbps:.1%} "
            f"| viewers' slowest {min(recording.rates, default=0) / source_kbps:.1%} |",
            f"| the extra viewer got {viewer.extra_kbps / source_kbps:.1%} of the "
            f"source rate | the recording wrote {recording.extra_kbps / source_kbps:.1%}"
            " of it |",
        ]
    return lines


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


# -------------------------------------------------------------------------- driver


async def _census(hass: Hass, into: list[dict[str, Any]]) -> Any:
    """Take a census now; the hook that takes the next one (at the mark)."""
    into.append(await hass.take_census())

    async def take() -> None:
        into.append(await hass.take_census())

    return take


def _profiler(
    py_spy: Path,
    pid: int,
    workdir: Path,
    scenario: Scenario,
    settle: float,
    window: float,
    joins: bool,
) -> tuple[str, Profiler, str]:
    """What a profiled row samples: its label, the profiler, and when it starts
    ("start": the first connect; "mark": the steady window)."""
    label = f"{scenario.viewers} viewers {scenario.how}"
    out = workdir / f"profile-{scenario.viewers}-{scenario.ramp}.txt"
    if joins and scenario.ramp > 0:
        # The joins: from the first connect until a second after the last.
        return "joins: " + label, Profiler(py_spy, pid, out, scenario.ramp + 1), "start"
    if scenario.ramp == 0:
        # The join storm: from the first connect until the joins are done.
        return "join storm: " + label, Profiler(py_spy, pid, out, settle), "start"
    return "steady state: " + label, Profiler(py_spy, pid, out, window - 1), "mark"


async def measure(
    design: str,
    scenario: Scenario,
    *,
    hass: Hass,
    engine_port: int,
    client_bin: Path,
    pid_video: int | None,
    workdir: Path,
    settle: float,
    window: float,
    warmup: float,
    py_spy: Path | None,
    profiles: dict[str, list[str]],
    profile_joins: bool = False,
) -> Result:
    """One design on one scenario."""
    result = Result(design, scenario)
    ref: RefServer | None = None
    target: Target | None = None
    extra: ExtraReader | None = None
    try:
        if design == "hass":
            target = await hass.open_broadcast(warmup)
            target.idle_cpu = 0.0 if math.isnan(hass.idle) else hass.idle
            if scenario.extra:
                extra = ExtraReader(hass, target, scenario.extra)
                await extra.start()
        else:
            ref = RefServer(design, engine_port, workdir / f"{design}.log")
            target = await ref.start()
            await asyncio.sleep(warmup)
        on_mark = on_start = None
        profiler: Profiler | None = None
        if py_spy and design == "hass" and scenario.profile:
            label, profiler, when = _profiler(
                py_spy, target.pid, workdir, scenario, settle, window, profile_joins
            )
            on_start, on_mark = (
                (profiler.start, None) if when == "start" else (None, profiler.start)
            )
        if design == "hass" and hass.census and on_mark is None:
            on_mark = await _census(hass, result.census)
        started = time.monotonic()
        report, server = await run_client(
            client_bin,
            target,
            scenario,
            settle=settle,
            window=window,
            pid_video=pid_video,
            on_mark=on_mark,
            on_start=on_start,
        )
        if design == "hass" and hass.probe:
            result.probe = await hass.probe_window(
                started, started + scenario.ramp + settle
            )
        if profiler is not None:
            profiles[label] = await profiler.wait()
        fill(result, report, server, target.idle_cpu)
    except Exception as err:  # one bad row must not lose the others
        result.error = f"{type(err).__name__}: {err}"
    finally:
        if extra is not None:
            with contextlib.suppress(Exception):
                result.extra_kbps = await extra.stop()
        if ref is not None:
            await ref.stop()
        if design == "hass" and target is not None:
            with contextlib.suppress(Exception):
                await hass.stop_broadcast(target)
            await asyncio.sleep(1.0)
    return result


async def run_rows(
    scenarios: tuple[Scenario, ...],
    designs: list[str],
    **kwargs: Any,
) -> list[Result]:
    """Every scenario, each design in turn."""
    results = []
    py_spy = kwargs.pop("py_spy")
    for scenario in scenarios:
        for design in designs:
            if design == "seed" and not scenario.seed:
                continue
            print(f"  {design}: {scenario.viewers} {scenario.how} ...", flush=True)
            result = await measure(
                design, scenario, warmup=WARMUP, py_spy=None, **kwargs
            )
            if result.error:
                print(f"    error: {result.error}")
            results.append(result)
    if py_spy is None or "hass" not in designs:
        return results
    # Profiles in runs of their own: py-spy shares the client's core, so the
    # table's rows are measured without it.
    for scenario in scenarios:
        if scenario.profile:
            print(
                f"  hass, profiled: {scenario.viewers} {scenario.how} ...", flush=True
            )
            await measure("hass", scenario, warmup=WARMUP, py_spy=py_spy, **kwargs)
    return results


async def run_repeats(repeat: int, *args: Any, **kwargs: Any) -> list[Result]:
    """The rows ``repeat`` times in a row (profiles in the last run only)."""
    results: list[Result] = []
    py_spy = kwargs.pop("py_spy")
    for index in range(repeat):
        if repeat > 1:
            print(f"run {index + 1}/{repeat} ...", flush=True)
        last = index == repeat - 1
        results += await run_rows(*args, py_spy=py_spy if last else None, **kwargs)
    return results


def runs_in_a_row(results: list[Result], source_kbps: float) -> list[str]:
    """Each run of each row (with --repeat): Home Assistant against the ring."""
    rows: dict[Scenario, list[tuple[Result, Result | None]]] = {}
    for index, r in enumerate(results):
        if r.design != "hass":
            continue
        ring = next(
            (
                x
                for x in results[index + 1 :]
                if x.design == "ring" and x.scenario == r.scenario
            ),
            None,
        )
        rows.setdefault(r.scenario, []).append((r, ring))
    lines: list[str] = []
    for scenario, runs in rows.items():
        if len(runs) < 2 and not runs[0][0].probe:
            continue
        lines += [
            "",
            f"{scenario.viewers} viewers {scenario.how}, {len(runs)} runs in a row "
            "(join: connect to first byte; overflows: listen queue overflows "
            "during the row):",
            "",
            "| run | join ms p50 / p99: hass | ring | p99 hass / ring "
            "| slowest viewer: hass | ring | joins after 1 s: hass | ring "
            "| overflows: hass | ring |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        probed = [(n, h.probe) for n, (h, _) in enumerate(runs, 1) if h.probe]
        for number, (hass, ring) in enumerate(runs, 1):

            def join(r: Result | None) -> str:
                if r is None or r.error or not r.ttfb:
                    return DASH
                return f"{pct(r.ttfb, 50):.0f} / {pct(r.ttfb, 99):.0f}"

            def slowest(r: Result | None) -> str:
                if r is None or r.error or not r.rates:
                    return DASH
                return f"{min(r.rates) / source_kbps:.1%}"

            ratio = (
                pct(hass.ttfb, 99) / pct(ring.ttfb, 99)
                if ring and ring.ttfb and hass.ttfb
                else math.nan
            )
            lines.append(
                f"| {number} | {join(hass)} | {join(ring)} | {_f(ratio, 2)} "
                f"| {slowest(hass)} | {slowest(ring)} | {hass.slow_joins} "
                f"| {ring.slow_joins if ring else DASH} | {hass.overflows} "
                f"| {ring.overflows if ring else DASH} |"
            )
        if probed:
            lines += ["", *probe_table(probed)]
        for number, (hass, _) in enumerate(runs, 1):
            if len(hass.census) == 2:
                before, after = hass.census
                lines += [
                    "",
                    f"Run {number}: objects Home Assistant's collector tracks: "
                    f"{before['tracked']:,} before the joins, {after['tracked']:,} "
                    f"with the viewers ({after['grew'] / scenario.viewers:.0f} per "
                    "viewer); the types that grew most:",
                    "",
                    *(f"  {count:+,}  {name}" for name, count in after["top"]),
                ]
    return lines


def probe_table(probed: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Home Assistant's loop during each run's joins (--probe)."""
    lines = [
        "Home Assistant's event loop from the first connect until the joins "
        "settled (script/bench_probe: a task asking to wake every 5 ms, how late "
        "it woke; gc.callbacks around every collection):",
        "",
        "| run | loop lag ms p50 / p99 / max | wakes > 50 ms late | GC: collections "
        "by generation, total ms (longest) | GC share of the window "
        "| worst stalls: ms at s (of it GC ms) |",
        "|---|---|---|---|---|---|",
    ]
    for number, probe in probed:
        lag = probe["lag_ms"]
        gcs = ", ".join(
            f"gen {gen}: {row['count']:.0f}, {row['total_ms']:.0f} ms "
            f"({row['max_ms']:.0f})"
            for gen, row in sorted(probe["gc"].items())
        )
        worst = ", ".join(
            f"{w['ms']:.0f} at {w['at']:.1f} ({w['gc_ms']:.0f})"
            for w in probe["worst"][:4]
        )
        lines.append(
            f"| {number} | {lag['p50']:.1f} / {lag['p99']:.0f} / {lag['max']:.0f} "
            f"| {probe['lag_over_50ms']} | {gcs or 'none'} "
            f"| {probe['gc_share']:.1%} | {worst} |"
        )
    return lines


async def hls_at_scale(clients: int, *, source_kbps: float, **kwargs: Any) -> list[str]:
    """N hls.js-like clients, plain then low-latency, against N TS viewers
    (script/hls_load.py), one run."""
    hls_load = importlib.import_module("hls_load")
    ramp, hls_window = 2.0, max(kwargs["window"], 12.0)
    print(f"  hass: {clients} MPEG-TS viewers over {ramp:g} s ...", flush=True)
    ts = await measure(
        "hass",
        Scenario(clients, ramp=ramp),
        warmup=WARMUP,
        py_spy=None,
        profiles={},
        **kwargs,
    )
    loads = []
    for ll in (False, True):
        name = "LL-HLS" if ll else "HLS"
        print(f"  hass: {clients} {name} clients over {ramp:g} s ...", flush=True)
        loads.append(
            await hls_load.run_hls_load(
                sys.modules[__name__],
                kwargs["hass"],
                clients,
                ramp=ramp,
                settle=kwargs["settle"],
                window=hls_window,
                warmup=WARMUP,
                ll=ll,
            )
        )
    return [
        "",
        *hls_load.render(sys.modules[__name__], ts, loads, source_kbps, hls_window),
    ]


async def after_rows(hls_clients: int, zap_runs: int, **kwargs: Any) -> list[str]:
    """On the rows' Home Assistant: HLS at scale, then the zap table."""
    lines = await hls_at_scale(hls_clients, **kwargs) if hls_clients else []
    if zap_runs:
        zap = importlib.import_module("zap")
        lines += [
            "",
            *await zap.zap_table(
                kwargs["hass"], kwargs["pid_video"], kwargs["workdir"], zap_runs
            ),
        ]
    return lines


def _scenarios(args: argparse.Namespace) -> tuple[Scenario, ...]:
    """The rows: the full or quick set, or N viewers as asked (and, with --extra,
    N + 1 viewer against N + 1 recording)."""
    if not args.viewers:
        return QUICK if args.quick else FULL
    scenarios = tuple(
        Scenario(n, ramp=args.ramp, seed=True, profile=bool(args.profile))
        for n in args.viewers
    )
    if args.extra:
        scenarios += tuple(
            Scenario(n, ramp=args.ramp, extra=kind)
            for n in args.viewers
            for kind in ("viewer", "recording")
        )
    return scenarios


async def bench(args: argparse.Namespace) -> int:
    """Driver: source, client, ceiling, Home Assistant, every row, the report."""
    from tests.simulator import EngineSimulator, load_fixture

    started = time.monotonic()
    load_before = os.getloadavg()
    scenarios = _scenarios(args)
    settle = args.settle if args.settle is not None else (2.0 if args.quick else 4.0)
    window = args.window or (4.0 if args.quick else 8.0)
    profile = args.profile if args.profile is not None else not args.quick
    designs = [d for d in ("hass", "ring", "seed") if d not in args.skip]
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: fewer than 2 usable cores; server and client share a core")
    integration = (args.integration or ROOT / "custom_components" / DOMAIN).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="acestream-bench-"))
    results: list[Result] = []
    profiles: dict[str, list[str]] = {}
    zap_runs = args.zap_runs if args.zap_runs is not None else (1 if args.quick else 3)
    zap_lines: list[str] = []
    hls_clients = (
        args.hls_clients
        if args.hls_clients is not None
        else (50 if args.quick else 200)
    )
    hass = Hass(workdir, integration, probe=args.probe or args.census)
    hass.census = args.census
    ceiling: float | None = None
    try:
        print("generating the source with ffmpeg and compiling the client ...")
        fixture_path = make_fixture(workdir, 10)
        client_bin = compile_client(workdir)
        pid_video = video_pid(fixture_path)
        fixture = load_fixture(fixture_path)
        source_kbps = fixture.bitrate * 8 / 1000
        hls_line = hls_cost(fixture_path, fixture.duration)
        ceiling, ceiling_how = await loopback_ceiling(3 if args.quick else 5)
        py_spy = ensure_py_spy(args.py_spy) if profile else None
        with contextlib.suppress(OSError):
            _pin(CLIENT_CORE)
        sim = EngineSimulator(
            fixture=fixture_path, cold_start=0.2, burst_seconds=0.5, idle_timeout=600
        )
        await sim.start()
        try:
            print("starting Home Assistant ...", flush=True)
            if "hass" in designs:
                most = max(hls_clients, *(s.viewers for s in scenarios))
                await hass.start(sim.port, most + 10)
                await asyncio.sleep(2)
                hass.idle = await hass.idle_cpu(HASS_IDLE_SECONDS)
                hass.rss_base = proc_rss_kib(hass.pid)
            results = await run_repeats(
                args.repeat,
                scenarios,
                designs,
                hass=hass,
                engine_port=sim.port,
                client_bin=client_bin,
                pid_video=pid_video,
                workdir=workdir,
                settle=settle,
                window=window,
                py_spy=py_spy,
                profiles=profiles,
                profile_joins=args.profile_joins,
            )
            if "hass" in designs:
                zap_lines = await after_rows(
                    hls_clients,
                    zap_runs,
                    hass=hass,
                    engine_port=sim.port,
                    client_bin=client_bin,
                    pid_video=pid_video,
                    workdir=workdir,
                    settle=settle,
                    window=window,
                    source_kbps=source_kbps,
                )
        finally:
            await hass.stop()
            await sim.stop()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    import aiohttp

    ha_version = importlib.import_module("homeassistant.const").__version__
    load = os.getloadavg()
    print()
    print(f"# Fan-out benchmark{' (quick)' if args.quick else ''}")
    print()
    print(
        f"Machine: {os.cpu_count()} cores ({_cpu_model()}); load average (1, 5, 15 "
        f"min) {' '.join(f'{x:.2f}' for x in load_before)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in load)} at the end; Python "
        f"{platform.python_version()}, aiohttp {aiohttp.__version__}, Home Assistant "
        f"{ha_version} (a real `hass` process: onboarding, config and the integration "
        f"from {integration}), pinned to core {SERVER_CORE}; its idle CPU "
        f"({hass.idle:.3f} cores) is taken out of its figures. "
        f"The ring and seed servers are plain aiohttp processes on the same core. The C "
        f"epoll client and the engine simulator are pinned to core {CLIENT_CORE}."
    )
    print(
        f"Source: {source_kbps:.0f} kbit/s MPEG-TS (H.264 720p25 + AAC, keyframe every "
        "2 s), looped by the engine simulator. Clients against Home Assistant: half "
        "with a bearer token (long-lived access token), half with a signed URL."
    )
    print(
        f"Each row: a fresh broadcast, N connections over the stated time, {settle:g} s "
        f"to settle, then a {window:g} s steady window. Steady rate: body bytes per "
        "active viewer within the window (viewers with no data yet when it began are "
        "'late'); CPU: the server process over the window; join: connect to first "
        "body byte; RSS: growth from before the joins to the end, per viewer (for Home "
        "Assistant, which serves every row in one process and reuses memory freed by "
        "earlier rows, also the growth since before its first broadcast: lower\u2013"
        "upper bound); core "
        "busy: all that ran on the server core in the window (other processes, "
        "interrupts and the kernel's loopback receive work included), and in "
        "parentheses the client core (client and engine simulator)."
    )
    ceiling_text = f"{ceiling:.1f} Gbit/s" if ceiling else "not measured"
    print(f"Loopback ceiling: {ceiling_text} ({ceiling_how}).")
    print()
    for line in render(results, source_kbps, ceiling):
        print(line)
    for line in extra_readers(results, source_kbps) + runs_in_a_row(
        results, source_kbps
    ):
        print(line)
    for label, lines in profiles.items():
        print()
        print(f"Profile of Home Assistant (py-spy), {label}:")
        for line in lines:
            print(line)
    print()
    print(hls_line)
    for line in zap_lines:
        print(line)
    print()
    print(f"Wall time: {time.monotonic() - started:.0f} s")
    return 1 if any(r.error for r in results) else 0


def main() -> int:
    """Parse the arguments; run the driver or (internally) a reference server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short run, small rows")
    parser.add_argument("--window", type=float, help="steady window, seconds")
    parser.add_argument("--settle", type=float, help="seconds after the joins")
    parser.add_argument(
        "--viewers", type=int, nargs="+", help="only these rows (viewer counts)"
    )
    parser.add_argument("--ramp", type=float, default=1.0, help="with --viewers")
    parser.add_argument(
        "--extra",
        action="store_true",
        help="with --viewers: also each N + 1 viewer and N + 1 recording",
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=("hass", "ring", "seed")
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy on Home Assistant (default: on in the full run)",
    )
    parser.add_argument(
        "--integration", type=Path, help="another copy of the integration to measure"
    )
    parser.add_argument(
        "--zap-runs",
        type=int,
        help="runs of the zap table (script/zap.py; 0: none; default 3, quick 1)",
    )
    parser.add_argument(
        "--hls-clients",
        type=int,
        help="HLS clients against as many TS viewers (script/hls_load.py; 0: none; "
        "default 200, quick 50)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the rows this many times in a row on the same Home Assistant, and "
        "list each run's joins and slowest viewer against the ring's",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="measure Home Assistant's loop lag and GC pauses during each row's "
        "joins (script/bench_probe, linked into its configuration)",
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="with --probe: count the objects Home Assistant's collector tracks "
        "before the joins and at the steady window (stops its loop while counting)",
    )
    parser.add_argument(
        "--profile-joins",
        action="store_true",
        help="with --profile: py-spy from the first connect until a second after "
        "the last join, not in the steady window",
    )
    parser.add_argument(
        "--py-spy", type=Path, help="this py-spy binary (default: the venv's)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--serve", choices=("ring", "seed"), help=argparse.SUPPRESS)
    parser.add_argument("--engine-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.engine_port))
        return 0
    sys.path.insert(0, str(ROOT))
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
