"""What Home Assistant's event loop does during a bench row (``bench.py --probe``).

Not part of the integration: the bench links it into its throwaway configuration
only when asked. It measures, inside the process:

- loop lag: a task asks to wake every PERIOD seconds and records how late it
  woke (the time the loop spent on other callbacks before getting back to it,
  which is also how late a pending ``accept`` is served);
- garbage collector pauses: ``gc.callbacks`` brackets every collection, by
  generation (Python 3.14's incremental collector reports its increments too);

and serves them for a window of the monotonic clock (shared by every process on
Linux) at ``GET /api/bench_probe?start=..&end=..``.

``GET /api/bench_probe/census`` counts the objects the collector tracks, by type,
and answers how many more (or fewer) of each there are than at the previous
census: what a row's viewers keep alive, and so what a full collection walks.
It stops the loop while it counts (a few hundred milliseconds).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
import gc
import time
from typing import Any

from aiohttp import web
from homeassistant.components.http import HomeAssistantView
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant

DOMAIN = "bench_probe"
PERIOD = 0.005
KEEP = 200_000


class Probe:
    """Loop lag and GC pauses, with the monotonic time they ended at."""

    def __init__(self) -> None:
        """Nothing recorded yet."""
        self.lags: deque[tuple[float, float]] = deque(maxlen=KEEP)
        self.pauses: deque[tuple[float, int, float, int]] = deque(maxlen=KEEP)
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None
        self._census: Counter[str] = Counter()

    def start(self, hass: HomeAssistant) -> None:
        """Start both probes."""
        gc.callbacks.append(self._gc)
        self._task = hass.async_create_background_task(self._lag(), "bench_probe")

    async def stop(self, _event: Event) -> None:
        """Stop both probes."""
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        else:
            self.pauses.append(
                (
                    time.monotonic(),
                    info.get("generation", -1),
                    now - self._gc_started,
                    info.get("collected", 0),
                )
            )

    async def _lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + PERIOD
            await asyncio.sleep(PERIOD)
            now = loop.time()
            self.lags.append((now, max(0.0, now - asked)))

    def window(self, start: float, end: float) -> dict[str, Any]:
        """What happened between ``start`` and ``end`` (monotonic seconds)."""
        lags = sorted(lag for t, lag in self.lags if start <= t <= end)
        pauses = [p for p in self.pauses if start <= p[0] <= end]

        def pct(q: float) -> float:
            if not lags:
                return 0.0
            return lags[min(len(lags) - 1, int(q / 100 * len(lags)))] * 1000

        by_gen: dict[str, dict[str, float]] = {}
        for _, gen, seconds, collected in pauses:
            row = by_gen.setdefault(
                str(gen), {"count": 0, "total_ms": 0.0, "max_ms": 0.0, "collected": 0}
            )
            row["count"] += 1
            row["total_ms"] += seconds * 1000
            row["max_ms"] = max(row["max_ms"], seconds * 1000)
            row["collected"] += collected
        # The worst stalls and the collector time within each (a stall of L
        # seconds that woke at t spans t - L .. t).
        stalls = sorted(
            ((t, lag) for t, lag in self.lags if start <= t <= end),
            key=lambda x: -x[1],
        )[:8]
        worst = [
            {
                "at": round(t - start, 3),
                "ms": round(lag * 1000, 1),
                "gc_ms": round(
                    sum(s for e, _, s, _ in pauses if t - lag <= e <= t) * 1000, 1
                ),
            }
            for t, lag in stalls
        ]
        span = max(end - start, 1e-9)
        return {
            "samples": len(lags),
            "lag_ms": {"p50": pct(50), "p99": pct(99), "max": pct(100)},
            "lag_over_50ms": sum(1 for lag in lags if lag > 0.05),
            "busy": sum(lags) / span,
            "gc": by_gen,
            "gc_share": sum(s for _, _, s, _ in pauses) / span,
            "worst": worst,
        }

    def census(self) -> dict[str, Any]:
        """Tracked objects now, and the types that grew most since the last call."""
        now: Counter[str] = Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects()
        )
        diff = now.copy()
        diff.subtract(self._census)
        self._census = now
        return {
            "tracked": now.total(),
            "grew": diff.total(),
            "top": diff.most_common(30),
        }


class CensusView(HomeAssistantView):
    """GET a census of the collector's objects."""

    url = "/api/bench_probe/census"
    name = "api:bench_probe:census"

    def __init__(self, probe: Probe) -> None:
        """Serve ``probe``."""
        self.probe = probe

    async def get(self, _request: web.Request) -> web.Response:
        """Count now, compare with the last count."""
        return self.json(self.probe.census())


class ProbeView(HomeAssistantView):
    """GET the probe's figures for a window of the monotonic clock."""

    url = "/api/bench_probe"
    name = "api:bench_probe"

    def __init__(self, probe: Probe) -> None:
        """Serve ``probe``."""
        self.probe = probe

    async def get(self, request: web.Request) -> web.Response:
        """The window ``start``..``end`` (monotonic seconds)."""
        start = float(request.query.get("start", 0))
        end = float(request.query.get("end", time.monotonic()))
        return self.json(self.probe.window(start, end))


async def async_setup(hass: HomeAssistant, _config: dict[str, Any]) -> bool:
    """Start probing at once."""
    probe = Probe()
    probe.start(hass)
    hass.http.register_view(ProbeView(probe))
    hass.http.register_view(CensusView(probe))
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, probe.stop)
    return True
