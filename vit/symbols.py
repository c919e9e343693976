"""Photo-like pictures of digits and arrows on paper, whiteboards and screens: the **symbols** set.

Every image is what a webcam might see when a student holds up a drawing: a digit (``0`` … ``9``)
or an arrow (``arrow up`` … ``arrow right``), drawn by hand with a jittered pen or printed in one of
several typefaces, on plain or ruled paper, a whiteboard or a screen, under uneven light with a
shadow, with a few distractor marks, then seen through a camera: random position and scale,
perspective, rotation, blur, noise, a colour cast and JPEG compression. A fifteenth class,
``nothing``, holds the same scenes without a symbol (blank paper, letters, other shapes, scribbles,
cluttered photo-like scenes), so the model can say that it sees none of its symbols.

The generator knows where the ink is: :func:`make_symbols` returns the symbol's ink mask with every
image (the distractors are not in it), for the pointing game in :mod:`vit.evaluate`.

Splits come from separate random streams of one seed, so they never share a draw. The
**shifted** split goes further: its backgrounds (graph paper, sticky notes), typefaces and pen
style (a brush whose width swells and thins) never occur in the other splits at all, so accuracy on
it measures generalisation rather than memory. Typefaces come from Debian font packages (see
:data:`FONT_PACKAGES`); nothing is downloaded.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["SYMBOL_CLASSES", "NOTHING", "SPLITS", "FONT_PACKAGES", "TRAIN_FONTS", "SHIFTED_FONTS",
           "TRAIN_BACKGROUNDS", "SHIFTED_BACKGROUNDS", "TRAIN_PENS", "SHIFTED_PENS", "make_symbols",
           "render_symbol", "find_font", "make_clutter"]

GENERATOR_VERSION = 1  # bump whenever a change alters the images for a seed, so cached sets are made again
NOTHING = "nothing"
SYMBOL_CLASSES = [str(d) for d in range(10)] + ["arrow up", "arrow down", "arrow left", "arrow right", NOTHING]
SPLITS = ("train", "val", "test", "shifted")
_STREAM = {"train": 0, "val": 1, "test": 2, "shifted": 3}

# Debian packages that hold the typefaces (installed by .ci/run and named in the README).
FONT_PACKAGES = ("fonts-dejavu-core", "fonts-liberation2", "fonts-freefont-ttf", "fonts-urw-base35",
                 "fonts-comic-neue", "fonts-humor-sans", "fonts-open-sans", "fonts-roboto-unhinted")
TRAIN_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf",
    "LiberationSans-Regular.ttf", "LiberationSerif-Bold.ttf", "LiberationMono-Regular.ttf",
    "FreeSans.ttf", "FreeSerif.ttf", "FreeMonoBold.ttf", "NimbusSans-Regular.otf", "NimbusRoman-Regular.otf",
    "NimbusSansNarrow-Bold.otf", "URWBookman-Light.otf", "URWGothic-Book.otf", "C059-Roman.otf",
    "ComicNeue-Regular.otf", "ComicNeue-Bold.otf", "Humor-Sans.ttf", "OpenSans-Regular.ttf",
    "Roboto-Regular.ttf", "RobotoCondensed-Bold.ttf",
)
SHIFTED_FONTS = ("P052-Roman.otf", "P052-Bold.otf", "NimbusMonoPS-Regular.otf", "Z003-MediumItalic.otf")
TRAIN_BACKGROUNDS = ("paper", "ruled", "whiteboard", "screen")
SHIFTED_BACKGROUNDS = ("graph", "sticky")
TRAIN_PENS = ("ballpoint", "felt", "marker", "pencil")
SHIFTED_PENS = ("brush",)
_FONT_DIRS = (Path("/usr/share/fonts"),)
_ARROW_CHARS = {"arrow up": "↑", "arrow down": "↓", "arrow left": "←", "arrow right": "→"}
_LETTERS = "ACEFHKMNPRUWXYaehkmnruwx#%&@?"  # "nothing": none looks like a digit or an arrow


@functools.lru_cache(maxsize=None)
def find_font(name: str) -> str | None:
    """The path of a font file called ``name`` under /usr/share/fonts, or None."""
    for root in _FONT_DIRS:
        for p in sorted(root.rglob(name)):
            return str(p)
    return None


def _available(names: tuple[str, ...]) -> tuple[str, ...]:
    found = tuple(p for p in (find_font(n) for n in names) if p)
    if not found:
        raise FileNotFoundError(f"none of the typefaces {', '.join(names)} is installed; install the Debian "
                                f"packages {' '.join(FONT_PACKAGES)}")
    return found


@functools.lru_cache(maxsize=4096)
def _glyph(path: str, char: str) -> np.ndarray | None:
    """The glyph of ``char`` as a tight float coverage map in [0, 1], or None if the font lacks it."""
    font = ImageFont.truetype(path, 96)

    def draw(c: str) -> np.ndarray:
        im = Image.new("L", (160, 160), 0)
        ImageDraw.Draw(im).text((80, 80), c, font=font, fill=255, anchor="mm")
        return np.asarray(im)

    a = draw(char)
    if not a.any() or np.array_equal(a, draw("\ue000")):  # a private-use code point: the .notdef box
        return None
    ys, xs = np.nonzero(a > 20)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255.0


# --------------------------------------------------------------------------------------------
# Hand-drawn strokes: each symbol is a list of strokes, each a list of (x, y) in the unit box
# (y grows downwards); a stroke is smoothed as one curve, so corners are where strokes meet.
# --------------------------------------------------------------------------------------------

def _ellipse(cx, cy, rx, ry, start=-90.0, sweep=370.0, n=14):
    t = np.deg2rad(start + sweep * np.linspace(0, 1, n))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))


_DIGITS: dict[str, list[list[list[tuple[float, float]]]]] = {
    "0": [[_ellipse(0.5, 0.5, 0.33, 0.5, -80, -370)], [_ellipse(0.5, 0.5, 0.3, 0.5, -100, 370)]],
    "1": [[[(0.5, 0.0), (0.5, 1.0)]],
          [[(0.28, 0.22), (0.5, 0.0)], [(0.5, 0.0), (0.5, 1.0)]],
          [[(0.3, 0.2), (0.52, 0.0)], [(0.52, 0.0), (0.52, 1.0)], [(0.28, 1.0), (0.76, 1.0)]]],
    "2": [[[(0.15, 0.25), (0.3, 0.04), (0.58, 0.0), (0.8, 0.16), (0.78, 0.38), (0.55, 0.62), (0.15, 1.0)],
           [(0.15, 1.0), (0.88, 1.0)]],
          [[(0.18, 0.18), (0.5, 0.0), (0.8, 0.2), (0.7, 0.5), (0.15, 1.0)], [(0.15, 1.0), (0.4, 0.93), (0.88, 0.98)]]],
    "3": [[[(0.15, 0.12), (0.5, 0.0), (0.8, 0.16), (0.74, 0.38), (0.42, 0.48)],
           [(0.42, 0.48), (0.8, 0.6), (0.85, 0.84), (0.5, 1.0), (0.12, 0.88)]],
          [[(0.15, 0.0), (0.82, 0.0)], [(0.82, 0.0), (0.45, 0.42)],
           [(0.45, 0.42), (0.8, 0.55), (0.85, 0.82), (0.5, 1.0), (0.12, 0.86)]]],
    "4": [[[(0.62, 0.0), (0.08, 0.66)], [(0.08, 0.66), (0.9, 0.66)], [(0.66, 0.3), (0.66, 1.0)]],
          [[(0.2, 0.0), (0.14, 0.56)], [(0.14, 0.56), (0.88, 0.56)], [(0.7, 0.0), (0.7, 1.0)]]],
    "5": [[[(0.82, 0.0), (0.26, 0.0)], [(0.26, 0.0), (0.2, 0.44)],
           [(0.2, 0.44), (0.52, 0.36), (0.82, 0.5), (0.86, 0.76), (0.6, 0.97), (0.3, 1.0), (0.12, 0.86)]]],
    "6": [[[(0.76, 0.04), (0.45, 0.04), (0.2, 0.34), (0.15, 0.7), (0.34, 1.0), (0.7, 0.95), (0.82, 0.7),
            (0.62, 0.5), (0.3, 0.54), (0.16, 0.72)]]],
    "7": [[[(0.1, 0.0), (0.9, 0.0)], [(0.9, 0.0), (0.4, 1.0)]],
          [[(0.1, 0.0), (0.9, 0.0)], [(0.9, 0.0), (0.42, 1.0)], [(0.36, 0.52), (0.82, 0.52)]]],
    "8": [[[(0.52, 0.47), (0.22, 0.3), (0.26, 0.05), (0.5, 0.0), (0.74, 0.06), (0.78, 0.3), (0.5, 0.48),
            (0.16, 0.7), (0.24, 0.95), (0.5, 1.0), (0.76, 0.95), (0.84, 0.7), (0.5, 0.47)]]],
    "9": [[[(0.8, 0.26), (0.6, 0.46), (0.3, 0.44), (0.17, 0.24), (0.35, 0.02), (0.65, 0.0), (0.8, 0.18),
            (0.8, 0.3)], [(0.8, 0.24), (0.76, 1.0)]],
          [[(0.8, 0.26), (0.6, 0.46), (0.3, 0.44), (0.17, 0.24), (0.35, 0.02), (0.65, 0.0), (0.8, 0.18),
            (0.8, 0.3)], [(0.8, 0.24), (0.78, 0.7), (0.6, 1.0), (0.36, 0.96)]]],
}

# An upward arrow; the other directions are exact rotations of it.
_ROTATE = {"arrow up": np.eye(2), "arrow down": np.array([[-1, 0], [0, -1]]),
           "arrow left": np.array([[0, 1], [-1, 0]]), "arrow right": np.array([[0, -1], [1, 0]])}


def _arrow_strokes(rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    head = rng.uniform(0.22, 0.42)
    spread = rng.uniform(0.2, 0.36)
    shaft = [(0.5, 0.0), (0.5, 1.0)]
    if rng.random() < 0.5:
        return [shaft, [(0.5 - spread, head), (0.5, 0.0), (0.5 + spread, head)]]
    return [shaft, [(0.5 - spread, head), (0.5, 0.0)], [(0.5, 0.0), (0.5 + spread, head)]]


def _catmull_rom(points: np.ndarray, per_segment: int = 8) -> np.ndarray:
    """A smooth curve through ``points`` (k, 2)."""
    if len(points) < 3:
        return np.linspace(points[0], points[-1], per_segment * 2)
    p = np.concatenate([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    out.append(points[-1:])
    return np.concatenate(out)


def _hand_strokes(rng: np.random.Generator, label: str) -> list[np.ndarray]:
    """Jittered strokes of ``label`` in the unit box: a random variant, slant, aspect and wobble."""
    if label.startswith("arrow"):
        strokes = _arrow_strokes(rng)
        rot = _ROTATE[label]
    else:
        variants = _DIGITS[label]
        strokes = variants[rng.integers(len(variants))]
        rot = np.eye(2)
    slant = rng.uniform(-0.25, 0.2)
    aspect = rng.uniform(0.65, 1.15) if not label.startswith("arrow") else rng.uniform(0.8, 1.2)
    out = []
    for s in strokes:
        pts = np.asarray(s, dtype=np.float64)
        pts = pts + rng.normal(0, 0.022, pts.shape)
        curve = _catmull_rom(pts)
        curve += np.cumsum(rng.normal(0, 0.004, curve.shape), axis=0)  # a hand's slow wobble
        c = curve - 0.5
        c = c @ rot.T
        c[:, 0] = c[:, 0] * aspect + slant * -c[:, 1]
        out.append(c)
    return out


# --------------------------------------------------------------------------------------------
# Backgrounds and light
# --------------------------------------------------------------------------------------------

def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A (size, size) smooth random field in [0, 1] (bilinear upsampling of a cells×cells grid)."""
    g = Image.fromarray((rng.random((cells, cells)) * 255).astype(np.uint8))
    return np.asarray(g.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def _background(rng: np.random.Generator, kind: str, C: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(C, C, 3) float background, the ink colour to use on it, and whether it is dark."""
    yy, xx = np.mgrid[0:C, 0:C].astype(np.float32)
    dark = False
    if kind in ("paper", "ruled", "graph"):
        base = np.array([rng.uniform(0.86, 0.99), rng.uniform(0.84, 0.97), rng.uniform(0.78, 0.96)], np.float32)
    elif kind == "sticky":
        base = np.array([(0.98, 0.93, 0.45), (0.98, 0.72, 0.8), (0.65, 0.93, 0.65), (0.6, 0.85, 0.98),
                         (0.99, 0.78, 0.5)][rng.integers(5)], np.float32) * rng.uniform(0.9, 1.0)
    elif kind == "whiteboard":
        base = np.full(3, rng.uniform(0.9, 1.0), np.float32) * np.array([1, 1, rng.uniform(0.97, 1.03)], np.float32)
    elif kind == "screen":
        dark = rng.random() < 0.5
        base = (rng.uniform(0.05, 0.22, 3) if dark else rng.uniform(0.82, 0.97, 3)).astype(np.float32)
    else:
        raise ValueError(f"unknown background {kind!r}")
    bg = np.broadcast_to(base, (C, C, 3)).copy()
    if kind in ("paper", "ruled", "graph", "sticky"):
        bg *= (1 - 0.06 * _smooth(rng, C, 12))[..., None]                 # fibre
        bg += rng.normal(0, 0.012, (C, C, 1)).astype(np.float32)
    if kind == "ruled":
        gap = rng.uniform(0.09, 0.16) * C
        y0 = rng.uniform(0, gap)
        line = np.abs(((yy - y0) % gap) - gap / 2) > gap / 2 - rng.uniform(0.6, 1.4)
        blue = np.array([0.55, 0.7, 0.92], np.float32)
        bg = np.where(line[..., None], bg * 0.4 + blue * 0.6 * bg, bg)
        if rng.random() < 0.5:
            mx = rng.uniform(0.05, 0.3) * C
            margin = np.abs(xx - mx) < 0.9
            bg = np.where(margin[..., None], bg * np.array([0.95, 0.55, 0.55], np.float32), bg)
    if kind == "graph":
        gap = rng.uniform(0.05, 0.09) * C
        ox, oy = rng.uniform(0, gap, 2)
        grid = (np.abs(((xx - ox) % gap) - gap / 2) > gap / 2 - 0.7) | (np.abs(((yy - oy) % gap) - gap / 2) > gap / 2 - 0.7)
        tint = np.array([0.6, 0.85, 0.75], np.float32) if rng.random() < 0.5 else np.array([0.6, 0.75, 0.95], np.float32)
        bg = np.where(grid[..., None], bg * tint, bg)
    if kind == "whiteboard":
        smear = _smooth(rng, C, 6)
        bg -= (0.08 * np.clip(smear - 0.6, 0, 1))[..., None]
    if kind == "screen":
        bg *= (1 - 0.08 * (np.sin(yy * rng.uniform(2.0, 3.0)) > 0.6))[..., None]  # scan lines
        glow = np.exp(-((xx - rng.uniform(0, C)) ** 2 + (yy - rng.uniform(0, C)) ** 2) / (2 * (0.4 * C) ** 2))
        bg += (0.12 * glow)[..., None]
    if kind in ("screen",):
        ink = rng.uniform(0.8, 1.0, 3) if dark else rng.uniform(0.0, 0.25, 3)
    elif kind == "whiteboard":
        ink = np.array([(0.05, 0.05, 0.08), (0.1, 0.2, 0.7), (0.75, 0.1, 0.1), (0.1, 0.5, 0.2)][rng.integers(4)])
    else:
        ink = np.array([(0.05, 0.05, 0.1), (0.1, 0.15, 0.55), (0.15, 0.15, 0.15), (0.6, 0.1, 0.1),
                        (0.1, 0.35, 0.2), (0.35, 0.1, 0.5)][rng.integers(6)])
    ink = np.clip(ink + rng.normal(0, 0.04, 3), 0, 1).astype(np.float32)
    return np.clip(bg, 0, 1), ink, dark


def _lighting(rng: np.random.Generator, C: int) -> np.ndarray:
    """(C, C, 1) multiplicative light: a gradient, a smooth unevenness, and often a soft shadow."""
    yy, xx = np.mgrid[0:C, 0:C].astype(np.float32) / C
    a = rng.uniform(0, 2 * np.pi)
    light = 1.0 + rng.uniform(0, 0.35) * ((xx - 0.5) * np.cos(a) + (yy - 0.5) * np.sin(a))
    light *= 1 - rng.uniform(0, 0.2) * _smooth(rng, C, 3)
    if rng.random() < 0.6:  # a shadow: the soft edge of a hand, phone or head
        b = rng.uniform(0, 2 * np.pi)
        d = (xx - 0.5) * np.cos(b) + (yy - 0.5) * np.sin(b) - rng.uniform(0.1, 0.5)
        soft = 1 / (1 + np.exp(-d / rng.uniform(0.02, 0.08)))
        light *= 1 - rng.uniform(0.2, 0.5) * soft
    return (light * rng.uniform(0.75, 1.1))[..., None].astype(np.float32)


# --------------------------------------------------------------------------------------------
# Ink: strokes, glyphs, distractors
# --------------------------------------------------------------------------------------------

def _draw_strokes(strokes: list[np.ndarray], box: tuple[float, float, float], pen: str, width: float,
                  rng: np.random.Generator, big: int) -> np.ndarray:
    """Coverage (big, big) of strokes placed in ``box`` = (cx, cy, size) with a pen of ``width`` px."""
    im = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(im)
    cx, cy, size = box
    for s in strokes:
        pts = s * size + (cx, cy)
        if pen == "brush":  # width swells and thins along the stroke (never seen in training)
            r = width * (0.4 + 0.6 * np.abs(np.sin(np.linspace(0, np.pi * rng.uniform(1, 2.5), len(pts)))))
            dense = np.concatenate([np.linspace(pts[i], pts[i + 1], 4, endpoint=False) for i in range(len(pts) - 1)] + [pts[-1:]])
            rr = np.interp(np.linspace(0, 1, len(dense)), np.linspace(0, 1, len(r)), r)
            for (x, y), rad in zip(dense.tolist(), rr.tolist()):
                d.ellipse((x - rad, y - rad, x + rad, y + rad), fill=255)
        else:
            flat = [tuple(p) for p in pts.tolist()]
            d.line(flat, fill=255, width=max(1, int(round(width * 2))), joint="curve")
            rad = width
            for x, y in (flat[0], flat[-1]):
                d.ellipse((x - rad, y - rad, x + rad, y + rad), fill=255)
    a = np.asarray(im, dtype=np.float32) / 255.0
    if pen == "pencil":
        a *= rng.uniform(0.45, 0.8) * (0.7 + 0.3 * rng.random(a.shape, dtype=np.float32))
    return a


def _paste_glyph(glyph: np.ndarray, box: tuple[float, float, float], aspect: float, big: int) -> np.ndarray:
    cx, cy, size = box
    h = size
    w = max(2.0, size * glyph.shape[1] / glyph.shape[0] * aspect)
    if w > size * 1.1:  # wide glyphs (arrows ← →) are fitted by width instead
        h, w = h * size * 1.1 / w, size * 1.1
    g = Image.fromarray((glyph * 255).astype(np.uint8)).resize((max(1, int(w)), max(1, int(h))), Image.Resampling.BILINEAR)
    out = Image.new("L", (big, big), 0)
    out.paste(g, (int(cx - g.width / 2), int(cy - g.height / 2)))
    return np.asarray(out, dtype=np.float32) / 255.0


def _printed_arrow(label: str, box: tuple[float, float, float], rng: np.random.Generator, big: int, outline: bool) -> np.ndarray:
    head = rng.uniform(0.35, 0.5)
    w = rng.uniform(0.1, 0.2)
    up = np.array([(0, -0.5), (0.42, -0.5 + head), (w, -0.5 + head), (w, 0.5), (-w, 0.5), (-w, -0.5 + head),
                   (-0.42, -0.5 + head)])
    pts = up @ _ROTATE[label].T * box[2] + box[:2]
    im = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(im)
    poly = [tuple(p) for p in pts.tolist()]
    if outline:
        d.polygon(poly, outline=255, width=max(2, int(box[2] * 0.05)))
    else:
        d.polygon(poly, fill=255)
    return np.asarray(im, dtype=np.float32) / 255.0


def _distractors(rng: np.random.Generator, big: int, avoid: tuple[float, float, float] | None) -> np.ndarray:
    """Small marks anywhere but on the symbol: dots, short dashes, a tick, a faint scribble."""
    im = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(0, 5)):
        for _try in range(6):
            x, y = rng.uniform(0.03, 0.97, 2) * big
            if avoid is None or max(abs(x - avoid[0]), abs(y - avoid[1])) > avoid[2] * 0.62:
                break
        kind = rng.integers(3)
        s = rng.uniform(0.02, 0.07) * big
        shade = int(rng.uniform(100, 230))
        if kind == 0:
            d.ellipse((x - s / 4, y - s / 4, x + s / 4, y + s / 4), fill=shade)
        elif kind == 1:
            a = rng.uniform(0, np.pi)
            d.line((x, y, x + s * np.cos(a), y + s * np.sin(a)), fill=shade, width=max(1, int(big / 100)))
        else:
            pts = np.cumsum(rng.normal(0, s / 3, (5, 2)), axis=0) + (x, y)
            d.line([tuple(p) for p in pts.tolist()], fill=shade // 2, width=max(1, int(big / 120)), joint="curve")
    return np.asarray(im, dtype=np.float32) / 255.0


def _clutter(rng: np.random.Generator, C: int) -> np.ndarray:
    """A photo-like scene: overlapping shaded shapes of many colours ("dead leaves"), for ``nothing``."""
    im = Image.new("RGB", (C, C), tuple(int(v) for v in rng.integers(0, 256, 3)))
    d = ImageDraw.Draw(im)
    for _ in range(rng.integers(8, 30)):
        x, y = rng.uniform(-0.1, 1.1, 2) * C
        r = rng.uniform(0.04, 0.4) * C * rng.uniform(0.5, 1.5, 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            d.ellipse((x - r[0], y - r[1], x + r[0], y + r[1]), fill=colour)
        else:
            d.rectangle((x - r[0], y - r[1], x + r[0], y + r[1]), fill=colour)
    a = np.asarray(im.filter(ImageFilter.GaussianBlur(rng.uniform(0, 2.5))), dtype=np.float32) / 255.0
    return a * (0.8 + 0.4 * _smooth(rng, C, 4))[..., None]


# --------------------------------------------------------------------------------------------
# The camera
# --------------------------------------------------------------------------------------------

def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """PIL's 8 PERSPECTIVE coefficients mapping output corners ``dst`` to input points ``src``."""
    A, b = [], []
    for (x, y), (u, v) in zip(dst, src):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    return tuple(np.linalg.solve(np.asarray(A, float), np.asarray(b, float)).tolist())


def render_symbol(rng: np.random.Generator, label: str, S: int = 64, *, shifted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One image (S, S, 3) uint8 of ``label`` and its ink mask (S, S) bool, from ``rng``."""
    C = 2 * S          # scene canvas; the camera looks at part of it
    big = 2 * C        # ink is drawn at twice the canvas for smooth edges
    backgrounds = SHIFTED_BACKGROUNDS if shifted else TRAIN_BACKGROUNDS
    pens = SHIFTED_PENS if shifted else TRAIN_PENS
    fonts = _available(SHIFTED_FONTS if shifted else TRAIN_FONTS)

    # The camera's view of the scene: a rotated square, then its corners jittered (perspective).
    theta = np.deg2rad(rng.uniform(-12, 12))
    side = C / (abs(np.cos(theta)) + abs(np.sin(theta))) * rng.uniform(0.82, 0.97)
    centre = C / 2 + rng.uniform(-1, 1, 2) * (C - side * (abs(np.cos(theta)) + abs(np.sin(theta)))) / 2
    corners = np.array([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]) * side
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    quad = np.clip(corners @ rot.T + centre + rng.uniform(-0.045, 0.045, (4, 2)) * side, 0, C - 1)  # never past the scene
    inner = side / (abs(np.cos(theta)) + abs(np.sin(theta))) * 0.86  # safely inside the view

    # Where the symbol sits, in scene pixels (of the big ink canvas: ×2).
    size = rng.uniform(0.36, 0.78) * inner
    room = (inner - size) / 2
    cx, cy = centre + rng.uniform(-room, room, 2)
    box = (cx * 2, cy * 2, size * 2)

    kind = backgrounds[rng.integers(len(backgrounds))]
    bg, ink_colour, dark = _background(rng, kind, C)
    ink = np.zeros((big, big), np.float32)
    if label != NOTHING:
        printed = rng.random() < 0.4
        if printed:
            glyph = None
            if label.startswith("arrow") and rng.random() < 0.5:
                ink = _printed_arrow(label, box, rng, big, outline=shifted)
            else:
                char = _ARROW_CHARS.get(label, label)
                for _ in range(8):
                    glyph = _glyph(fonts[rng.integers(len(fonts))], char)
                    if glyph is not None:
                        break
                if glyph is None:
                    ink = _printed_arrow(label, box, rng, big, outline=shifted)
                else:
                    ink = _paste_glyph(glyph, box, rng.uniform(0.85, 1.15), big)
        else:
            pen = pens[rng.integers(len(pens))]
            width = {"ballpoint": (0.025, 0.05), "felt": (0.05, 0.08), "marker": (0.08, 0.13), "pencil": (0.03, 0.06),
                     "brush": (0.04, 0.1)}[pen]
            ink = _draw_strokes(_hand_strokes(rng, label), (box[0], box[1], box[2] * 0.9), pen,
                                rng.uniform(*width) * box[2], rng, big)
        scene_ink = ink
    else:
        scene_ink = np.zeros((big, big), np.float32)
        what = rng.integers(5)
        if what == 1:    # a letter or sign
            for _ in range(8):
                glyph = _glyph(fonts[rng.integers(len(fonts))], _LETTERS[rng.integers(len(_LETTERS))])
                if glyph is not None:
                    ink = _paste_glyph(glyph, box, rng.uniform(0.8, 1.2), big)
                    break
        elif what == 2:  # a shape that is not a symbol: square, triangle, star outline
            n = [4, 3, 10][rng.integers(3)]
            t = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, np.pi)
            r = np.where(np.arange(n) % 2, 0.22, 0.5) if n == 10 else np.full(n, 0.5)
            pts = np.stack([np.cos(t) * r, np.sin(t) * r], 1) * box[2] + box[:2]
            im = Image.new("L", (big, big), 0)
            ImageDraw.Draw(im).polygon([tuple(p) for p in pts.tolist()], outline=255, width=max(2, int(box[2] * 0.06)))
            ink = np.asarray(im, dtype=np.float32) / 255.0
        elif what == 3:  # a scribble
            pts = np.cumsum(rng.normal(0, 0.25, (rng.integers(5, 12), 2)), axis=0)
            pts = (pts - pts.mean(0)) / max(1e-6, np.abs(pts).max() * 2)
            ink = _draw_strokes([_catmull_rom(pts)], box, "felt", rng.uniform(0.02, 0.06) * box[2], rng, big)
        elif what == 4:  # a cluttered photo-like scene instead of paper
            bg = _clutter(rng, C)

    marks = _distractors(rng, big, box if label != NOTHING else None)
    alpha = np.maximum(ink, marks * 0.8)
    alpha_img = Image.fromarray((alpha * 255).astype(np.uint8)).reduce(2)
    a = np.asarray(alpha_img, dtype=np.float32)[..., None] / 255.0
    scene = bg * (1 - a) + ink_colour * a
    scene *= _lighting(rng, C)
    scene_u8 = Image.fromarray(np.clip(scene * 255, 0, 255).astype(np.uint8))
    mask_scene = Image.fromarray((scene_ink * 255).astype(np.uint8)).reduce(2)

    # Look through the camera: perspective, then down to S×S.
    dst = np.array([(0, 0), (C, 0), (C, C), (0, C)], float)
    coeffs = _perspective_coeffs(dst, quad)
    view = scene_u8.transform((C, C), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR).reduce(2)
    mask = mask_scene.transform((C, C), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR).reduce(2)

    # Optics and sensor: blur, colour cast, contrast, noise, JPEG.
    if rng.random() < 0.7:
        view = view.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.1)))
    x = np.asarray(view, dtype=np.float32) / 255.0
    gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    contrast = rng.uniform(0.75, 1.15)
    x = (x - 0.5) * contrast + 0.5
    x = x * gain + rng.uniform(-0.06, 0.06)
    x += rng.normal(0, rng.uniform(0.0, 0.035), x.shape).astype(np.float32)
    view = Image.fromarray(np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.75:
        buf = io.BytesIO()
        view.save(buf, format="JPEG", quality=int(rng.integers(25, 95)))
        buf.seek(0)
        with Image.open(buf) as jpeg:
            view = jpeg.convert("RGB")
    out, ink = np.array(view, dtype=np.uint8), np.asarray(mask) >= 96
    if rng.random() < 0.15:  # letterboxed, as a 4:3 camera frame padded to a square with its border colour
        band = int(rng.uniform(0.05, 0.15) * S)
        if band:
            rows = out if rng.random() < 0.5 else out.transpose(1, 0, 2)  # a view: bands top/bottom or left/right
            edge = np.median(np.concatenate([rows[band], rows[-band - 1]]), axis=0)
            rows[:band] = edge.astype(np.uint8)
            rows[-band:] = edge.astype(np.uint8)
            inside = np.zeros((S, S), bool)
            (inside if rows is out else inside.T)[band:-band] = True
            ink &= inside
    return out, ink


def make_clutter(n: int, seed: int = 0, image_size: int = 64) -> np.ndarray:
    """``n`` photo-like scenes (n, S, S, 3) uint8 of overlapping shaded shapes and no symbol.

    Out-of-domain images for calibrating the "I don't know" rule of models that have never seen
    such scenes (their own stream, seeded: never the same draws as the symbols splits).
    """
    ss = np.random.SeedSequence(seed, spawn_key=(2000,))
    out = np.empty((n, image_size, image_size, 3), np.uint8)
    for i, child in enumerate(ss.spawn(n)):
        rng = np.random.default_rng(child)
        scene = Image.fromarray((np.clip(_clutter(rng, 2 * image_size), 0, 1) * 255).astype(np.uint8))
        out[i] = np.asarray(scene.reduce(2))
    return out


def _render_many(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    seeds, labels, image_size, shifted = args
    images = np.empty((len(labels), image_size, image_size, 3), np.uint8)
    masks = np.empty((len(labels), image_size, image_size), bool)
    for i, (s, y) in enumerate(zip(seeds, labels)):
        images[i], masks[i] = render_symbol(np.random.default_rng(s), SYMBOL_CLASSES[y], image_size, shifted=shifted)
    return images, masks


def make_symbols(n: int, split: str = "train", seed: int = 0, image_size: int = 64, workers: int = 1):
    """``n`` images of :data:`SYMBOL_CLASSES`, balanced, deterministic from ``(n, split, seed, image_size)``.

    Returns ``(images (n, S, S, 3) uint8, labels (n,) int64, masks (n, S, S) bool)``. ``split`` is
    one of :data:`SPLITS`; each has its own random stream, and ``"shifted"`` draws only on the
    held-out backgrounds, typefaces and pen. Each image has its own seed, so ``workers`` processes
    give exactly the same images as one (about 10 ms an image on one core).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if n < 0:
        raise ValueError("n must be ≥ 0")
    if image_size < 16:
        raise ValueError("image_size must be ≥ 16")
    ss = np.random.SeedSequence(seed, spawn_key=(1000 + _STREAM[split],))
    k = len(SYMBOL_CLASSES)
    labels = np.random.default_rng(ss).permutation(np.arange(n) % k).astype(np.int64)
    seeds = ss.spawn(n)
    chunk = 500
    jobs = [(seeds[i:i + chunk], labels[i:i + chunk].tolist(), image_size, split == "shifted") for i in range(0, n, chunk)]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_render_many, jobs)
    else:
        parts = [_render_many(j) for j in jobs]
    images = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, image_size, image_size, 3), np.uint8)
    masks = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, image_size, image_size), bool)
    return images, labels, masks
