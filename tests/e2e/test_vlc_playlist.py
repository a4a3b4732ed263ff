"""VLC reads the M3U we serve: every channel, by name, at our signed stream URL,
with its logo.

VLC 3's M3U reader takes no #EXTINF attributes (its playlist module has no
tvg-logo or group-title), so the logo also goes in #EXTALBUMARTURL, which it
reads; groups go in #EXTGRP too, for the apps that read that (Kodi), as VLC 3
has no M3U groups at all. Needs cvlc (``bash script/e2e_setup.sh`` installs
it); VLC refuses to run as root, so as root it runs as nobody (which only
reads here: test_vlc.py's user of its own is for playing).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import shutil
import tempfile

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from yarl import URL

from custom_components.acestream_proxy.channel import parse_playlist

HERE = Path(__file__).parent
CID = "0a4848271c91ce2d8965ce416267c25047dc8141"
CID2 = "1b4848271c91ce2d8965ce416267c25047dc8142"
SOURCE = f"""#EXTM3U url-tvg="http://epg.example/guide.xml"
#EXTINF:-1 tvg-id="sport1.es" tvg-logo="http://logo.example/s1.png" group-title="Sports",Sport 1
acestream://{CID}
#EXTINF:-1 tvg-id="news.uk" tvg-logo="http://logo.example/n.png" group-title="News",News 24
acestream://{CID2}
"""


async def _vlc_items(text: str) -> list[dict[str, str]]:
    """What VLC's playlist holds after reading the M3U ``text``."""
    # Not under pytest's tmp_path: as nobody, VLC could not reach into it.
    with tempfile.TemporaryDirectory(prefix="acestream-vlc-") as folder:
        return await _run_vlc(_prepare(Path(folder), text))


def _prepare(home: Path, text: str) -> list[str]:
    """The playlist and our Lua interface in ``home``; the command that runs VLC."""
    playlist = home / "acestream.m3u"
    playlist.write_text(text)
    intf = home / "share" / "vlc" / "lua" / "intf"
    intf.mkdir(parents=True)
    shutil.copy(HERE / "vlc_metas.lua", intf / "metas.lua")
    command = [
        "env",
        f"HOME={home}",
        f"XDG_DATA_HOME={home / 'share'}",
        "cvlc",
        "-I",
        "luaintf",
        "--lua-intf",
        "metas",
        "--no-dbus",
        "--no-video",
        "--aout",
        "dummy",
        str(playlist),
    ]
    if os.geteuid() == 0:
        for path in (home, *home.rglob("*")):
            path.chmod(0o777 if path.is_dir() else 0o666)
        command = ["runuser", "-u", "nobody", "--", *command]
    return command


async def _run_vlc(command: list[str]) -> list[dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().splitlines()
    assert "END" in lines, err.decode(errors="replace")[-2000:]
    items = []
    for line in lines:
        if line.startswith("ITEM\t"):
            name, *fields = line.split("\t")[1:]
            items.append({"name": name, **dict(f.split("=", 1) for f in fields)})
    return items


async def test_vlc_reads_our_playlist(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """Names, signed stream URLs and logos as VLC lists them; the guide, tvg-ids
    and groups are in the file for the apps that read them."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"playlist": SOURCE}
    )
    assert result["description_placeholders"]["imported"] == "2"
    client = await hass_client()
    text = await (await client.get("/api/acestream_proxy/playlist.m3u")).text()
    assert text.startswith('#EXTM3U url-tvg="http://epg.example/guide.xml"')
    assert "#EXTGRP:Sports" in text
    assert "#EXTGRP:News" in text

    items = await _vlc_items(text)
    by_name = {item["name"]: item for item in items}
    assert set(by_name) == {"Sport 1", "News 24"}
    assert by_name["Sport 1"]["artwork_url"] == "http://logo.example/s1.png"
    assert by_name["News 24"]["artwork_url"] == "http://logo.example/n.png"
    expected = {c.name: c for c in parse_playlist(text).channels}
    for name, item in by_name.items():
        uri = URL(item["uri"])
        assert uri.path.endswith(expected[name].ref.value)
        assert "authSig" in uri.query
    # VLC started playing the list: its broadcasts end while the engine is up.
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
