"""A hostile-input-safe image loader: whatever a student uploads becomes an RGB image or a clear message.

``load_image(source)`` accepts bytes, a path or a binary file object and returns a fully loaded
``PIL.Image.Image`` in mode ``"RGB"``, or raises :class:`ImageError`, whose message can be shown to
the student as it is. It never raises anything else (a bug in Pillow, a damaged file, a
decompression bomb, an exotic pixel format all end up as an ``ImageError``).

What it guards against:

* **Format by content, not name.** The format is decided from the file's bytes by Pillow, restricted
  to an allowlist (:data:`ALLOWED_FORMATS`); a ``.jpg`` that is really a PNG loads, a PDF called
  ``cat.png`` is refused with a message saying what it looks like.
* **Size.** At most ``max_bytes`` are ever read (for paths and seekable streams the size is checked
  before reading anything).
* **Decompression bombs.** The pixel count declared in the header is checked *before* decoding.
  JPEGs over the limit are decoded at 1/2, 1/4 or 1/8 scale by the JPEG decoder itself (DCT
  scaling, via ``Image.draft``), so the full-size bitmap never exists; other formats are refused.
  Pillow's global settings (``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``) are
  never changed.
* **Pixel formats.** 16-bit and float images are rescaled by their actual value range (not clipped
  to white); transparent images are composited onto ``background``; CMYK, palette, 1-bit, LAB, HSV
  and the rest are converted to RGB.
* **Photos.** The EXIF orientation is applied (a damaged EXIF block is tolerated); of animated or
  multi-page files only the first frame is used.

:func:`load_image_info` also returns an :class:`ImageInfo` whose ``notes`` are sentences the app
can show (``"This GIF has 12 frames; only the first is used."``).

Nothing here imports streamlit.
"""

from __future__ import annotations

import io
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageColor, ImageOps

__all__ = [
    "ALLOWED_FORMATS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "MAX_SIDE", "ImageError", "ImageInfo",
    "heif_supported", "load_image", "load_image_info",
]

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 20 * MB
DEFAULT_MAX_PIXELS = 40_000_000
#: Longest side accepted, whatever the pixel count: a 1×40,000,000 "image" is not a picture.
MAX_SIDE = 65_535

_BASE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP",
                 "TIFF": "TIFF", "HEIF": "HEIC"}

# Brands of the ISO base media file format ("ftyp" box) used by HEIF/HEIC photos.
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1",
                b"mif2", b"miaf")
_AVIF_BRANDS = (b"avif", b"avis")


def _register_heif() -> bool:
    try:
        import pillow_heif  # noqa: PLC0415 (optional dependency)

        pillow_heif.register_heif_opener()
    except Exception:  # not installed, or a broken build: HEIC is then refused with a clear message
        return False
    return True


_HEIF = _register_heif()

#: The Pillow formats this loader opens (others, such as PSD or ICO, are refused).
ALLOWED_FORMATS: tuple[str, ...] = _BASE_FORMATS + (("HEIF",) if _HEIF else ())
_ACCEPTED = "PNG, JPEG, WebP, GIF, BMP, TIFF" + (" or HEIC" if _HEIF else "")


def heif_supported() -> bool:
    """Whether HEIC/HEIF photos can be opened (pillow-heif is installed and working)."""
    return _HEIF


class ImageError(ValueError):
    """The image could not be used. The message says what went wrong and what to do, for a student."""


@dataclass
class ImageInfo:
    """What :func:`load_image_info` found and did, with ``notes`` the app can show as they are."""

    format: str
    original_size: tuple[int, int]
    original_mode: str
    n_frames: int = 1
    took_first_frame: bool = False
    exif_rotated: bool = False
    downscaled: bool = False
    notes: list[str] = field(default_factory=list)


def load_image(
    source: Any,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Any = (255, 255, 255),
) -> Image.Image:
    """An RGB, fully loaded image from bytes, a path or a binary file object; :class:`ImageError` otherwise."""
    return load_image_info(source, max_bytes=max_bytes, max_pixels=max_pixels, background=background)[0]


