"""Run the engine simulator standalone: ``python -m tests.simulator --port 6878``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path
import signal

from .engine import FAULT_KINDS, EngineSimulator, parse_faults


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulator", description="AceStream engine simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6878)
    parser.add_argument("--cold-start", type=float, default=3.0, help="seconds")
    parser.add_argument("--burst-seconds", type=float, default=1.0)
    parser.add_argument("--idle-timeout", type=float, default=60.0, help="seconds")
    parser.add_argument("--fixture", type=Path, default=None, help="MPEG-TS file")
    parser.add_argument("--version", dest="engine_version", default="3.2.12")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="behave like a real engine: live join mid-GOP, infohash needs a prior "
        "content id load, restarts refuse connections for a while",
    )
    parser.add_argument(
        "--restart-downtime",
        type=float,
        default=None,
        help="seconds a restart refuses connections (default 2 strict, 0 kind)",
    )
    parser.add_argument(
        "--faults",
        type=parse_faults,
        default=[],
        help="fault schedule from start, e.g. "
        "'stall at 30s for 25s, cut at 90s, restart at 150s' "
        f"(kinds: {', '.join(FAULT_KINDS)})",
    )
    parser.add_argument(
        "--not-ts",
        action="append",
        default=[],
        metavar="ID",
        help="content id or infohash whose sessions serve non-MPEG-TS bytes",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    sim = EngineSimulator(
        host=args.host,
        port=args.port,
        fixture=args.fixture,
        cold_start=args.cold_start,
        burst_seconds=args.burst_seconds,
        idle_timeout=args.idle_timeout,
        version=args.engine_version,
        strict=args.strict,
        restart_downtime=args.restart_downtime,
        faults=args.faults,
        not_ts={value.lower() for value in args.not_ts},
    )
    await sim.start()
    fixture = sim.fixture
    print(sim.base_url, flush=True)
    print(
        f"fixture: {fixture.size} bytes, {fixture.duration:.2f} s loop, "
        f"{fixture.bitrate * 8 / 1e6:.2f} Mbit/s; "
        f"{'strict' if sim.strict else 'kind'} mode; Ctrl-C to stop",
        flush=True,
    )
    for fault in sim.faults:
        print(f"fault: {fault}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, done.set)
    try:
        await done.wait()
    finally:
        await sim.stop()
        print("engine simulator stopped", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))


if __name__ == "__main__":
    main()
