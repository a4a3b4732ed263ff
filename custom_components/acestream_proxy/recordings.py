"""Recordings in Home Assistant: where their files go, their events, the remux.

The data path is :mod:`.stream.record` (an internal reader of the shared
broadcast, written by its own thread). Here: files under Home Assistant's media
folders (``local``, subfolder ``acestream``), the ``recording_*`` events, the
entities' numbers, the MP4 remux by the ``ffmpeg`` integration's binary after the
file is closed, and a clean end of every file when Home Assistant stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN, EVENT_TYPE, LOGGER
from .services import _error
from .stream.broadcast import BroadcastClosedError
from .stream.record import EndReason, Recording, RecordingState
from .stream.remux import RemuxError, remux_to_mp4

if TYPE_CHECKING:
    from .hub import StreamHub
    from .stream.engine import ContentRef

RECORDINGS_KEY: HassKey[Recordings] = HassKey(f"{DOMAIN}_recordings")

SUBFOLDER: Final = "acestream"
DEFAULT_MEDIA_DIR: Final = "local"
DEFAULT_TEMPLATE: Final = "{name} {date} {time}"
MAX_DURATION: Final = 24 * 3600.0  # a match is hours, not days
# Characters a file name cannot hold on the file systems media folders live on
# (Samba shares included); a channel name with them is still a fine name.
_UNSAFE: Final = str.maketrans(dict.fromkeys('/\\:*?"<>|', "-"))

EVENT_STARTED: Final = "recording_started"
EVENT_FINISHED: Final = "recording_finished"
EVENT_FAILED: Final = "recording_failed"
RECORDING_EVENTS: Final = (EVENT_STARTED, EVENT_FINISHED, EVENT_FAILED)


def get_recordings(hass: HomeAssistant) -> Recordings:
    """The recordings of this Home Assistant (created in async_setup)."""
    return hass.data[RECORDINGS_KEY]


def media_root(hass: HomeAssistant) -> tuple[str, Path]:
    """The media folder recordings go to: ``local``, else the first one."""
    dirs = hass.config.media_dirs
    if not dirs:
        raise _error("no_media_dir")
    key = DEFAULT_MEDIA_DIR if DEFAULT_MEDIA_DIR in dirs else next(iter(dirs))
    return key, Path(dirs[key])


def recording_path(
    hass: HomeAssistant,
    name: str,
    template: str,
    folder: str | None,
    now: datetime,
) -> Path:
    """The file for a recording of ``name`` started at ``now``.

    Raises ServiceValidationError: ``folder`` is a folder inside a media folder (absolute) or inside the
    recordings folder (relative); a path that leaves the media folders, or a
    template with a path separator, is refused with the reason.
    """
    if any(sep in template for sep in ("/", "\\")) or template.strip() in (
        "",
        ".",
        "..",
    ):
        raise _error("name_with_separator", name=template)
    _, root = media_root(hass)
    base = root / SUBFOLDER
    target = (base / folder) if folder else base
    resolved = Path(_normalise(target))
    inside = [Path(_normalise(Path(path))) for path in hass.config.media_dirs.values()]
    if not any(resolved.is_relative_to(path) for path in inside):
        raise _error("outside_media", folder=str(folder))
    try:
        stem = template.format(
            name=name.translate(_UNSAFE).strip() or "recording",
            date=now.strftime("%Y-%m-%d"),
            time=now.strftime("%H-%M"),
        )
    except (KeyError, IndexError, ValueError) as err:
        raise _error("bad_template", name=template) from err
    return resolved / f"{stem}.ts"


def _normalise(path: Path) -> str:
    """``path`` without ``..`` and ``.``, from the file system's root (no I/O)."""
    parts: list[str] = []
    for part in path.absolute().parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


@dataclass
class Recordings:
    """Every recording of this Home Assistant, running and recent."""

    hass: HomeAssistant
    hub: StreamHub
    running: dict[str, Recording] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def async_record(
        self, ref: ContentRef, name: str, path: Path, duration: float | None
    ) -> Recording:
        """Start recording the broadcast ``ref`` names (opened if needed).

        Raises like StreamHub.async_open_viewer.
        """
        path = await self.hass.async_add_executor_job(_free_name, path)
        for _ in range(3):
            broadcaster = await self.hub.async_open(ref)
            recording = Recording(
                broadcaster,
                path,
                duration=duration,
                listener=self._changed,
                spawn=self._spawn,
            )
            try:
                recording.start()
            except BroadcastClosedError:
                continue
            LOGGER.info("Recording %s into %s", name, path)
            return recording
        raise BroadcastClosedError

    def of(self, infohash: str) -> list[Recording]:
        """The running recordings of one broadcast."""
        return [
            recording
            for recording in self.running.values()
            if recording.broadcaster.infohash == infohash
        ]

    async def async_stop(self, recordings: list[Recording]) -> None:
        """Stop recordings and wait until their files are closed."""
        await asyncio.gather(*(recording.async_stop() for recording in recordings))

    async def async_shutdown(self, _event: Event | None = None) -> None:
        """Home Assistant stops: finish every file cleanly (remuxes are left)."""
        await asyncio.gather(
            *(r.async_stop(EndReason.SHUTDOWN) for r in list(self.running.values()))
        )
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self.hass.async_create_background_task(coro, name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @callback
    def _changed(self, recording: Recording) -> None:
        if recording.running:
            self.running[recording.id] = recording
            self._fire(recording, EVENT_STARTED)
        else:
            self.running.pop(recording.id, None)
            if recording.state is RecordingState.FAILED:
                self._fire(recording, EVENT_FAILED)
            elif recording.bytes_written and (ffmpeg := self._ffmpeg()):
                self._spawn(
                    self._async_remux(recording, ffmpeg),
                    f"{DOMAIN} remux {recording.id}",
                )
            else:
                self._fire(recording, EVENT_FINISHED)
        self.hub.request_update()

    def _ffmpeg(self) -> str | None:
        """The ffmpeg binary the ``ffmpeg`` integration knows, if it is set up."""
        from homeassistant.components.ffmpeg import (  # noqa: PLC0415
            get_ffmpeg_manager,
        )

        try:
            return get_ffmpeg_manager(self.hass).binary
        except ValueError:
            return None

    async def _async_remux(self, recording: Recording, ffmpeg: str) -> None:
        try:
            recording.path = await remux_to_mp4(ffmpeg, recording.path)
        except RemuxError as err:
            LOGGER.warning("Recording %s stays MPEG-TS: %s", recording.path, err)
        self._fire(recording, EVENT_FINISHED)

    def _fire(self, recording: Recording, kind: str) -> None:
        data = self.hub.events.data(recording.broadcaster, kind)
        data |= {
            "recording_id": recording.id,
            "path": str(recording.path),
            "reason": recording.reason,
            "bytes": recording.bytes_written,
            "duration": round(recording.seconds, 1),
        }
        self.hass.bus.async_fire(EVENT_TYPE, data)


def _free_name(path: Path) -> Path:
    """``path``, or ``name (2).ts`` and so on if a file (or its MP4) exists."""
    candidate, number = path, 1
    while candidate.exists() or candidate.with_suffix(".mp4").exists():
        number += 1
        candidate = path.with_name(f"{path.stem} ({number}){path.suffix}")
    return candidate
