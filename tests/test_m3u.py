"""M3U in and out: the parser is total and loses nothing; what we serve carries
the sources' guide, tvg-id, tvg-name, logos and groups (hypothesis for the
properties)."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from hypothesis import HealthCheck, given, settings, strategies as st
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.acestream_proxy.channel import Channel, parse_playlist
from custom_components.acestream_proxy.m3u import decode_playlist, render_m3u
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef

CID = "0a4848271c91ce2d8965ce416267c25047dc8141"
CID2 = "1b4848271c91ce2d8965ce416267c25047dc8142"
IH = "2c4848271c91ce2d8965ce416267c25047dc8143"

SOURCE = f"""#EXTM3U url-tvg="http://epg.example/guide.xml.gz, http://epg.example/b.xml"
#EXTINF:-1 tvg-id="sport1.es" tvg-name="Sport 1 ES" tvg-logo="http://logo/s1.png" group-title="Sports, Live",Sport 1
acestream://{CID}
#EXTINF:-1 tvg-id="news.uk" tvg-logo="http://logo/n.png" group-title="News",News 24
http://127.0.0.1:6878/ace/getstream?id={CID2}
#EXTINF:-1 group-title="Films",Movie night
http://127.0.0.1:6878/ace/getstream?infohash={IH}
"""


def test_source_attributes_are_kept() -> None:
    """tvg-id and tvg-name join logo and group; a comma inside a quoted value
    is no title separator; the header's guide goes to every channel."""
    playlist = parse_playlist(SOURCE)
    assert playlist.guide == "http://epg.example/guide.xml.gz,http://epg.example/b.xml"
    first = playlist.channels[0]
    assert (first.name, first.tvg_id, first.tvg_name) == (
        "Sport 1",
        "sport1.es",
        "Sport 1 ES",
    )
    assert first.group == "Sports, Live"
    assert first.logo == "http://logo/s1.png"
    assert {c.guide for c in playlist.channels} == {playlist.guide}
    assert playlist.channels[2].tvg_id is None
    assert not playlist.skipped
    assert not playlist.warnings
    # x-tvg-url is the other name of url-tvg.
    assert parse_playlist('#EXTM3U x-tvg-url="http://g/x.xml"\n').guide == (
        "http://g/x.xml"
    )


def test_broken_extinf_lines_lose_no_channel() -> None:
    """No title: the channel comes in named by tvg-name (or its id), with a
    warning; an #EXTINF with no link after it is reported, never dropped
    silently."""
    text = (
        "#EXTM3U\n"
        f'#EXTINF:-1 tvg-name="Named" group-title="Unclosed\nacestream://{CID}\n'
        f"#EXTINF:-1 no comma here\nacestream://{CID2}\n"
        "#EXTINF:-1,Orphan\n"
        f"#EXTINF:-1,Last\nacestream://{IH}\n"
        "#EXTINF:-1,Trailing orphan\n"
    )
    playlist = parse_playlist(text)
    assert [c.name for c in playlist.channels] == [
        "Named",
        "AceStream 1b484827",
        "Last",
    ]
    assert [(w.line, w.reason) for w in playlist.warnings] == [
        (2, "broken #EXTINF line (no title)"),
        (4, "broken #EXTINF line (no title)"),
    ]
    assert [(s.line, s.reason) for s in playlist.skipped] == [
        (6, "#EXTINF without a link"),
        (9, "#EXTINF without a link"),
    ]


def test_duplicates_are_reported() -> None:
    """The same broadcast twice (in any spelling) is one channel and a report."""
    text = f"#EXTM3U\n#EXTINF:-1,A\nacestream://{CID}\n#EXTINF:-1,B\n{CID.upper()}\n"
    playlist = parse_playlist(text)
    assert [c.name for c in playlist.channels] == ["A"]
    assert [(s.line, s.reason) for s in playlist.skipped] == [(5, "duplicate")]


def test_decode_playlist_reads_any_bytes() -> None:
    """UTF-8 (with a BOM too); the server's charset; else Windows-1252, and
    Latin-1 for what that cannot read: every byte is a letter, none is lost."""
    assert decode_playlist("#EXTM3U\nÉire".encode()) == ("#EXTM3U\nÉire", "utf-8-sig")
    assert decode_playlist(b"\xef\xbb\xbf#EXTM3U")[0] == "#EXTM3U"
    assert decode_playlist("Спорт".encode("koi8-r"), "koi8-r") == ("Спорт", "koi8-r")
    assert decode_playlist("Café".encode("cp1252"), "no-such-charset") == (
        "Café",
        "cp1252",
    )
    # 0x81 is unassigned in Windows-1252.
    text, encoding = decode_playlist(b"caf\xe9 \x81")
    assert (text, encoding) == ("café \x81", "latin-1")