def load_image_info(
    source: Any,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Any = (255, 255, 255),
) -> tuple[Image.Image, ImageInfo]:
    """Like :func:`load_image`, and also an :class:`ImageInfo` describing the file and what was done to it.

    ``max_bytes`` caps the file size, ``max_pixels`` the decoded pixel count (JPEGs above it are
    decoded at a reduced scale, other formats refused), ``background`` is the colour transparent
    pixels are composited onto (an RGB tuple or a colour name). A stream is read from its current
    position, which is restored afterwards.
    """
    try:
        bg = _background(background)
        data = _read_source(source, int(max_bytes))
        with warnings.catch_warnings():
            # Pillow's DecompressionBombWarning (we check sizes ourselves) and its metadata warnings
            # ("Corrupt EXIF data", ...) are not for the student.
            warnings.simplefilter("ignore")
            return _load(data, int(max_pixels), bg)
    except ImageError:
        raise
    except MemoryError as e:
        raise ImageError(
            "There was not enough memory to decode this image. Please upload a smaller image "
            "(for example, resized to a few thousand pixels wide)."
        ) from e
    except Image.DecompressionBombError as e:
        raise ImageError(_bomb_message(None, max_pixels, str(e))) from e
    except Exception as e:  # anything Pillow or a plugin can throw on hostile bytes
        raise ImageError(_DAMAGED) from e


# ---------------------------------------------------------------------------------------------------
# Reading the bytes


def _fmt_mb(n: float) -> str:
    v = n / MB
    return f"{v:.0f} MB" if v >= 10 or v == int(v) else f"{v:.1f} MB" if v >= 0.1 else f"{v:.2g} MB"


def _too_big(size: int | None, max_bytes: int) -> ImageError:
    what = f"The file is {_fmt_mb(size)}" if size is not None else "The file is too large"
    return ImageError(
        f"{what}; the limit is {_fmt_mb(max_bytes)}. Please upload a smaller image "
        "(for example, resized or saved as JPEG)."
    )


def _read_source(source: Any, max_bytes: int) -> bytes:
    if max_bytes < 1:
        raise ImageError("The file size limit must be at least 1 byte.")
    if isinstance(source, (bytes, bytearray, memoryview)):
        n = source.nbytes if isinstance(source, memoryview) else len(source)
        if n > max_bytes:
            raise _too_big(n, max_bytes)
        return source.tobytes() if isinstance(source, memoryview) else bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return _read_path(Path(source), max_bytes)
    if hasattr(source, "read"):
        return _read_stream(source, max_bytes)
    raise ImageError(
        f"Cannot read an image from a {type(source).__name__}; give the file's bytes, its path or an open binary file."
    )


def _read_path(path: Path, max_bytes: int) -> bytes:
    name = path.name or str(path)
    if len(name) > 60:
        name = name[:40] + "…" + name[-15:]
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise ImageError(f"The file {name!r} does not exist. Please check the name and try again.") from e
    except (OSError, ValueError) as e:  # permissions, a name with a NUL byte or too long, ...
        raise ImageError(f"The file {name!r} could not be opened ({getattr(e, 'strerror', None) or e}).") from e
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{name!r} is a folder, not an image file. Please choose an image file inside it.")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{name!r} is not a regular file. Please choose an image file.")
    if st.st_size > max_bytes:
        raise _too_big(st.st_size, max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ImageError(f"The file {name!r} could not be read ({e.strerror or e}).") from e
    if len(data) > max_bytes:  # it grew since stat()
        raise _too_big(None, max_bytes)
    return data


def _read_stream(f: Any, max_bytes: int) -> bytes:
    start = None
    try:
        if f.seekable():
            start = f.tell()
            end = f.seek(0, io.SEEK_END)
            f.seek(start)
            if end - start > max_bytes:
                raise _too_big(end - start, max_bytes)
    except ImageError:
        raise
    except Exception:  # not seekable after all (pipes, sockets, odd wrappers): read at most max_bytes + 1
        start = None
    try:
        data = f.read(max_bytes + 1)
    except Exception as e:
        raise ImageError(f"The uploaded file could not be read ({e}). Please try again.") from e
    finally:
        if start is not None:
            try:
                f.seek(start)
            except Exception:
                pass
    if isinstance(data, str):
        raise ImageError("The file was opened as text; images must be opened in binary mode ('rb').")
    if data is None:
        data = b""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"Reading the file gave a {type(data).__name__}, not bytes; please give an image file.")
    data = bytes(data)
    if len(data) > max_bytes:
        raise _too_big(None, max_bytes)
    return data


def _background(background: Any) -> tuple[int, int, int]:
    try:
        if isinstance(background, str):
            rgb = ImageColor.getrgb(background)[:3]
        else:
            rgb = tuple(int(c) for c in background)
            if len(rgb) == 4:
                rgb = rgb[:3]
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise ValueError
    except Exception:
        raise ImageError(f"The background colour {background!r} is not an RGB colour such as (255, 255, 255).") from None
    return rgb  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Identifying the format


