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
* **Memory.** Before decoding, the memory the whole decode needs is estimated from the header
  (:func:`estimate_memory`: pixels × bytes per pixel, the decoder's own buffers such as a progressive
  JPEG's coefficients, a WebP's canvases or a TIFF strip, and the working copies of rotating,
  compositing and rescaling); a file over ``max_memory`` is refused, or a JPEG decoded at a reduced
  scale. WebP canvases and icons are checked from the raw bytes, before Pillow opens them (Pillow
  allocates a WebP's canvas, and decodes an icon, while opening it).
* **CPU.** A JPEG's scans (SOS segments) are counted from its bytes before decoding, and more than
  ``max_scans`` are refused (a progressive photo has about 10; libjpeg walks every block in every
  scan, so 50,000 tiny scans take minutes). Frames and pages are counted by walking the file's own
  structure, at most :data:`FRAME_PROBE` of them, never with Pillow's ``n_frames`` (which reads every
  page of a TIFF). :mod:`vit.decoding` adds a time limit, a cap on concurrent decodes and a killable
  worker process.
* **Pixel formats.** 16-bit and float images are rescaled by their actual value range (not clipped
  to white), in float32 and in bands of rows; transparent images are composited onto ``background``,
  also in bands; CMYK, palette, 1-bit, LAB, HSV and the rest are converted to RGB. Icons (ICO) give
  their largest picture within the limits.
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
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageColor

from .errors import Message, UserError
from .i18n import N_

__all__ = [
    "ALLOWED_FORMATS", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_MEMORY", "DEFAULT_MAX_PIXELS", "FRAME_PROBE", "MAX_JPEG_SCANS",
    "MAX_JPEG_SIDE", "MAX_SIDE", "ImageError", "ImageInfo", "JpegLayout", "estimate_memory", "heif_supported",
    "jpeg_layout", "load_image", "load_image_info",
]

MB = 1024 * 1024
DEFAULT_MAX_BYTES = 20 * MB
DEFAULT_MAX_PIXELS = 40_000_000
#: Longest side accepted, whatever the pixel count: a 1×40,000,000 "image" is not a picture.
MAX_SIDE = 65_535
#: libjpeg refuses JPEGs with a side longer than this (JPEG_MAX_DIMENSION).
MAX_JPEG_SIDE = 65_500
#: Memory one decode may use, in bytes: the pixels, the decoder's buffers and every working copy.
DEFAULT_MAX_MEMORY = 256 * MB
#: Scans (SOS segments) a JPEG may have: progressive photos have about 10, baseline ones 1.
MAX_JPEG_SCANS = 100
#: Frames or pages counted at most; a file with more is reported as having "at least" this many.
FRAME_PROBE = 100

_BASE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "ICO")
_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "GIF": "GIF", "BMP": "BMP",
                 "TIFF": "TIFF", "HEIF": "HEIC", "ICO": "ICO"}

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

#: The Pillow formats this loader opens (others, such as PSD, are refused).
ALLOWED_FORMATS: tuple[str, ...] = _BASE_FORMATS + (("HEIF",) if _HEIF else ())
_ACCEPTED: Any = (Message(N_("{formats} or {last}"), formats="PNG, JPEG, WebP, GIF, BMP, TIFF, ICO", last="HEIC")
                  if _HEIF else "PNG, JPEG, WebP, GIF, BMP, TIFF, ICO")


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
    n_frames: int = 1  #: frames or pages; a lower bound when ``n_frames_exact`` is False
    n_frames_exact: bool = True  #: False when counting stopped at :data:`FRAME_PROBE`
    took_first_frame: bool = False
    exif_rotated: bool = False
    downscaled: bool = False
    estimated_bytes: int = 0  #: the memory the decode was estimated to need (:func:`estimate_memory`)
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
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    max_scans: int | None = MAX_JPEG_SCANS,
) -> Image.Image:
    """An RGB, fully loaded image from bytes, a path or a binary file object; :class:`ImageError` otherwise."""
    return load_image_info(source, max_bytes=max_bytes, max_pixels=max_pixels, background=background,
                           max_memory=max_memory, max_scans=max_scans)[0]


def load_image_info(
    source: Any,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Any = (255, 255, 255),
    max_memory: int | None = DEFAULT_MAX_MEMORY,
    max_scans: int | None = MAX_JPEG_SCANS,
) -> tuple[Image.Image, ImageInfo]:
    """Like :func:`load_image`, and also an :class:`ImageInfo` describing the file and what was done to it.

    ``max_bytes`` caps the file size, ``max_pixels`` the decoded pixel count (JPEGs above it are
    decoded at a reduced scale, other formats refused), ``background`` is the colour transparent
    pixels are composited onto (an RGB tuple or a colour name). ``max_memory`` caps the memory the
    decode is estimated to need, in bytes (JPEGs above it are decoded at a reduced scale, other
    formats refused; ``None``: no cap), ``max_scans`` the number of scans of a JPEG (``None``: no
    cap). A stream is read from its current position, which is restored afterwards.

    This decodes in the calling thread, without a time limit: for uploads on a server use
    :func:`vit.decoding.decode_upload`, which runs this in a worker process it can stop.
    """
    return _load_info(source, max_bytes=max_bytes, max_pixels=max_pixels, background=background,
                      max_memory=max_memory, max_scans=max_scans)


