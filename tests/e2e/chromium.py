"""Headless Chromium driven over its DevTools protocol, and the e2e page's server.

Shared by the browser end-to-end tests (tests/e2e) and the zap table of ``make
bench`` (script/zap.py): no pytest here. The protocol is spoken with aiohttp's
websocket client, so no extra Python packages are needed. ``script/e2e_setup.sh``
installs Chromium and hls.js.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import json
import os
from pathlib import Path
import signal
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

HERE = Path(__file__).parent
PAGE = HERE / "page.html"
HLS_JS = HERE / "node_modules" / "hls.js" / "dist" / "hls.min.js"
CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--password-store=basic",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class Chromium:
    """Headless Chromium in its own process group, driven over the DevTools protocol."""

    def __init__(self, workdir: Path) -> None:
        """Prepare in ``workdir``; nothing runs until ``start``."""
        self.user_data_dir = workdir / "profile"
        # Crashpad handlers detach into sessions of their own (outside the process
        # group); pointing their database here names them, so close() finds them.
        self.crash_dir = workdir / "crash"
        self.log_path = workdir / "chromium.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0

    async def start(self, url: str, timeout: float = 20.0) -> None:
        """Launch with ``url`` open and connect to its page target."""
        self.user_data_dir.mkdir(parents=True, exist_ok=True)
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "BREAKPAD_DUMP_LOCATION": str(self.crash_dir)}
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(CHROMIUM),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.user_data_dir}",
                url,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,  # its own process group, killed as one
            )
        port_file = self.user_data_dir / "DevToolsActivePort"
        async with asyncio.timeout(timeout):
            while not port_file.exists() or not port_file.read_text().strip():
                if self.proc.returncode is not None:
                    raise AssertionError(
                        f"chromium exited with {self.proc.returncode}: {self.log_tail()}"
                    )
                await asyncio.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            self.session = aiohttp.ClientSession()
            ws_url = None
            while ws_url is None:
                async with self.session.get(f"http://127.0.0.1:{port}/json/list") as r:
                    targets = await r.json()
                ws_url = next(
                    (t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"),
                    None,
                )
                if ws_url is None:
                    await asyncio.sleep(0.05)
            self.ws = await self.session.ws_connect(ws_url, max_msg_size=0)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result."""
        assert self.ws is not None
        self._next_id += 1
        msg_id = self._next_id
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        async with asyncio.timeout(10):
            while True:
                msg = await self.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"DevTools connection ended: {msg!r}")
                data = json.loads(msg.data)
                if data.get("id") == msg_id:
                    if "error" in data:
                        raise AssertionError(f"{method}: {data['error']}")
                    result: dict[str, Any] = data["result"]
                    return result

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page; its value (JSON-able)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def state(self) -> dict[str, Any] | None:
        """The page's ``e2eState()`` (None until the page script ran)."""
        value = await self.evaluate("window.e2eState ? window.e2eState() : null")
        return value if isinstance(value, dict) else None

    def log_tail(self, size: int = 3000) -> str:
        """The end of Chromium's own output, for failure messages."""
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    async def close(self) -> None:
        """Close the DevTools connection, then end the whole process group."""
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the group is led by the browser
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            pass
        # Helpers (renderer, GPU, zygote...) that outlived the browser process.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        await proc.wait()
        # Crash handlers exit by themselves once the browser is gone; make sure.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3
        while (handlers := self._crash_handlers()) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        for pid in handlers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _crash_handlers(self) -> list[int]:
        """Live crashpad handlers of this browser, found by their database path."""
        marker = f"--database={self.crash_dir}".encode()
        pids = []
        for proc_dir in Path("/proc").iterdir():
            if proc_dir.name.isdigit():
                try:  # a zombie's cmdline is empty: only live processes match
                    args = (proc_dir / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if marker in args:
                    pids.append(int(proc_dir.name))
        return pids


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[URL]:
    """page.html and hls.min.js on a loopback port of their own (another origin)."""
    files = {"/page.html": PAGE, "/hls.min.js": HLS_JS}

    async def serve(request: web.Request) -> web.StreamResponse:
        path = files.get(request.path)
        if path is None:
            return web.Response(status=404)
        return web.FileResponse(path, headers={"Cache-Control": "no-store"})

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server.make_url("/page.html")
    finally:
        await server.close()
