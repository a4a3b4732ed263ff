"""A stand-in Supervisor on loopback, for a real ``hass`` to run its hassio
integration against (``script/check_release.py``).

Home Assistant's hassio integration talks HTTP to the Supervisor at
``$SUPERVISOR`` with ``$SUPERVISOR_TOKEN``. This answers what its setup and its
coordinators ask, with payloads built from the client library's own response
models (``aiohasupervisor``), so they follow the release being checked instead
of a copy that ages: every required field gets a plain value of its type.

One add-on is installed (``ADDON_SLUG``, an AceStream engine from a third-party
repository). Until ``ready()`` is called the add-on list answers HTTP 503, so
the integration's add-on data is not loaded (``get_addons_info`` raises
``HassioNotReadyError`` from 2026.8) and its config entry retries, as on a
Supervisor that is still starting.

Needs ``aiohasupervisor`` (Home Assistant's hassio requirement; the harness
installs it with the default integrations' packages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import dataclasses
import datetime as dt
import enum
import ipaddress
import json
import re
import types
import typing
from typing import Any
import uuid

from aiohttp import web

ADDON_SLUG = "a0d7b954_acestream"
ADDON_NAME = "AceStream Engine"
VERSION = "2026.11.0"
TOKEN_HEADER = "Authorization"


# Plain values of the field types the models use, in the order they are tried
# (bool before int: a bool is an int).
_SCALARS: tuple[tuple[type | types.UnionType, Any], ...] = (
    (bool, False),
    (int | float, 0),
    (dt.datetime, "2026-01-01T00:00:00+00:00"),
    (uuid.UUID, uuid.UUID(int=0).hex),
    (ipaddress.IPv4Address | ipaddress.IPv6Address, "127.0.0.1"),
    (ipaddress.IPv4Network | ipaddress.IPv4Interface, "127.0.0.0/8"),
    (ipaddress.IPv6Network | ipaddress.IPv6Interface, "::1/128"),
)


def _placeholder(kind: Any, name: str) -> Any:  # noqa: PLR0911 (one per kind)
    """A plain value of type ``kind`` for a field called ``name``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        # Versions are read (and compared) even where they may be missing.
        if type(None) in args and "version" not in name:
            return None
        return _placeholder(args[0], name)
    if origin is typing.Literal:
        return args[0]
    if origin in (list, set, frozenset, tuple, dict):
        return {} if origin is dict else []
    if not isinstance(kind, type):
        return None
    if issubclass(kind, enum.Enum):
        return next(iter(kind)).value
    if issubclass(kind, str):
        return VERSION if "version" in name else name
    if dataclasses.is_dataclass(kind):
        return payload(kind)
    return next((value for base, value in _SCALARS if issubclass(kind, base)), None)


def payload(model: type[Any], **values: Any) -> dict[str, Any]:
    """A response body for ``model``: ``values``, and a placeholder for every
    other required field."""
    hints = typing.get_type_hints(model)
    body: dict[str, Any] = {}
    for field in dataclasses.fields(model):
        # The name on the wire, where the model renames it (mashumaro's alias).
        key = field.metadata.get("alias", field.name)
        if field.name in values:
            body[key] = values[field.name]
            continue
        if (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        ):
            continue
        body[key] = _placeholder(hints[field.name], field.name)
    # Parsed by the model as the client will: what it cannot read fails here.
    model.from_dict(body)
    return body


def _addon(models: Any, complete: bool) -> dict[str, Any]:
    kind = models.InstalledAddonComplete if complete else models.InstalledAddon
    return payload(
        kind,
        slug=ADDON_SLUG,
        name=ADDON_NAME,
        repository="a0d7b954",
        version="3.2.3",
        version_latest="3.2.3",
        update_available=False,
        state="started",
        **({"hostname": ADDON_SLUG.replace("_", "-")} if complete else {}),
    )


Handler = Callable[[web.Request], Awaitable[Any]]


class FakeSupervisor:
    """The fake, on 127.0.0.1:port; ``requests`` counts what was asked."""

    def __init__(self, token: str) -> None:
        """``token``: the SUPERVISOR_TOKEN hass is given; others get HTTP 401."""
        from aiohasupervisor import models

        self.token = token
        self.models = models
        self.addons_ready = False
        self.requests: dict[str, int] = {}
        self.unknown: list[str] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        m = models
        self._get: list[tuple[str, Any]] = [
            (r"supervisor/ping", None),
            (r"supervisor/info", lambda: payload(m.SupervisorInfo, addons=[])),
            (r"supervisor/stats", lambda: payload(m.SupervisorStats)),
            (r"info", lambda: payload(m.RootInfo, supervisor=VERSION)),
            (r"available_updates", lambda: {"available_updates": []}),
            (r"host/info", lambda: payload(m.HostInfo)),
            (r"host/services", lambda: {"services": []}),
            (r"os/info", lambda: payload(m.OSInfo)),
            (r"core/info", lambda: payload(m.HomeAssistantInfo)),
            (r"core/stats", lambda: payload(m.HomeAssistantStats)),
            (r"network/info", lambda: payload(m.NetworkInfo)),
            (r"resolution/info", lambda: payload(m.ResolutionInfo)),
            (r"store", lambda: payload(m.StoreInfo, addons=[], repositories=[])),
            (r"jobs/info", lambda: payload(m.JobsInfo, jobs=[])),
            (r"ingress/panels", lambda: {"panels": {}}),
            (r"discovery", lambda: {"discovery": []}),
            (r"backups", lambda: {"backups": []}),
            (r"backups/info", lambda: payload(m.BackupsInfo, backups=[])),
            (r"mounts", lambda: payload(m.MountsInfo, mounts=[])),
            (r"addons", self._addons),
            (rf"addons/{ADDON_SLUG}/info", lambda: _addon(m, complete=True)),
            (rf"addons/{ADDON_SLUG}/stats", lambda: payload(m.AddonsStats)),
        ]

    def ready(self) -> None:
        """From now on the add-on list answers."""
        self.addons_ready = True

    def _addons(self) -> Any:
        if not self.addons_ready:
            raise web.HTTPServiceUnavailable(
                text=json.dumps(
                    {"result": "error", "message": "Supervisor is starting"}
                ),
                content_type="application/json",
            )
        return {"addons": [_addon(self.models, complete=False)]}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"].strip("/")
        key = f"{request.method} {path}"
        self.requests[key] = self.requests.get(key, 0) + 1
        if request.headers.get(TOKEN_HEADER) != f"Bearer {self.token}" and (
            request.headers.get("X-Supervisor-Token") != self.token
        ):
            raise web.HTTPUnauthorized
        if path == "core/logs/latest":
            return web.Response(text="")
        if request.method == "POST" and path == "supervisor/update":
            # What a Supervisor with no update to install answers.
            return _error(400, "No supervisor update available")
        if request.method == "GET":
            for pattern, answer in self._get:
                if re.fullmatch(pattern, path):
                    data = answer() if answer is not None else None
                    return web.json_response({"result": "ok", "data": data or {}})
            self.unknown.append(key)
            return _error(404, f"{path} is not known to the fake Supervisor")
        # Options, reloads, refreshes: accepted and forgotten.
        return web.json_response({"result": "ok", "data": {}})

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp keeps the bound port there
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"result": "error", "message": message}, status=status)
