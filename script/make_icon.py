"""Draw the integration's brand icons.

Writes custom_components/acestream_proxy/brand/icon.png (256x256) and
icon@2x.png (512x512): a rounded square with a vertical gradient, a play
triangle and two broadcast arcs on each side.

Usage (Pillow comes with Home Assistant, so the project venv has it):

    .venv/bin/python script/make_icon.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
BRAND_DIR = ROOT / "custom_components" / "acestream_proxy" / "brand"

# Everything is drawn on a 1024 grid, supersampled, then scaled down.
GRID = 1024
SUPERSAMPLE = 4

TOP_COLOR = (0x1E, 0x88, 0xE5)  # blue
BOTTOM_COLOR = (0x5E, 0x35, 0xB1)  # deep purple
FOREGROUND = (255, 255, 255, 255)


def _gradient(size: int) -> Image.Image:
    """Return a size x size RGBA image with a top-to-bottom gradient."""
    column = Image.new("RGBA", (1, size))
    for y in range(size):
        t = y / (size - 1)
        rgb = tuple(
            round(a + (b - a) * t) for a, b in zip(TOP_COLOR, BOTTOM_COLOR, strict=True)
        )
        column.putpixel((0, y), (*rgb, 255))
    return column.resize((size, size), Image.Resampling.NEAREST)


def draw_icon(size: int) -> Image.Image:
    """Render the icon at size x size pixels."""
    big = GRID * SUPERSAMPLE

    def s(value: float) -> int:
        return round(value * SUPERSAMPLE)

    # Rounded-square background.
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle(
        (s(32), s(32), s(GRID - 32), s(GRID - 32)), radius=s(200), fill=255
    )
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    image.paste(_gradient(big), (0, 0), mask)

    draw = ImageDraw.Draw(image)
    cx, cy = GRID / 2, GRID / 2

    # Play triangle, nudged right so it looks optically centred.
    half = 150
    draw.polygon(
        [
            (s(cx - half * 0.75), s(cy - half)),
            (s(cx - half * 0.75), s(cy + half)),
            (s(cx + half * 1.05), s(cy)),
        ],
        fill=FOREGROUND,
    )

    # Broadcast arcs on both sides.
    width = s(44)
    for radius in (270, 380):
        box = (s(cx - radius), s(cy - radius), s(cx + radius), s(cy + radius))
        draw.arc(box, start=-40, end=40, fill=FOREGROUND, width=width)
        draw.arc(box, start=140, end=220, fill=FOREGROUND, width=width)

    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    """Write the brand icons."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=BRAND_DIR,
        help="output folder (default: %(default)s)",
    )
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        path = out / name
        draw_icon(size).save(path, optimize=True)
        print(f"wrote {path} ({size}x{size})")


if __name__ == "__main__":
    main()