# Text around acestream links: every line kind the parser knows, and noise.
_LINK = st.from_regex(r"\A[0-9a-f]{40}\Z").map(lambda h: f"acestream://{h}")
_LINE = st.one_of(
    _LINK,
    st.just("#EXTM3U"),
    st.text(max_size=40).map(lambda t: f"#EXTINF:-1 {t}"),
    st.text(max_size=40).map(lambda t: f'#EXTINF:-1 tvg-id="{t}",{t}'),
    st.text(max_size=20).map(lambda t: f"#EXTGRP:{t}"),
    st.text(max_size=60),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_LINE, max_size=30))
def test_parser_is_total_and_accounts_for_every_link(lines: list[str]) -> None:
    """Any text parses; every link line is a channel, a duplicate, or reported."""
    text = "\n".join(lines)
    playlist = parse_playlist(text)
    links = [
        line.strip().lstrip("\ufeff")
        for line in text.splitlines()
        if line.strip().lstrip("\ufeff").startswith("acestream://")
    ]
    reported = [s for s in playlist.skipped if s.text.startswith("acestream://")]
    assert len(playlist.channels) + len(reported) == len(links)
    assert len({c.ref for c in playlist.channels}) == len(playlist.channels)


@given(st.binary(max_size=2000))
def test_any_bytes_decode_and_parse(body: bytes) -> None:
    """Bytes in any encoding (or none) give text the parser takes."""
    text, _ = decode_playlist(body)
    parse_playlist(text)


_VALUE = st.text(
    st.characters(
        blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters='"'
    ),
    min_size=1,
    max_size=20,
).filter(lambda t: t.strip() == t and t)
_CHANNEL = st.builds(
    Channel,
    name=_VALUE.filter(lambda t: not t.startswith("#")),
    ref=st.from_regex(r"\A[0-9a-f]{40}\Z").map(
        lambda h: ContentRef(ContentKind.CONTENT_ID, h)
    ),
    group=st.none() | _VALUE,
    logo=st.none() | st.just("http://logo.example/a b.png"),
    tvg_id=st.none() | _VALUE,
    tvg_name=st.none() | _VALUE,
    guide=st.none() | st.just("http://epg.example/guide.xml"),
)


@settings(max_examples=200)
@given(st.lists(_CHANNEL, max_size=8, unique_by=lambda c: c.ref))
def test_what_we_serve_reads_back(channels: list[Channel]) -> None:
    """Our M3U, read by our own parser, gives the same channels and guide."""
    text = render_m3u(channels, lambda ref: f"http://ha.local/stream/{ref.value}")
    playlist = parse_playlist(text)
    key = lambda c: c.ref.value  # noqa: E731
    expected = sorted(channels, key=key)
    got = sorted(playlist.channels, key=key)
    assert [(c.name, c.group, c.logo, c.tvg_id, c.tvg_name) for c in got] == [
        (c.name, c.group, c.logo, c.tvg_id, c.tvg_name) for c in expected
    ]
    assert playlist.guide == (
        "http://epg.example/guide.xml" if any(c.guide for c in channels) else None
    )


async def test_served_playlist_matches_the_source(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """Imported, then served: url-tvg, tvg-id, tvg-logo and group-title are the
    source's; our id has a key of its own; logos are the channels' pictures."""
    result = await hass.config_entries.subentries.async_init(
        (loaded_entry.entry_id, "playlist"), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"playlist": SOURCE}
    )
    assert result["description_placeholders"]["imported"] == "3"
    await hass.async_block_till_done()
    client = await hass_client()
    resp = await client.get("/api/acestream_proxy/playlist.m3u")
    assert resp.status == 200
    served_text = await resp.text()
    header = served_text.splitlines()[0]
    assert (
        'url-tvg="http://epg.example/guide.xml.gz,http://epg.example/b.xml"' in header
    )
    served = {c.ref: c for c in parse_playlist(served_text).channels}
    source = parse_playlist(SOURCE)
    assert served.keys() == {c.ref for c in source.channels}
    for channel in source.channels:
        got = served[channel.ref]
        assert (got.name, got.tvg_id, got.tvg_name, got.logo, got.group) == (
            channel.name,
            channel.tvg_id,
            channel.tvg_name,
            channel.logo,
            channel.group,
        )
    assert f'acestream-content-id="{CID}"' in served_text
    assert f'acestream-infohash="{IH}"' in served_text
    assert f'tvg-id="{CID}"' not in served_text

    pictures = {
        state.attributes.get("entity_picture")
        for state in hass.states.async_all("sensor")
        if state.attributes.get("entity_picture")
    }
    assert pictures == {"http://logo/s1.png", "http://logo/n.png"}