def _load_info(source: Any, *, max_bytes: int, max_pixels: int, background: Any, max_memory: int | None,
               max_scans: int | None, grey: bool = False) -> tuple[Image.Image, ImageInfo]:
    """:func:`load_image_info`; with ``grey``, a grey picture comes back in mode "L" rather than "RGB"
    (the decoding worker sends it so, a third of the bytes, and the app makes it RGB)."""
    try:
        bg = _background(background)
        data = _read_source(source, int(max_bytes))
        with warnings.catch_warnings():
            # Pillow's DecompressionBombWarning (we check sizes ourselves) and its metadata warnings
            # ("Corrupt EXIF data", ...) are not for the student.
            warnings.simplefilter("ignore")
            return _load(data, int(max_pixels), bg, None if max_memory is None else int(max_memory),
                         None if max_scans is None else int(max_scans), grey)
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


_ICO_MAGIC = b"\x00\x00\x01\x00"


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
    return data.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", _ICO_MAGIC)) or (
        data.startswith(b"RIFF") and data[8:12] == b"WEBP"
    ) or _is_heif(data)


def _damaged() -> ImageError:
    return ImageError(
        "damaged",
        N_("The file seems to be cut off or damaged, so the image could not be decoded. "
           "Please re-save or re-download it and try again."),
    )


# ---------------------------------------------------------------------------------------------------
# What the bytes say, before Pillow sees them


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# The start of the next marker after entropy-coded data: 0xFF followed by anything but a stuffed
# 0x00, a restart marker (0xD0–0xD7) or another 0xFF (fill bytes before the marker).
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")
_MARKER_STEPS = 200_000  # a real JPEG has a few dozen segments; a walk stops here whatever it found


@dataclass(frozen=True)
class JpegLayout:
    """What a JPEG's markers say, read by :func:`jpeg_layout` without decoding anything."""

    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]  #: (horizontal, vertical) sampling factors of each component
    progressive: bool
    scans: int  #: SOS segments counted (counting stops one past the ``max_scans`` it was given)
    first_scan_components: int

    @property
    def buffered(self) -> bool:
        """Whether libjpeg keeps the DCT coefficients of the whole image while decoding (progressive or
        multi-scan JPEGs: every scan adds to them), rather than a row of blocks at a time."""
        return self.progressive or self.scans > 1 or 0 < self.first_scan_components < len(self.sampling)

    def coefficient_bytes(self) -> int:
        """The memory of those coefficients (64 × 2 bytes a block), at full size whatever the DCT scale."""
        if not self.buffered or not self.sampling:
            return 0
        h_max = max(h for h, _v in self.sampling)
        v_max = max(v for _h, v in self.sampling)
        blocks = 0
        for h, v in self.sampling:
            columns = math.ceil(math.ceil(self.width * h / h_max) / 8)
            blocks += columns * math.ceil(math.ceil(self.height * v / v_max) / 8)
        return blocks * 128


