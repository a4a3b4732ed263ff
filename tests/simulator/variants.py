"""Variants of an MPEG-TS fixture that real broadcasts show (write one to a file and
give it to ``EngineSimulator(fixture=...)``).
"""

from __future__ import annotations

from .ts import TS_PACKET

PAT_PID = 0x0000


def _pid(packet: bytes) -> int:
    return ((packet[1] & 0x1F) << 8) | packet[2]


def _keyframe(packet: bytes) -> bool:
    """A packet flagged random_access_indicator that starts a video PES."""
    if not (packet[1] & 0x40 and packet[3] & 0x20 and packet[4] and packet[5] & 0x40):
        return False
    payload = 5 + packet[4]
    return (
        packet[payload : payload + 3] == b"\x00\x00\x01"
        and packet[payload + 3] & 0xF0 == 0xE0
    )


def _unflagged(packet: bytes) -> bytes:
    if not (packet[3] & 0x20 and packet[4]):
        return packet
    return packet[:5] + bytes([packet[5] & ~0x40 & 0xFF]) + packet[6:]


def strip_keyframe_flags(data: bytes, *, tables_at_keyframes: bool = False) -> bytes:
    """The stream without random_access_indicator flags.

    With ``tables_at_keyframes`` PAT and PMT are sent only right before each
    keyframe (as many encoders do), so a PAT is where a decoder can start; their
    continuity counters are renumbered to stay continuous.
    """
    packets = [data[pos : pos + TS_PACKET] for pos in range(0, len(data), TS_PACKET)]
    pmt_pid = None
    if tables_at_keyframes:
        pat = next(p for p in packets if _pid(p) == PAT_PID)
        # The first program's PMT PID (PAT program loop after the 8-byte header).
        pointer = 5 + pat[4]
        pmt_pid = ((pat[pointer + 10] & 0x1F) << 8) | pat[pointer + 11]
        pmt = next(p for p in packets if _pid(p) == pmt_pid)
        tables = {PAT_PID: pat, pmt_pid: pmt}
        counters = dict.fromkeys(tables, 0)
    out: list[bytes] = []
    for packet in packets:
        pid = _pid(packet)
        if pmt_pid is not None and pid in (PAT_PID, pmt_pid):
            continue
        if pmt_pid is not None and _keyframe(packet):
            for table_pid, table in tables.items():
                cc = counters[table_pid]
                counters[table_pid] = (cc + 1) % 16
                out.append(table[:3] + bytes([(table[3] & 0xF0) | cc]) + table[4:])
        out.append(_unflagged(packet))
    return b"".join(out)
