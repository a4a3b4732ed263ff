"""MPEG-TS fixture looping with continuous timestamps.

The fixture is parsed once: the byte offsets of every PCR (adaptation field), PTS and
DTS (PES header) field and of every continuity counter are recorded.  Loop ``k`` of the
endless stream is a copy of the fixture where every timestamp is shifted by
``k * duration`` (90 kHz units, 33-bit wrap) and every continuity counter by a per-PID
amount, so the concatenation of the loops is one continuous stream for a demuxer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
import itertools
from pathlib import Path
import statistics

TS_PACKET = 188
SYNC_BYTE = 0x47
NULL_PID = 0x1FFF
PTS_WRAP = 1 << 33
FALLBACK_BITRATE = 1_500_000 // 8  # bytes per second when nothing can be measured

# PES stream ids without the optional PES header (ISO 13818-1, table 2-21).
_NO_PES_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})

DEFAULT_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample.ts"


def read_timestamp(buf: bytes | bytearray, off: int) -> int:
    """Decode a 33-bit PES timestamp (PTS or DTS) stored in 5 bytes at ``off``."""
    return (
        ((buf[off] >> 1) & 0x07) << 30
        | buf[off + 1] << 22
        | (buf[off + 2] >> 1) << 15
        | buf[off + 3] << 7
        | buf[off + 4] >> 1
    )


def write_timestamp(buf: bytearray, off: int, value: int) -> None:
    """Encode ``value`` into the 5-byte PES timestamp at ``off`` (keeps the prefix)."""
    value %= PTS_WRAP
    buf[off] = (buf[off] & 0xF0) | ((value >> 29) & 0x0E) | 0x01
    buf[off + 1] = (value >> 22) & 0xFF
    buf[off + 2] = ((value >> 14) & 0xFE) | 0x01
    buf[off + 3] = (value >> 7) & 0xFF
    buf[off + 4] = ((value << 1) & 0xFE) | 0x01


def read_pcr_base(buf: bytes | bytearray, off: int) -> int:
    """Decode the 33-bit PCR base (90 kHz) of the 6-byte PCR field at ``off``."""
    return (
        buf[off] << 25
        | buf[off + 1] << 17
        | buf[off + 2] << 9
        | buf[off + 3] << 1
        | buf[off + 4] >> 7
    )


def read_pcr(buf: bytes | bytearray, off: int) -> int:
    """Decode a full PCR (27 MHz units) at ``off``."""
    ext = (buf[off + 4] & 0x01) << 8 | buf[off + 5]
    return read_pcr_base(buf, off) * 300 + ext


def write_pcr_base(buf: bytearray, off: int, base: int) -> None:
    """Encode the PCR base at ``off``; the reserved bits and extension are kept."""
    base %= PTS_WRAP
    buf[off] = (base >> 25) & 0xFF
    buf[off + 1] = (base >> 17) & 0xFF
    buf[off + 2] = (base >> 9) & 0xFF
    buf[off + 3] = (base >> 1) & 0xFF
    buf[off + 4] = ((base & 0x01) << 7) | (buf[off + 4] & 0x7F)


def _pes_timestamps(data: bytes, payload: int, end: int) -> list[int]:
    """Offsets of the PTS (then DTS) fields of a PES header starting at ``payload``."""
    if payload + 14 > end or data[payload : payload + 3] != b"\x00\x00\x01":
        return []
    if data[payload + 3] in _NO_PES_HEADER:
        return []
    flags = (data[payload + 7] >> 6) & 0x03
    if not flags & 0x02:
        return []
    if flags == 0x03 and payload + 19 <= end:
        return [payload + 9, payload + 14]
    return [payload + 9]


@dataclass(slots=True)
class _Scan:
    pcr_offsets: list[int] = field(default_factory=list)
    ts_offsets: list[int] = field(default_factory=list)  # PTS and DTS fields
    cc_pids: list[int] = field(default_factory=list)  # per packet, -1 = leave alone
    cc_shift: dict[int, int] = field(default_factory=dict)
    duration_ticks: int = 0  # 90 kHz
    pcr_span: tuple[int, int, int] | None = None  # (first pcr, last pcr, bytes between)


def _scan(data: bytes) -> _Scan:
    scan = _Scan()
    pts_by_pid: dict[int, list[int]] = {}
    first_cc: dict[int, int] = {}
    last_cc: dict[int, int] = {}
    first_pcr: tuple[int, int] | None = None  # (pcr, byte offset)
    last_pcr: tuple[int, int] | None = None
    for pkt in range(0, len(data), TS_PACKET):
        if data[pkt] != SYNC_BYTE:
            raise ValueError(f"lost MPEG-TS sync at byte {pkt}")
        pid = (data[pkt + 1] & 0x1F) << 8 | data[pkt + 2]
        pusi = bool(data[pkt + 1] & 0x40)
        afc = (data[pkt + 3] >> 4) & 0x03
        cc = data[pkt + 3] & 0x0F
        if pid == NULL_PID:
            scan.cc_pids.append(-1)
            continue
        scan.cc_pids.append(pid)
        if afc & 0x01:
            first_cc.setdefault(pid, cc)
            last_cc[pid] = cc
        payload = pkt + 4
        if afc & 0x02:
            af_len = data[pkt + 4]
            payload = pkt + 5 + af_len
            if af_len >= 7 and data[pkt + 5] & 0x10:
                scan.pcr_offsets.append(pkt + 6)
                pcr = read_pcr(data, pkt + 6)
                if first_pcr is None:
                    first_pcr = (pcr, pkt)
                last_pcr = (pcr, pkt)
        if pusi and afc & 0x01:
            found = _pes_timestamps(data, payload, pkt + TS_PACKET)
            if found:
                scan.ts_offsets.extend(found)
                pts_by_pid.setdefault(pid, []).append(read_timestamp(data, found[0]))
    for pid, first in first_cc.items():
        scan.cc_shift[pid] = (last_cc[pid] + 1 - first) % 16
    # The loop length comes from the PID with the finest PES granularity (video: one
    # frame per PES; audio PES often bundle several frames): span + one step.
    stamps = max(pts_by_pid.values(), key=lambda v: len(set(v)), default=[])
    uniq = sorted(set(stamps))
    if len(uniq) >= 2:
        step = int(statistics.median(b - a for a, b in itertools.pairwise(uniq)))
        scan.duration_ticks = uniq[-1] - uniq[0] + step
    if first_pcr and last_pcr and last_pcr[0] > first_pcr[0]:
        scan.pcr_span = (first_pcr[0], last_pcr[0], last_pcr[1] - first_pcr[1])
    return scan


class TsFixture:
    """A parsed MPEG-TS file that can be repeated forever with continuous timestamps."""

    def __init__(self, data: bytes, *, cache_loops: int = 4) -> None:
        usable = len(data) - len(data) % TS_PACKET
        if usable == 0:
            raise ValueError("fixture holds no complete MPEG-TS packet")
        self.data = bytes(data[:usable])
        self._scan = _scan(self.data)
        scan = self._scan
        if scan.duration_ticks > 0:
            self.duration = scan.duration_ticks / 90_000
        elif scan.pcr_span is not None:
            first, last, span_bytes = scan.pcr_span
            self.duration = (last - first) / 27_000_000 * len(self.data) / span_bytes
        else:
            self.duration = len(self.data) / FALLBACK_BITRATE
        self.duration_ticks = scan.duration_ticks or round(self.duration * 90_000)
        self.bitrate = len(self.data) / self.duration  # bytes per second
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_loops = max(1, cache_loops)

    @property
    def size(self) -> int:
        return len(self.data)

    def loop_bytes(self, k: int) -> bytes:
        """The bytes of loop ``k`` (0 = the fixture as is)."""
        cached = self._cache.get(k)
        if cached is not None:
            self._cache.move_to_end(k)
            return cached
        result = self._build_loop(k)
        self._cache[k] = result
        while len(self._cache) > self._cache_loops:
            self._cache.popitem(last=False)
        return result

    def _build_loop(self, k: int) -> bytes:
        if k == 0:
            return self.data
        buf = bytearray(self.data)
        shift = k * self.duration_ticks
        for off in self._scan.pcr_offsets:
            write_pcr_base(buf, off, read_pcr_base(buf, off) + shift)
        for off in self._scan.ts_offsets:
            write_timestamp(buf, off, read_timestamp(buf, off) + shift)
        cc_add = {pid: (k * s) % 16 for pid, s in self._scan.cc_shift.items() if s}
        if cc_add:
            for index, pid in enumerate(self._scan.cc_pids):
                add = cc_add.get(pid)
                if add:
                    pos = index * TS_PACKET + 3
                    value = buf[pos]
                    buf[pos] = (value & 0xF0) | ((value + add) & 0x0F)
        return bytes(buf)

    def read(self, position: int, size: int) -> bytes:
        """``size`` bytes of the endless stream starting at byte ``position``."""
        chunks: list[bytes] = []
        total = len(self.data)
        while size > 0:
            k, off = divmod(position, total)
            take = min(size, total - off)
            chunks.append(self.loop_bytes(k)[off : off + take])
            position += take
            size -= take
        return b"".join(chunks)


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> TsFixture:
    return TsFixture(Path(path).read_bytes())


def load_fixture(path: Path | None = None) -> TsFixture:
    """Load (and cache) a fixture file; defaults to ``tests/fixtures/sample.ts``."""
    target = (path or DEFAULT_FIXTURE).resolve()
    if not target.is_file():
        raise FileNotFoundError(
            f"MPEG-TS fixture {target} is missing; run script/make_fixture.sh"
        )
    stat = target.stat()
    return _load_cached(str(target), stat.st_mtime_ns, stat.st_size)