def jpeg_layout(data: bytes, max_scans: int | None = None) -> JpegLayout | None:
    """Walk a JPEG's markers (not its pixels): size, sampling, progressive or not, and its scans.

    Counting stops once ``max_scans`` is exceeded, so a file with 50,000 scans costs no more than one
    with ``max_scans + 1``. ``None`` when the bytes are not a JPEG with a frame header (SOF) before
    its first scan; the decoder then says what is wrong.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    n = len(data)
    pos, steps, scans, first = 2, 0, 0, 0
    sof: tuple[int, int, int, tuple] | None = None
    while pos + 4 <= n and steps < _MARKER_STEPS:
        steps += 1
        if data[pos] != 0xFF:  # junk between segments: libjpeg skips it (with a warning)
            pos = data.find(b"\xff", pos)
            if pos < 0:
                break
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        if marker == 0xD9:  # end of image (an MPO's further pictures are not walked)
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 2:
            break
        end = pos + 2 + length
        if marker in _SOF_MARKERS and sof is None:
            seg = data[pos + 4 : end]
            if len(seg) < 6:
                break
            height, width, nf = (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
            sampling = tuple(((seg[7 + 3 * i] >> 4) or 1, (seg[7 + 3 * i] & 15) or 1)
                             for i in range(nf) if 8 + 3 * i <= len(seg))
            sof = (marker, width, height, sampling)
        elif marker == 0xDA:
            if sof is None:
                break
            scans += 1
            if scans == 1 and pos + 4 < n:
                first = data[pos + 4]
            if max_scans is not None and scans > max_scans:
                break
            found = _NEXT_MARKER.search(data, end)  # skip the entropy-coded data that follows
            if found is None:
                break
            pos = found.start()
            continue
        pos = end
    if sof is None:
        return None
    marker, width, height, sampling = sof
    return JpegLayout(width, height, sampling, marker in _PROGRESSIVE_SOF, scans, first)


def _webp_canvas(data: bytes) -> tuple[int, int] | None:
    """A WebP's canvas size from its first chunk (as libwebp reads it), or None."""
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return (int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF)
    return None


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Pillow's mode for a PNG's (colour type, bit depth)
_PNG_MODES = {(0, 1): "1", (0, 2): "L", (0, 4): "L", (0, 8): "L", (0, 16): "I;16", (2, 8): "RGB", (2, 16): "RGB",
              (3, 1): "P", (3, 2): "P", (3, 4): "P", (3, 8): "P", (4, 8): "LA", (4, 16): "LA", (6, 8): "RGBA",
              (6, 16): "RGBA"}


@dataclass(frozen=True)
class _IconEntry:
    at: int  # where its 16-byte directory entry is
    size: tuple[int, int]  # the real size, from the embedded PNG or bitmap header (not the directory)
    bpp: int
    mode: str
    decoder: int  # bytes Pillow needs to decode it, beyond the picture itself