def _describe_non_image(data: bytes) -> str:
    """What unreadable bytes look like, as the end of a sentence ('' if nothing recognisable)."""
    head = data[:64]
    if _is_heif(data):
        return ""
    if head.startswith(b"%PDF"):
        return "it looks like a PDF document"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "it looks like a ZIP archive (or a Word/Excel/PowerPoint file)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "it looks like a Python pickle, which is never opened here for safety"
    if head.startswith((b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!")):
        return "it looks like a compressed archive"
    if head.startswith(b"8BPS"):
        return "it looks like a Photoshop (PSD) file"
    if head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return "it looks like an AVIF image, which is not supported here"
        return "it looks like a video or another media container"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower():
        return "it looks like an SVG drawing, which is not supported here"
    if stripped.startswith((b"<!doctype html", b"<html")):
        return "it looks like a web page (HTML), not an image; save the image itself rather than the page"
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text):
        return "it looks like a text file"
    return ""


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ImageError(f"The file is empty (0 bytes). Please choose an image file ({_ACCEPTED}).")
    if _is_heif(data) and not _HEIF:
        raise ImageError(
            "HEIC photos are not supported here; on an iPhone or Mac, export the photo as JPEG or PNG "
            "(or set Settings → Camera → Formats → Most Compatible) and upload that."
        )
    try:
        return Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.UnidentifiedImageError as e:
        what = _describe_non_image(data)
        if not what and _looks_like_allowed(data):
            raise ImageError(_DAMAGED) from e
        what = f" ({what})" if what else ""
        raise ImageError(
            f"This file is not an image in a supported format{what}. Accepted formats: {_ACCEPTED}. "
            "Please upload a picture saved in one of these formats."
        ) from e


def _looks_like_allowed(data: bytes) -> bool:
    """Whether the bytes start like an allowed format that Pillow nevertheless could not identify (damage)."""
    return data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")) or (
        data.startswith(b"RIFF") and data[8:12] == b"WEBP"
    ) or _is_heif(data)


_DAMAGED = (
    "The file seems to be cut off or damaged, so the image could not be decoded. "
    "Please re-save or re-download it and try again."
)


# ---------------------------------------------------------------------------------------------------
# Decoding


def _fmt_mp(pixels: float) -> str:
    mp = pixels / 1e6
    if mp >= 10:
        s = f"{mp:,.0f}"
    else:
        s = f"{mp:.1f}".rstrip("0").rstrip(".")
    return f"{s} megapixels" if mp >= 0.1 else f"{pixels:,.0f} pixels"


def _bomb_message(size: tuple[int, int] | None, max_pixels: int, pillow_message: str = "") -> str:
    if size is not None:
        what = f"The image is {size[0]}×{size[1]} pixels ({_fmt_mp(size[0] * size[1])})"
    else:
        m = re.search(r"\((\d+) pixels\)", pillow_message)
        what = f"The image has {_fmt_mp(int(m.group(1)))}" if m else "The image is far too large"
    return f"{what}; the limit is {_fmt_mp(max_pixels)}. Please resize it and try again."


def _load(data: bytes, max_pixels: int, bg: tuple[int, int, int]) -> tuple[Image.Image, ImageInfo]:
    if max_pixels < 1:
        raise ImageError("The pixel limit must be at least 1 pixel.")
    im = _open(data)
    try:
        return _decode(im, data, max_pixels, bg)
    finally:
        im.close()


def _decode(im: Image.Image, data: bytes, max_pixels: int, bg: tuple[int, int, int]) -> tuple[Image.Image, ImageInfo]:
    fmt = _FORMAT_NAMES.get(im.format or "", im.format or "unknown")
    w, h = im.size
    info = ImageInfo(format=fmt, original_size=(w, h), original_mode=im.mode)

    # --- dimensions, from the header, before any pixel is decoded
    if w <= 0 or h <= 0:
        raise ImageError(f"The image claims to be {w}×{h} pixels, which is not a picture; the file is probably damaged.")
    if w * h > max_pixels:
        if im.format in ("JPEG", "MPO"):
            _draft(im, max_pixels)
        if im.size[0] * im.size[1] > max_pixels:
            raise ImageError(_bomb_message((w, h), max_pixels))
        info.downscaled = True
        info.notes.append(
            f"The image is {w}×{h} pixels ({_fmt_mp(w * h)}), above the {_fmt_mp(max_pixels)} limit, "
            f"so it was decoded at reduced size ({im.size[0]}×{im.size[1]})."
        )
    if max(im.size) > MAX_SIDE:
        raise ImageError(
            f"The image is {w}×{h} pixels; sides longer than {MAX_SIDE:,} pixels are not supported. "
            "Please crop or resize it and try again."
        )

    # --- frames
    try:
        n_frames = int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # a damaged later frame: the first may still be fine
        n_frames = 1
    try:
        if im.tell() != 0:
            im.seek(0)
    except Exception:
        im = _reopen_first(data, max_pixels)
    info.n_frames = max(1, n_frames)
    if n_frames > 1:
        info.took_first_frame = True
        unit = "pages" if fmt == "TIFF" else "pictures" if fmt in ("JPEG", "HEIC") else "frames"
        info.notes.append(f"This {fmt} has {n_frames} {unit}; only the first is used.")

    # --- pixels
    try:
        im.load()
    except ImageError:
        raise
    except MemoryError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(_bomb_message(None, max_pixels, str(e))) from e
    except Exception as e:  # truncated data, broken stream, unsupported codec variant, ...
        raise ImageError(_DAMAGED) from e
    if im.size[0] * im.size[1] > max_pixels or min(im.size) <= 0:  # a plugin changed its mind while decoding
        raise ImageError(_bomb_message(im.size, max_pixels))

    # --- EXIF orientation
    out: Image.Image = im
    try:
        orientation = im.getexif().get(0x0112)
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            out = ImageOps.exif_transpose(im)
            info.exif_rotated = True
            info.notes.append("The photo was turned upright using its camera orientation (EXIF) tag.")
    except Exception:
        out = im
        info.notes.append("The photo's orientation data (EXIF) is damaged, so it is shown as stored; it may be sideways.")

    rgb = _to_rgb(out, bg, info)
    if rgb is im:  # never hand back the object tied to the (in-memory) file
        rgb = im.copy()
    rgb.load()
    return rgb, info


