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
can show (``"This GIF has 12 frames; only the first is used."``), and whose ``messages`` are the same
notes as ``(template, params)`` pairs for translation. Every ``ImageError`` likewise carries a
``code``, an English ``template`` and its ``params`` (:class:`vit.errors.UserError`).

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

from .errors import Message, UserError
from .i18n import N_

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
_ACCEPTED: Any = (Message(N_("{formats} or {last}"), formats="PNG, JPEG, WebP, GIF, BMP, TIFF", last="HEIC")
                  if _HEIF else "PNG, JPEG, WebP, GIF, BMP, TIFF")


def heif_supported() -> bool:
    """Whether HEIC/HEIF photos can be opened (pillow-heif is installed and working)."""
    return _HEIF


class ImageError(UserError, ValueError):
    """The image could not be used. The message says what went wrong and what to do, for a student.

    ``ImageError(code, template, **params)``: ``code`` is a stable identifier ("too_many_pixels"),
    ``template`` the English message with ``{placeholders}`` and ``params`` their values;
    ``str(e)`` is the English text (see :class:`vit.errors.UserError`).
    """


@dataclass
class ImageInfo:
    """What :func:`load_image_info` found and did, with ``notes`` the app can show as they are.

    ``messages`` holds the same notes as ``(template, params)`` pairs (English templates, marked for
    translation), for showing them in another language; ``notes[i] == template.format(**params)``.
    """

    format: str
    original_size: tuple[int, int]
    original_mode: str
    n_frames: int = 1
    took_first_frame: bool = False
    exif_rotated: bool = False
    downscaled: bool = False
    notes: list[str] = field(default_factory=list)
    messages: list[tuple[str, dict]] = field(default_factory=list)

    def note(self, template: str, **params: Any) -> None:
        """Add a note: its English text to ``notes`` and its template and params to ``messages``."""
        self.notes.append(Message(template, **params).english())
        self.messages.append((template, params))


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
            "out_of_memory",
            N_("There was not enough memory to decode this image. Please upload a smaller image "
               "(for example, resized to a few thousand pixels wide)."),
        ) from e
    except Image.DecompressionBombError as e:
        raise _bomb_error(None, max_pixels, str(e)) from e
    except Exception as e:  # anything Pillow or a plugin can throw on hostile bytes
        raise _damaged() from e


# ---------------------------------------------------------------------------------------------------
# Reading the bytes


def _fmt_mb(n: float) -> str:
    """A byte count as a number of MB, as precise as it needs to be ("20", "1.5", "0.0012")."""
    v = n / MB
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}" if v >= 0.1 else f"{v:.2g}"


def _too_big(size: int | None, max_bytes: int) -> ImageError:
    if size is None:
        return ImageError(
            "file_too_large",
            N_("The file is too large; the limit is {limit} MB. Please upload a smaller image "
               "(for example, resized or saved as JPEG)."),
            limit=_fmt_mb(max_bytes),
        )
    return ImageError(
        "file_too_large",
        N_("The file is {size} MB; the limit is {limit} MB. Please upload a smaller image "
           "(for example, resized or saved as JPEG)."),
        size=_fmt_mb(size), limit=_fmt_mb(max_bytes),
    )


def _read_source(source: Any, max_bytes: int) -> bytes:
    if max_bytes < 1:
        raise ImageError("bad_byte_limit", N_("The file size limit must be at least 1 byte."))
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
        "unreadable_source",
        N_("Cannot read an image from a {kind}; give the file's bytes, its path or an open binary file."),
        kind=type(source).__name__,
    )


