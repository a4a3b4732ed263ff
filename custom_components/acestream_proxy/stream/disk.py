"""A file written from its own thread, behind a bounded buffer (no Home Assistant).

The event loop only appends to the buffer (no copy: ring chunks are immutable
bytes, shared with the thread). A disk that is slow, paused (a network share that
hangs) or full blocks or fails that thread alone: the loop sees a full buffer or
an error, never a blocked call. One thread per file, not the shared executor, so a
hung disk cannot starve Home Assistant's other file jobs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
import logging
from pathlib import Path
import threading
from typing import BinaryIO, Final

_LOGGER = logging.getLogger(__package__)

BUFFER_BYTES: Final = 32 * 1024 * 1024  # about 30 s at 8 Mbit/s


class DiskWriter:
    """Appends to one file from a thread; the loop side never blocks."""

    def __init__(
        self,
        path: Path,
        *,
        limit: int = BUFFER_BYTES,
        transform: Callable[[bytes | memoryview], bytes | memoryview] | None = None,
    ) -> None:
        """Prepare to write ``path`` (created with its folder by the thread);
        ``transform`` (same length out as in) runs in the thread before a write."""
        self.path = path
        self.limit = limit
        self._transform = transform
        self.buffered = 0
        self.written = 0
        self.error: OSError | None = None
        self._queue: deque[bytes | memoryview] = deque()
        self._cond = threading.Condition()
        self._ending = False
        self._blocked = False  # the loop waits for room (guarded by _cond)
        self._loop = asyncio.get_running_loop()
        # Set (from the thread, through the loop) when there is room again, the
        # file failed or the thread ended.
        self._room = asyncio.Event()
        self._room.set()
        self._done = asyncio.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"acestream_proxy writer {path.name}", daemon=True
        )

    def start(self) -> None:
        """Start the thread (it opens the file)."""
        self._thread.start()

    @property
    def full(self) -> bool:
        """No room for more until the thread catches up."""
        return self.buffered >= self.limit

    def put(self, data: bytes | memoryview) -> None:
        """Queue ``data`` for the file (never blocks; see :meth:`wait_room`)."""
        if self.error is not None or self._ending:
            return
        with self._cond:
            self._queue.append(data)
            self.buffered += len(data)
            if self.buffered >= self.limit and not self._blocked:
                self._blocked = True
                self._room.clear()
            self._cond.notify()

    async def wait_room(self) -> None:
        """Wait until the buffer has room, the file failed or the thread ended."""
        await self._room.wait()

    async def close(self, grace: float) -> bool:
        """Write what is queued and close the file; False if the disk did not
        finish within ``grace`` seconds (the thread then ends on its own)."""
        with self._cond:
            self._ending = True
            self._cond.notify()
        if not self._thread.is_alive() and not self._thread.ident:
            return True  # never started
        try:
            async with asyncio.timeout(grace):
                await self._done.wait()
        except TimeoutError:
            return False
        # Told just before it returns: joined, no thread outlives the file.
        await asyncio.to_thread(self._thread.join)
        return True

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        file: BinaryIO | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = self.path.open("wb")
            self._drain(file)
        except OSError as err:
            self.error = err
            _LOGGER.warning("Writing %s failed: %s", self.path, err)
        finally:
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()
            with self._cond:
                self._queue.clear()
                self.buffered = 0
            self._signal(done=True)

    def _drain(self, file: BinaryIO) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._ending:
                    self._cond.wait()
                if not self._queue:
                    file.flush()
                    return
                data = self._queue.popleft()
            file.write(data if self._transform is None else self._transform(data))
            self.written += len(data)
            with self._cond:
                self.buffered -= len(data)
                # Room again at half: the loop does not wake per write.
                room = self._blocked and self.buffered < self.limit // 2
                if room:
                    self._blocked = False
            if room:
                self._signal(done=False)

    def _signal(self, *, done: bool) -> None:
        def wake() -> None:
            self._room.set()
            if done:
                self._done.set()

        # The loop may already be gone (Home Assistant stopped while the disk
        # hung): nobody waits then.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(wake)