def _draft(im: Image.Image, max_pixels: int) -> None:
    """Ask the JPEG decoder for the smallest DCT scale (1/2, 1/4, 1/8) that fits in max_pixels."""
    w, h = im.size
    for scale in (2, 4, 8):
        if math.ceil(w / scale) * math.ceil(h / scale) <= max_pixels:
            break
    # draft() picks the largest power of two <= min(w // tw, h // th); asking for size // scale gives >= scale.
    im.draft("RGB", (max(1, w // scale), max(1, h // scale)))


def _reopen_first(data: bytes, max_pixels: int) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    if im.size[0] * im.size[1] > max_pixels and im.format in ("JPEG", "MPO"):
        _draft(im, max_pixels)
    return im


_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;16LS", "I;16BS", "I;32", "I;32L", "I;32B", "I", "F")


def _to_rgb(im: Image.Image, bg: tuple[int, int, int], info: ImageInfo) -> Image.Image:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in _HIGH_DEPTH or mode.startswith(("I;", "F;")):
        return _rescale_high_depth(im, info).convert("RGB")
    if mode == "La":  # premultiplied grey + alpha: Pillow cannot convert it directly
        l, a = im.split()
        im, mode = Image.merge("RGBa", (l, l, l, a)), "RGBa"
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa") or (
        "transparency" in im.info and im.info["transparency"] is not None and mode in ("P", "L", "RGB", "1")
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        if alpha.getextrema()[0] < 255:
            base = Image.new("RGBA", rgba.size, bg + (255,))
            info.notes.append(f"Transparent areas were filled with the background colour {_colour_name(bg)}.")
            return Image.alpha_composite(base, rgba).convert("RGB")
        return rgba.convert("RGB")
    if mode == "CMYK":
        info.notes.append("This CMYK (print) image was converted to RGB; colours may look slightly different.")
    return im.convert("RGB")


def _colour_name(bg: tuple[int, int, int]) -> str:
    return {(255, 255, 255): "(white)", (0, 0, 0): "(black)"}.get(bg, f"RGB{bg}")


def _rescale_high_depth(im: Image.Image, info: ImageInfo) -> Image.Image:
    """16-bit, 32-bit and float images as 8-bit grey, stretched from their actual value range."""
    try:
        arr = np.asarray(im)
    except Exception:
        arr = np.asarray(im.convert("F" if im.mode.startswith("F") else "I"))
    a = arr.astype(np.float64, copy=False)
    finite = np.isfinite(a)
    if not finite.any():
        out = np.zeros(a.shape, dtype=np.uint8)
        info.notes.append("This image holds no finite values, so it is shown black.")
        return Image.fromarray(out)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    kind = "floating-point" if im.mode.startswith("F") else "16-bit" if "16" in im.mode else "32-bit"
    if hi > lo:
        scaled = (np.where(finite, a, lo) - lo) * (255.0 / (hi - lo))
        info.notes.append(
            f"This {kind} greyscale image was stretched from its value range {lo:g}–{hi:g} to 0–255 for display."
        )
    else:  # constant: keep an 8-bit-range value as it is, show anything else as mid grey
        value = lo * 255.0 if kind == "floating-point" and 0.0 <= lo <= 1.0 else lo if 0.0 <= lo <= 255.0 else 128.0
        scaled = np.full(a.shape, value)
        info.notes.append(f"This {kind} greyscale image has a single value ({lo:g}) everywhere.")
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(out)