def _read_path(path: Path, max_bytes: int) -> bytes:
    name = path.name or str(path)
    if len(name) > 60:
        name = name[:40] + "…" + name[-15:]
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise ImageError("file_not_found", N_("The file {name!r} does not exist. Please check the name and try again."),
                         name=name) from e
    except (OSError, ValueError) as e:  # permissions, a name with a NUL byte or too long, ...
        raise ImageError("file_unopenable", N_("The file {name!r} could not be opened ({reason})."),
                         name=name, reason=str(getattr(e, "strerror", None) or e)) from e
    if stat.S_ISDIR(st.st_mode):
        raise ImageError("is_folder", N_("{name!r} is a folder, not an image file. Please choose an image file inside it."),
                         name=name)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not_regular_file", N_("{name!r} is not a regular file. Please choose an image file."), name=name)
    if st.st_size > max_bytes:
        raise _too_big(st.st_size, max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ImageError("file_unreadable", N_("The file {name!r} could not be read ({reason})."),
                         name=name, reason=str(e.strerror or e)) from e
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
        raise ImageError("upload_unreadable", N_("The uploaded file could not be read ({reason}). Please try again."),
                         reason=str(e)) from e
    finally:
        if start is not None:
            try:
                f.seek(start)
            except Exception:
                pass
    if isinstance(data, str):
        raise ImageError("text_mode", N_("The file was opened as text; images must be opened in binary mode ('rb')."))
    if data is None:
        data = b""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError("not_bytes", N_("Reading the file gave a {kind}, not bytes; please give an image file."),
                         kind=type(data).__name__)
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
        raise ImageError("bad_background",
                         N_("The background colour {colour} is not an RGB colour such as (255, 255, 255)."),
                         colour=repr(background)) from None
    return rgb  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Identifying the format


def _describe_non_image(data: bytes) -> Message | str:
    """What unreadable bytes look like, as the end of a sentence ('' if nothing recognisable)."""
    head = data[:64]
    if _is_heif(data):
        return ""
    if head.startswith(b"%PDF"):
        return Message(N_("it looks like a PDF document"))
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return Message(N_("it looks like a ZIP archive (or a Word/Excel/PowerPoint file)"))
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return Message(N_("it looks like a Python pickle, which is never opened here for safety"))
    if head.startswith((b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!")):
        return Message(N_("it looks like a compressed archive"))
    if head.startswith(b"8BPS"):
        return Message(N_("it looks like a Photoshop (PSD) file"))
    if head[4:8] == b"ftyp":
        if head[8:12] in _AVIF_BRANDS:
            return Message(N_("it looks like an AVIF image, which is not supported here"))
        return Message(N_("it looks like a video or another media container"))
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower():
        return Message(N_("it looks like an SVG drawing, which is not supported here"))
    if stripped.startswith((b"<!doctype html", b"<html")):
        return Message(N_("it looks like a web page (HTML), not an image; save the image itself rather than the page"))
    sample = data[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text and sum(c.isprintable() or c in "\r\n\t" for c in text) >= 0.95 * len(text):
        return Message(N_("it looks like a text file"))
    return ""


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ImageError("empty_file", N_("The file is empty (0 bytes). Please choose an image file ({formats})."),
                         formats=_ACCEPTED)
    if _is_heif(data) and not _HEIF:
        raise ImageError(
            "heic_unsupported",
            N_("HEIC photos are not supported here; on an iPhone or Mac, export the photo as JPEG or PNG "
               "(or set Settings → Camera → Formats → Most Compatible) and upload that."),
        )
    try:
        return Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.UnidentifiedImageError as e:
        what = _describe_non_image(data)
        if not what and _looks_like_allowed(data):
            raise _damaged() from e
        if what:
            raise ImageError(
                "not_an_image",
                N_("This file is not an image in a supported format ({looks_like}). Accepted formats: {formats}. "
                   "Please upload a picture saved in one of these formats."),
                looks_like=what, formats=_ACCEPTED,
            ) from e
        raise ImageError(
            "not_an_image",
            N_("This file is not an image in a supported format. Accepted formats: {formats}. "
               "Please upload a picture saved in one of these formats."),
            formats=_ACCEPTED,
        ) from e


def _looks_like_allowed(data: bytes) -> bool:
    """Whether the bytes start like an allowed format that Pillow nevertheless could not identify (damage)."""
    return data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")) or (
        data.startswith(b"RIFF") and data[8:12] == b"WEBP"
    ) or _is_heif(data)


def _damaged() -> ImageError:
    return ImageError(
        "damaged",
        N_("The file seems to be cut off or damaged, so the image could not be decoded. "
           "Please re-save or re-download it and try again."),
    )


# ---------------------------------------------------------------------------------------------------
# Decoding


def _fmt_mp(pixels: float) -> Message:
    """A pixel count in words: "40 megapixels", "1.5 megapixels", "256 pixels"."""
    mp = pixels / 1e6
    if mp < 0.1:
        return Message(N_("{pixels:,} pixels"), pixels=int(round(pixels)))
    if mp >= 10:
        value: float = int(round(mp))
    else:
        value = round(mp, 1)
        value = int(value) if value == int(value) else value
    return Message(N_("{mp:,} megapixels"), mp=value)


def _bomb_error(size: tuple[int, int] | None, max_pixels: int, pillow_message: str = "") -> ImageError:
    limit = _fmt_mp(max_pixels)
    if size is not None:
        return ImageError(
            "too_many_pixels",
            N_("The image is {w}×{h} pixels ({size}); the limit is {limit}. Please resize it and try again."),
            w=size[0], h=size[1], size=_fmt_mp(size[0] * size[1]), limit=limit,
        )
    m = re.search(r"\((\d+) pixels\)", pillow_message)
    if m:
        return ImageError(
            "too_many_pixels",
            N_("The image has {size}; the limit is {limit}. Please resize it and try again."),
            size=_fmt_mp(int(m.group(1))), limit=limit,
        )
    return ImageError(
        "too_many_pixels",
        N_("The image is far too large; the limit is {limit}. Please resize it and try again."),
        limit=limit,
    )


def _load(data: bytes, max_pixels: int, bg: tuple[int, int, int]) -> tuple[Image.Image, ImageInfo]:
    if max_pixels < 1:
        raise ImageError("bad_pixel_limit", N_("The pixel limit must be at least 1 pixel."))
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
        raise ImageError("bad_dimensions",
                         N_("The image claims to be {w}×{h} pixels, which is not a picture; the file is probably damaged."),
                         w=w, h=h)
    if w * h > max_pixels:
        if im.format in ("JPEG", "MPO"):
            _draft(im, max_pixels)
        if im.size[0] * im.size[1] > max_pixels:
            raise _bomb_error((w, h), max_pixels)
        info.downscaled = True
        info.note(
            N_("The image is {w}×{h} pixels ({size}), above the {limit} limit, "
               "so it was decoded at reduced size ({new_w}×{new_h})."),
            w=w, h=h, size=_fmt_mp(w * h), limit=_fmt_mp(max_pixels), new_w=im.size[0], new_h=im.size[1],
        )
    if max(im.size) > MAX_SIDE:
        raise ImageError(
            "side_too_long",
            N_("The image is {w}×{h} pixels; sides longer than {max_side:,} pixels are not supported. "
               "Please crop or resize it and try again."),
            w=w, h=h, max_side=MAX_SIDE,
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
        if fmt == "TIFF":
            info.note(N_("This {format} has {n} pages; only the first is used."), format=fmt, n=n_frames)
        elif fmt in ("JPEG", "HEIC"):
            info.note(N_("This {format} has {n} pictures; only the first is used."), format=fmt, n=n_frames)
        else:
            info.note(N_("This {format} has {n} frames; only the first is used."), format=fmt, n=n_frames)

    # --- pixels
    try:
        im.load()
    except ImageError:
        raise
    except MemoryError:
        raise
    except Image.DecompressionBombError as e:
        raise _bomb_error(None, max_pixels, str(e)) from e
    except Exception as e:  # truncated data, broken stream, unsupported codec variant, ...
        raise _damaged() from e
    if im.size[0] * im.size[1] > max_pixels or min(im.size) <= 0:  # a plugin changed its mind while decoding
        raise _bomb_error(im.size, max_pixels)

    # --- EXIF orientation
    out: Image.Image = im
    try:
        orientation = im.getexif().get(0x0112)
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            out = ImageOps.exif_transpose(im)
            info.exif_rotated = True
            info.note(N_("The photo was turned upright using its camera orientation (EXIF) tag."))
    except Exception:
        out = im
        info.note(N_("The photo's orientation data (EXIF) is damaged, so it is shown as stored; it may be sideways."))

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
            info.note(N_("Transparent areas were filled with the background colour {colour}."), colour=_colour_name(bg))
            return Image.alpha_composite(base, rgba).convert("RGB")
        return rgba.convert("RGB")
    if mode == "CMYK":
        info.note(N_("This CMYK (print) image was converted to RGB; colours may look slightly different."))
    return im.convert("RGB")


def _colour_name(bg: tuple[int, int, int]) -> Message | str:
    if bg == (255, 255, 255):
        return Message(N_("(white)"))
    if bg == (0, 0, 0):
        return Message(N_("(black)"))
    return f"RGB{bg}"


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
        info.note(N_("This image holds no finite values, so it is shown black."))
        return Image.fromarray(out)
    lo, hi = float(a[finite].min()), float(a[finite].max())
    floating = im.mode.startswith("F")
    kind = Message(N_("floating-point")) if floating else Message(N_("16-bit")) if "16" in im.mode else Message(N_("32-bit"))
    if hi > lo:
        scaled = (np.where(finite, a, lo) - lo) * (255.0 / (hi - lo))
        info.note(N_("This {kind} greyscale image was stretched from its value range {lo:g}–{hi:g} to 0–255 for display."),
                  kind=kind, lo=lo, hi=hi)
    else:  # constant: keep an 8-bit-range value as it is, show anything else as mid grey
        value = lo * 255.0 if floating and 0.0 <= lo <= 1.0 else lo if 0.0 <= lo <= 255.0 else 128.0
        scaled = np.full(a.shape, value)
        info.note(N_("This {kind} greyscale image has a single value ({lo:g}) everywhere."), kind=kind, lo=lo)
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(out)