def _icon_entries(data: bytes) -> list[_IconEntry]:
    """An icon's pictures, with the sizes their own headers give (the directory only says up to 256)."""
    out: list[_IconEntry] = []
    count = int.from_bytes(data[4:6], "little") if len(data) >= 6 else 0
    for i in range(count):
        at = 6 + 16 * i
        if at + 16 > len(data):
            break
        bpp = int.from_bytes(data[at + 6 : at + 8], "little")
        offset = int.from_bytes(data[at + 12 : at + 16], "little")
        if offset < 22 or offset + 26 > len(data):  # (the rebuilt one-entry directory ends at byte 22)
            continue
        if data[offset : offset + 8] == _PNG_MAGIC:
            if data[offset + 12 : offset + 16] != b"IHDR":
                continue
            w, h, depth, colour = struct.unpack(">IIBB", data[offset + 16 : offset + 26])
            out.append(_IconEntry(at, (w, h), bpp, _PNG_MODES.get((colour, depth), "RGBA"), 0))
        else:  # a bitmap (DIB) twice as tall as the picture: colours, then a 1-bit mask
            w, h = struct.unpack("<ii", data[offset + 4 : offset + 12])
            bits = int.from_bytes(data[offset + 14 : offset + 16], "little")
            # Pillow reads it as RGB or P, makes it RGBA and reads the alpha bytes or mask on the side
            out.append(_IconEntry(at, (w, abs(h) // 2), bits or bpp, "RGBA", 9 * max(0, w) * (abs(h) // 2)))
    return out


# --- frames and pages, counted from the file's own structure, never more than `limit` -----------------

_WALK_STEPS = 200_000


def _tiff_pages(data: bytes, limit: int) -> tuple[int, bool]:
    """Pages (IFDs) of a TIFF, following the chain of offsets: (count, whether that is all of them)."""
    head = data[:4]
    if head in (b"II*\x00", b"MM\x00*"):
        big = False
    elif head in (b"II+\x00", b"MM\x00+"):
        big = True
    else:
        return 1, True
    e = "<" if head[:2] == b"II" else ">"
    count_fmt, entry, next_fmt = (e + "Q", 20, e + "Q") if big else (e + "H", 12, e + "I")
    count_size, next_size = struct.calcsize(count_fmt), struct.calcsize(next_fmt)
    try:
        offset = struct.unpack(next_fmt, data[8:16] if big else data[4:8])[0]
    except struct.error:
        return 1, True
    seen: set[int] = set()
    pages = 0
    while offset and offset not in seen and offset + count_size <= len(data):
        if pages >= limit:
            return pages, False
        seen.add(offset)
        pages += 1
        entries = struct.unpack(count_fmt, data[offset : offset + count_size])[0]
        at = offset + count_size + entries * entry
        if at + next_size > len(data):
            break
        offset = struct.unpack(next_fmt, data[at : at + next_size])[0]
    return max(1, pages), True


def _skip_sub_blocks(data: bytes, pos: int, budget: list[int]) -> int:
    while pos < len(data) and budget[0] > 0:
        budget[0] -= 1
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return len(data) if budget[0] > 0 else -1


def _gif_frames(data: bytes, limit: int) -> tuple[int, bool]:
    """Frames (image descriptors) of a GIF, skipping their data: (count, whether that is all of them)."""
    if not data.startswith((b"GIF87a", b"GIF89a")) or len(data) < 13:
        return 1, True
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    frames, budget = 0, [_WALK_STEPS]
    while 0 <= pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            pos = _skip_sub_blocks(data, pos + 2, budget)
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if frames >= limit:
                return frames, False
            if pos + 10 > len(data):
                break
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1, budget)
            frames += 1
        else:
            break
    if pos < 0:  # too many tiny sub-blocks to walk: there may be more frames
        return max(1, frames), frames <= 1
    return max(1, frames), True


def _webp_frames(data: bytes, limit: int) -> tuple[int, bool]:
    """Frames (ANMF chunks) of a WebP: (count, whether that is all of them)."""
    if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[12:16] != b"VP8X":
        return 1, True
    pos, frames, steps = 12, 0, 0
    while pos + 8 <= len(data) and steps < _WALK_STEPS:
        steps += 1
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"ANMF":
            if frames >= limit:
                return frames, False
            frames += 1
        pos += 8 + size + (size & 1)
    return max(1, frames), pos + 8 > len(data) or frames <= 1


def _count_frames(im: Image.Image, data: bytes) -> tuple[int, bool]:
    """(frames, exact) without ever walking more than :data:`FRAME_PROBE` of them."""
    fmt = im.format
    if fmt == "TIFF":
        return _tiff_pages(data, FRAME_PROBE)
    if fmt == "GIF":
        return _gif_frames(data, FRAME_PROBE)
    if fmt == "WEBP":
        return _webp_frames(data, FRAME_PROBE)
    if fmt in ("PNG", "MPO", "HEIF"):  # a number in the header (acTL, the MP index, the HEIF container)
        try:
            n = int(getattr(im, "n_frames", 1) or 1)
        except Exception:
            return 1, True
        return (FRAME_PROBE, False) if n > FRAME_PROBE else (max(1, n), True)
    return 1, True


# ---------------------------------------------------------------------------------------------------
# Memory


_BAND_PIXELS = 1 << 20  # rows are converted, composited and rescaled about a megapixel at a time
_SLACK = 16 * MB  # what a decode needs whatever the size: the interpreter's and the allocator's own
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;16LS", "I;16BS", "I;32", "I;32L", "I;32B", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel: 1 byte for 1/L/P, 2 for 16-bit, 4 for everything else (RGB too)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16") or mode.startswith("BGR;1"):
        return 2
    return 4


def _is_high_depth(mode: str) -> bool:
    return mode in _HIGH_DEPTH or mode.startswith(("I;", "F;"))


def estimate_memory(
    mode: str, size: tuple[int, int], *, decoder: int = 0, rotate: bool = False, transparency: bool = False,
) -> int:
    """The peak memory, in bytes, of decoding a ``size`` image stored in Pillow ``mode`` to RGB.

    The peak of these stages, each holding what is alive at that moment:

    * decoding: the picture (``size`` × bytes per pixel of ``mode``) and the decoder's own buffers
      (``decoder``: a progressive JPEG's coefficients, a WebP's canvases, a TIFF strip);
    * turning it upright (``rotate``, from the EXIF orientation): the picture twice;
    * converting to RGB: the picture and the RGB result (4 bytes a pixel); with transparency
      (an alpha mode, or ``transparency`` for a colour key), a band of rows at a time besides; for
      16-bit and float pictures, a band of float32 rows and an 8-bit grey copy, then grey and RGB;

    and 16 MB for the interpreter's and the allocator's own needs.

    >>> estimate_memory("RGB", (4000, 3000)) // 2**20  # a 12-megapixel photo: 4 bytes a pixel
    61
    """
    w, h = size
    px = max(0, w) * max(0, h)
    picture = _bytes_per_pixel(mode) * px
    band = min(px, max(_BAND_PIXELS, w))
    stages = [picture + decoder, 2 * picture if rotate else 0]
    if _is_high_depth(mode):
        stages += [picture + px + 16 * band, 5 * px]
    elif mode in _ALPHA_MODES or (transparency and mode in ("P", "L", "RGB", "1")):
        stages.append(picture + 4 * px + 10 * band)
    elif mode == "RGB":
        stages.append(picture)
    else:
        stages.append(picture + 4 * px)
    return max(stages) + _SLACK


def _tiff_buffer(im: Image.Image, size: tuple[int, int], n_bytes: int) -> int:
    """The strip or tile buffer Pillow's libtiff decoder allocates, and its copy of the file."""
    try:
        tags = im.tag_v2  # type: ignore[attr-defined]
        w, h = size
        bits_tag = tags.get(258, (8,))
        bits_each = list(bits_tag) if isinstance(bits_tag, (tuple, list)) else [int(bits_tag)]
        samples = int(tags.get(277, len(bits_each)) or 1)
        bits = max(int(b) for b in bits_each) * max(samples, len(bits_each))
        if 322 in tags and 323 in tags:
            tw, th = int(tags[322]), int(tags[323])
            buffer = max(math.ceil(tw * bits / 8), 4 * tw) * th
        else:
            rows = min(int(tags.get(278, h) or h), h)
            buffer = max(math.ceil(w * bits / 8), 4 * w) * rows
    except Exception:  # odd tags: assume the worst, a buffer as big as the picture
        buffer = 4 * size[0] * size[1]
    return buffer + 2 * n_bytes


def _decoder_bytes(im: Image.Image, data: bytes, jpeg: JpegLayout | None, size: tuple[int, int]) -> int:
    """Memory the format's decoder needs beyond the picture it fills (see :func:`estimate_memory`)."""
    px = size[0] * size[1]
    fmt = im.format
    if fmt in ("JPEG", "MPO"):
        full_w, full_h = (jpeg.width, jpeg.height) if jpeg else im.size
        if jpeg is not None:
            coefficients = jpeg.coefficient_bytes()
        elif im.info.get("progressive") or im.info.get("progression"):
            coefficients = 128 * math.ceil(full_w / 8) * math.ceil(full_h / 8) * len(im.getbands())
        else:
            coefficients = 0
        return coefficients + 64 * full_w  # and a few rows of samples
    if fmt == "WEBP":  # libwebp's canvas and its copy of the previous one, and the bytes handed to Pillow
        return 12 * px
    if fmt == "TIFF":
        return _tiff_buffer(im, size, len(data))
    if fmt == "BMP":
        return px if im.info.get("compression") in (1, 2) else 0  # RLE is expanded into a bytearray first
    if fmt == "GIF":
        return px
    if fmt == "HEIF":
        return 8 * px  # libheif's planes and the bytes handed to Pillow
    return 0  # PNG keeps two rows; an icon was decoded while opening (its entry checked before that)


def _may_rotate(im: Image.Image, data: bytes) -> bool:
    """Whether the EXIF orientation may turn the picture (known before decoding, except for PNG)."""
    if im.format == "PNG":  # Pillow reads a PNG's EXIF after decoding when it follows the pixels
        return b"eXIf" in data or b"exif" in data or b"Orientation" in data
    try:
        return im.getexif().get(0x0112) in (2, 3, 4, 5, 6, 7, 8)
    except Exception:
        return False


def _need(im: Image.Image, data: bytes, jpeg: JpegLayout | None, size: tuple[int, int], rotate: bool) -> int:
    return estimate_memory(im.mode, size, decoder=_decoder_bytes(im, data, jpeg, size), rotate=rotate,
                           transparency=im.info.get("transparency") is not None)


def _memory_error(size: tuple[int, int], need: int, max_memory: int) -> ImageError:
    return ImageError(
        "too_much_memory",
        N_("Decoding this {w}×{h} image would need about {need} MB of memory; the limit is {limit} MB. "
           "Please resize it (for example, to a few thousand pixels wide) and try again."),
        w=size[0], h=size[1], need=_fmt_mb(need), limit=_fmt_mb(max_memory),
    )


def _check_webp_canvas(data: bytes, max_pixels: int, max_memory: int | None) -> None:
    """Pillow has libwebp allocate the canvas while opening the file: check its size first."""
    canvas = _webp_canvas(data)
    if canvas is None:
        return
    w, h = canvas
    if w * h > max_pixels:
        raise _bomb_error(canvas, max_pixels)
    need = estimate_memory("RGBA", canvas, decoder=12 * w * h)
    if max_memory is not None and need > max_memory:
        raise _memory_error(canvas, need, max_memory)


def _choose_icon(data: bytes, max_pixels: int, max_memory: int | None) -> tuple[bytes, tuple | None]:
    """The icon with only its largest picture within the limits (Pillow decodes it while opening).

    Returns the rebuilt bytes and a note ``(template, params)`` when a larger picture was skipped.
    """
    entries = sorted(_icon_entries(data), key=lambda e: (e.size[0] * e.size[1], e.bpp), reverse=True)
    problem: ImageError | None = None
    skipped: tuple[int, int] | None = None
    for e in entries:
        w, h = e.size
        if w <= 0 or h <= 0:
            continue
        if w * h > max_pixels:
            problem = problem or _bomb_error(e.size, max_pixels)
        elif max(w, h) > MAX_SIDE:
            problem = problem or ImageError(
                "side_too_long",
                N_("The image is {w}×{h} pixels; sides longer than {max_side:,} pixels are not supported. "
                   "Please crop or resize it and try again."),
                w=w, h=h, max_side=MAX_SIDE)
        else:
            need = estimate_memory(e.mode, e.size, decoder=e.decoder, transparency=True)
            if max_memory is None or need <= max_memory:
                note = None
                if skipped is not None:
                    note = (N_("This icon's largest picture ({big_w}×{big_h}) is over the limits, so a smaller "
                               "one ({w}×{h}) was used."), {"big_w": skipped[0], "big_h": skipped[1], "w": w, "h": h})
                one = data[:4] + b"\x01\x00" + data[e.at : e.at + 16] + data[22:]
                return one, note
            problem = problem or _memory_error(e.size, need, max_memory)
        skipped = skipped or e.size
    if problem is not None:
        raise problem
    return data, None  # nothing readable in the directory: Pillow says what is wrong


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


def _load(data: bytes, max_pixels: int, bg: tuple[int, int, int], max_memory: int | None,
          max_scans: int | None, grey: bool = False) -> tuple[Image.Image, ImageInfo]:
    if max_pixels < 1:
        raise ImageError("bad_pixel_limit", N_("The pixel limit must be at least 1 pixel."))
    if max_memory is not None and max_memory < 1:
        raise ImageError("bad_memory_limit", N_("The memory limit must be at least 1 byte."))
    jpeg, icon_note = None, None
    if data.startswith(b"\xff\xd8\xff"):
        jpeg = jpeg_layout(data, max_scans)
        if jpeg is not None and max_scans is not None and jpeg.scans > max_scans:
            raise ImageError(
                "too_many_scans",
                N_("This JPEG is stored in more than {limit} scans (a photo has about 10), so decoding it would "
                   "take far too long. Please save it again as an ordinary JPEG or as PNG and try again."),
                limit=max_scans,
            )
    elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        _check_webp_canvas(data, max_pixels, max_memory)
    elif data.startswith(_ICO_MAGIC):
        data, icon_note = _choose_icon(data, max_pixels, max_memory)
    im = _open(data)
    try:
        picture, orientation, info = _decode(im, data, jpeg, max_pixels, max_memory)
    finally:
        im.close()
    del im  # the decoder's buffers (a WebP's canvases, ...) go now, before the working copies are made
    if icon_note is not None:
        info.note(icon_note[0], **icon_note[1])
    holder = [picture]
    del picture  # _finish takes the only reference, so each step can free the previous version
    return _finish(holder, orientation, info, bg, grey), info


def _decode(im: Image.Image, data: bytes, jpeg: JpegLayout | None, max_pixels: int,
            max_memory: int | None) -> tuple[Image.Image, int | None, ImageInfo]:
    """Check ``im`` from its header, decode its first frame and detach it from the file.

    Returns the picture (in its own mode), the EXIF orientation to apply (or None) and the info.
    """
    fmt = _FORMAT_NAMES.get(im.format or "", im.format or "unknown")
    w, h = im.size
    info = ImageInfo(format=fmt, original_size=(w, h), original_mode=im.mode)
    opened = im

    # --- dimensions, from the header, before any pixel is decoded
    if w <= 0 or h <= 0:
        raise ImageError("bad_dimensions",
                         N_("The image claims to be {w}×{h} pixels, which is not a picture; the file is probably damaged."),
                         w=w, h=h)
    is_jpeg = im.format in ("JPEG", "MPO")
    if is_jpeg and max(w, h) > MAX_JPEG_SIDE:
        raise _side_error(w, h, MAX_JPEG_SIDE)

    # --- memory, from the header: the smallest DCT scale (JPEG only) within both limits
    rotate = _may_rotate(im, data)
    scale, need = _choose_scale(im, data, jpeg, max_pixels, max_memory, rotate)
    if scale > 1:
        _draft(im, scale)
        need = _need(im, data, jpeg, im.size, rotate)
    if im.size[0] * im.size[1] > max_pixels:
        raise _bomb_error((w, h), max_pixels)
    if max_memory is not None and need > max_memory:
        raise _memory_error((w, h), need, max_memory)
    info.estimated_bytes = need
    if im.size != (w, h):
        info.downscaled = True
        if w * h > max_pixels:
            info.note(
                N_("The image is {w}×{h} pixels ({size}), above the {limit} limit, "
                   "so it was decoded at reduced size ({new_w}×{new_h})."),
                w=w, h=h, size=_fmt_mp(w * h), limit=_fmt_mp(max_pixels), new_w=im.size[0], new_h=im.size[1],
            )
        else:
            info.note(
                N_("The image is {w}×{h} pixels; decoding it at full size would need about {need} MB of memory, "
                   "above the {limit} MB limit, so it was decoded at reduced size ({new_w}×{new_h})."),
                w=w, h=h, need=_fmt_mb(_need(im, data, jpeg, (w, h), rotate)), limit=_fmt_mb(max_memory or 0),
                new_w=im.size[0], new_h=im.size[1],
            )
    if max(im.size) > MAX_SIDE:
        raise _side_error(w, h, MAX_SIDE)

    # --- frames, counted from the file's structure (at most FRAME_PROBE of them)
    n_frames, exact = _count_frames(im, data)
    try:
        if im.tell() != 0:
            im.seek(0)
    except Exception:
        im = _reopen_first(data, scale)
    info.n_frames, info.n_frames_exact = n_frames, exact
    if n_frames > 1:
        info.took_first_frame = True
        if exact:
            if fmt == "TIFF":
                info.note(N_("This {format} has {n} pages; only the first is used."), format=fmt, n=n_frames)
            elif fmt in ("JPEG", "HEIC"):
                info.note(N_("This {format} has {n} pictures; only the first is used."), format=fmt, n=n_frames)
            else:
                info.note(N_("This {format} has {n} frames; only the first is used."), format=fmt, n=n_frames)
        elif fmt == "TIFF":
            info.note(N_("This {format} has at least {n} pages; only the first is used."), format=fmt, n=n_frames)
        elif fmt in ("JPEG", "HEIC"):
            info.note(N_("This {format} has at least {n} pictures; only the first is used."), format=fmt, n=n_frames)
        else:
            info.note(N_("This {format} has at least {n} frames; only the first is used."), format=fmt, n=n_frames)

    try:
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

        # --- EXIF orientation (applied by _finish)
        orientation = None
        try:
            value = im.getexif().get(0x0112)
            if value in (2, 3, 4, 5, 6, 7, 8):
                orientation = value
        except Exception:
            info.note(N_("The photo's orientation data (EXIF) is damaged, so it is shown as stored; it may be sideways."))

        # --- the picture on its own: same pixels (no copy), no file, no decoder
        picture = im._new(im.im)
    finally:
        if im is not opened:
            im.close()
    return picture, orientation, info


def _side_error(w: int, h: int, max_side: int) -> ImageError:
    return ImageError(
        "side_too_long",
        N_("The image is {w}×{h} pixels; sides longer than {max_side:,} pixels are not supported. "
           "Please crop or resize it and try again."),
        w=w, h=h, max_side=max_side,
    )


def _choose_scale(im: Image.Image, data: bytes, jpeg: JpegLayout | None, max_pixels: int, max_memory: int | None,
                  rotate: bool) -> tuple[int, int]:
    """(DCT scale, memory needed): 1, or for a JPEG the smallest of 1/2, 1/4, 1/8 within both limits.

    When none fits, the scale returned is the largest that fits the pixel limit (or 8), and the caller
    reports the limit that is still exceeded.
    """
    w, h = im.size
    scales = (1, 2, 4, 8) if im.format in ("JPEG", "MPO") else (1,)
    fallback = None
    for s in scales:
        size = (math.ceil(w / s), math.ceil(h / s))
        need = _need(im, data, jpeg, size, rotate)
        if size[0] * size[1] > max_pixels:
            continue
        if max_memory is None or need <= max_memory:
            return s, need
        fallback = fallback or (s, need)
    if fallback is not None:
        return fallback
    smallest = (math.ceil(w / scales[-1]), math.ceil(h / scales[-1]))
    return scales[-1], _need(im, data, jpeg, smallest, rotate)


def _draft(im: Image.Image, scale: int) -> None:
    """Ask the JPEG decoder to decode at 1/``scale`` (2, 4 or 8) by DCT scaling."""
    w, h = im.size
    # draft() picks the largest power of two <= min(w // tw, h // th); asking for size // scale gives >= scale.
    im.draft("RGB", (max(1, w // scale), max(1, h // scale)))


def _reopen_first(data: bytes, scale: int) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    if scale > 1 and im.format in ("JPEG", "MPO"):
        _draft(im, scale)
    return im


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _finish(holder: list[Image.Image], orientation: int | None, info: ImageInfo,
            bg: tuple[int, int, int], grey: bool = False) -> Image.Image:
    """Upright, then RGB (or "L" for a grey picture, with ``grey``). ``holder`` holds the only reference
    to the decoded picture, which is taken out: each step replaces ``picture``, so at most two versions
    of it are alive at once."""
    picture = holder.pop()
    if orientation is not None:
        picture = picture.transpose(_TRANSPOSE[orientation])
        info.exif_rotated = True
        info.note(N_("The photo was turned upright using its camera orientation (EXIF) tag."))
    if _is_high_depth(picture.mode):
        picture = _rescale_high_depth(picture, info)
    if not (grey and picture.mode == "L" and picture.info.get("transparency") is None):
        picture = _to_rgb(picture, bg, info)
    picture.load()
    return picture


def _to_rgb(im: Image.Image, bg: tuple[int, int, int], info: ImageInfo) -> Image.Image:
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if _is_high_depth(mode):
        return _rescale_high_depth(im, info).convert("RGB")
    has_alpha = mode in _ALPHA_MODES or (
        "transparency" in im.info and im.info["transparency"] is not None and mode in ("P", "L", "RGB", "1")
    )
    if has_alpha:
        return _composite(im, bg, info)
    if mode == "CMYK":
        info.note(N_("This CMYK (print) image was converted to RGB; colours may look slightly different."))
    return im.convert("RGB")


def _composite(im: Image.Image, bg: tuple[int, int, int], info: ImageInfo) -> Image.Image:
    """``im`` over the background colour, a band of rows at a time (no full-size RGBA copy is made)."""
    w, h = im.size
    out = Image.new("RGB", (w, h), bg)
    rows = max(1, _BAND_PIXELS // w)
    see_through = False
    for top in range(0, h, rows):
        box = (0, top, w, min(h, top + rows))
        band = im.crop(box)
        if band.mode == "La":  # premultiplied grey + alpha: Pillow cannot convert it directly
            grey, alpha = band.split()
            band = Image.merge("RGBa", (grey, grey, grey, alpha))
        if band.mode != "RGBA":
            band = band.convert("RGBA")
        alpha = band.getchannel("A")
        if alpha.getextrema()[0] < 255:
            see_through = True
        out.paste(band, box, alpha)
    if see_through:
        info.note(N_("Transparent areas were filled with the background colour {colour}."), colour=_colour_name(bg))
    return out


def _colour_name(bg: tuple[int, int, int]) -> Message | str:
    if bg == (255, 255, 255):
        return Message(N_("(white)"))
    if bg == (0, 0, 0):
        return Message(N_("(black)"))
    return f"RGB{bg}"


def _rows(im: Image.Image, top: int, bottom: int) -> np.ndarray:
    """Rows ``top:bottom`` of a 16-bit, 32-bit or float picture as an array of its own dtype."""
    band = im.crop((0, top, im.size[0], bottom))
    try:
        return np.asarray(band)
    except Exception:
        return np.asarray(band.convert("F" if im.mode.startswith("F") else "I"))


def _rescale_high_depth(im: Image.Image, info: ImageInfo) -> Image.Image:
    """16-bit, 32-bit and float images as 8-bit grey, stretched from their actual value range.

    Two passes over bands of rows (about a megapixel each): the range, then the scaled values in
    float32. Besides the picture, only the 8-bit result and one band are in memory.
    """
    w, h = im.size
    rows = max(1, _BAND_PIXELS // max(1, w))
    floating = im.mode.startswith("F")
    lo = hi = None
    for top in range(0, h, rows):
        a = _rows(im, top, min(h, top + rows))
        if floating:
            finite = np.isfinite(a)
            if not finite.all():
                a = a[finite]
        if a.size:
            a_lo, a_hi = float(a.min()), float(a.max())
            lo = a_lo if lo is None else min(lo, a_lo)
            hi = a_hi if hi is None else max(hi, a_hi)
    out = np.empty((h, w), dtype=np.uint8)
    if lo is None or hi is None:
        out.fill(0)
        info.note(N_("This image holds no finite values, so it is shown black."))
        return Image.fromarray(out)
    kind = Message(N_("floating-point")) if floating else Message(N_("16-bit")) if "16" in im.mode else Message(N_("32-bit"))
    if hi > lo:
        scale = 255.0 / (hi - lo)  # in float64: the range of float32 values can overflow float32
        gain, offset = np.float32(scale), np.float32(lo * scale)
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            a = _rows(im, top, bottom).astype(np.float32)
            if floating:
                a[~np.isfinite(a)] = lo
            a *= gain
            a -= offset
            np.rint(a, out=a)
            np.clip(a, 0, 255, out=a)
            out[top:bottom] = a
        info.note(N_("This {kind} greyscale image was stretched from its value range {lo:g}–{hi:g} to 0–255 for display."),
                  kind=kind, lo=lo, hi=hi)
    else:  # constant: keep an 8-bit-range value as it is, show anything else as mid grey
        value = lo * 255.0 if floating and 0.0 <= lo <= 1.0 else lo if 0.0 <= lo <= 255.0 else 128.0
        out.fill(int(np.clip(np.rint(value), 0, 255)))
        info.note(N_("This {kind} greyscale image has a single value ({lo:g}) everywhere."), kind=kind, lo=lo)
    return Image.fromarray(out)
