"""Small, valid image files that are expensive to decode: what one student could upload to hurt a server.

``hostile_files()`` returns ``{name with extension: bytes}``. Every file is built here, byte by byte
where Pillow would not write it (struct, zlib, numpy), nothing is downloaded; the set is built once per
process (about a second) and cached. ``tests/test_hostile_images.py`` checks that each one is refused
with an ``ImageError`` or decoded within the memory budget and 2 s; the classroom load test uploads them
too.

=============================  ====================================================================
``progressive-50000-scans.jpg``  4096×4096 grey progressive JPEG: one DC scan, then 50,000 AC scans of a
                                 few bytes each (an end-of-band run over all 262,144 blocks). libjpeg
                                 walks every block in every scan: a minute or more of CPU from 2 MB.
``grey16-6300.png``              6300×6300 16-bit grey PNG (a horizontal ramp; every row after the first
                                 is "same as above"): ~80 KB that decode to 79 MB, and that a float64
                                 rescale turned into 1.4 GB.
``float-6300.tif``               6300×6300 32-bit float TIFF, deflate, 64-row strips that all point to the
                                 same compressed bytes: 159 MB of pixels from ~40 KB.
``rgba-6300.png``                6300×6300 RGBA PNG with a transparent ramp: 159 MB of pixels, plus every
                                 copy that compositing onto a background makes.
``animated-canvas.webp``         a two-frame 1×1 animated WebP whose canvas (VP8X) is patched to
                                 6300×6300: libwebp allocates and clears two canvases, Pillow copies one.
``pages-100000.tif``             100,000 pages (IFDs) that all share one 8×8 strip: counting the pages
                                 with Pillow's ``n_frames`` reads every one.
``wide-1000x6.png``, ``line-40000x1.png``, ``line-65501x2.png``, ``line-40000x1.jpg``
                                 extreme aspect ratios that must load;
``line-65501x2.jpg``             a JPEG header wider than JPEG's 65,500-pixel limit (libjpeg refuses it),
                                 to be refused with a clear message;
``icon-png-bomb.ico``            an icon whose directory says 16×16 but whose embedded PNG header says
                                 60000×60000 (Pillow decodes ICOs when opening them).
=============================  ====================================================================
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

__all__ = ["hostile_files"]

_CACHE: dict[str, bytes] = {}

SIDE = 6300  # 6300² = 39.7 megapixels: just under the loader's 40-megapixel limit


# --- PNG ------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _zlib_repeated(first: bytes, row: bytes, count: int) -> bytes:
    """The zlib stream of ``first + row * count``, fast: a block of rows is deflated once and its bytes
    repeated (each block is self-contained and ends byte-aligned, so the blocks can follow each other)."""
    def raw(data: bytes) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)

    per_block = max(1, (1 << 20) // len(row))
    blocks, rest = divmod(count, per_block)
    block = row * per_block
    body = raw(first) + raw(block) * blocks + (raw(row * rest) if rest else b"")
    adler = zlib.adler32(first)
    for _ in range(blocks):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(row * rest, adler)
    return b"\x78\xda" + body + b"\x03\x00" + struct.pack(">I", adler)  # 03 00: the final, empty block


def _png(width: int, height: int, bit_depth: int, colour_type: int, first_row: bytes) -> bytes:
    """A PNG whose first row is ``first_row`` and every other row is filter 2 ("Up") with zero deltas."""
    idat = _zlib_repeated(b"\x00" + first_row, b"\x02" + bytes(len(first_row)), height - 1)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def _grey16_png(side: int) -> bytes:
    ramp = np.linspace(0, 4000, side).astype(">u2").tobytes()
    return _png(side, side, 16, 0, ramp)


def _rgba_png(side: int) -> bytes:
    x = np.linspace(0, 255, side).astype(np.uint8)
    row = np.stack([x, 255 - x, np.full_like(x, 128), x], -1)  # alpha ramps from 0 to 255
    return _png(side, side, 8, 6, row.tobytes())


def _plain_png(width: int, height: int) -> bytes:
    x = (np.arange(width) % 256).astype(np.uint8)
    row = np.stack([x, 255 - x, np.full_like(x, 60)], -1)
    return _png(width, height, 8, 2, row.tobytes())


# --- JPEG -----------------------------------------------------------------------------------------


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _many_scans_jpeg(side: int = 4096, scans: int = 50_000) -> bytes:
    """A grey progressive JPEG: a DC scan, then ``scans`` identical AC scans (bands 1–63).

    Each AC scan is 16 end-of-band runs of 16,384 blocks (Huffman symbol 0xE0, EOB14, whose code is
    the single bit 0, then 14 zero bits): 30 bytes of zeros that make libjpeg visit all blocks again.
    Repeating a first AC scan with Ah = Al = 0 is even a legal progression, so libjpeg does not warn.
    """
    blocks = (side // 8) ** 2
    assert blocks % 16384 == 0 and blocks % 8 == 0
    dqt = _segment(0xDB, b"\x00" + bytes([1] * 64))
    sof2 = _segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + bytes([1, 0x11, 0]))
    one_code = bytes([1] + [0] * 15)  # one code of length 1
    dht = _segment(0xC4, b"\x00" + one_code + b"\x00") + _segment(0xC4, b"\x10" + one_code + b"\xe0")
    dc_scan = _segment(0xDA, bytes([1, 1, 0x00, 0, 0, 0x00])) + bytes(blocks // 8)  # DC diff 0: one bit each
    ac_scan = _segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0x00])) + bytes(blocks // 16384 * 15 // 8)
    return b"\xff\xd8" + dqt + sof2 + dht + dc_scan + ac_scan * scans + b"\xff\xd9"


def _jpeg(width: int, height: int) -> bytes:
    x = (np.arange(width) % 256).astype(np.uint8)
    arr = np.broadcast_to(np.stack([x, 255 - x, np.full_like(x, 90)], -1), (height, width, 3))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def _jpeg_wider_than_allowed() -> bytes:
    """A valid 65500×2 JPEG whose SOF0 then claims 65501 columns (no encoder writes wider)."""
    data = bytearray(_jpeg(65_500, 2))
    sof = data.find(b"\xff\xc0")
    assert sof > 0 and struct.unpack(">H", data[sof + 7 : sof + 9])[0] == 65_500
    data[sof + 7 : sof + 9] = struct.pack(">H", 65_501)
    return bytes(data)


# --- TIFF -----------------------------------------------------------------------------------------


def _ifd(entries: list[tuple[int, int, int, int]], next_ifd: int) -> bytes:
    """A little-endian IFD: (tag, type, count, value-or-offset) entries, sorted, then the next offset."""
    out = struct.pack("<H", len(entries))
    for tag, typ, count, value in sorted(entries):
        if typ == 3 and count == 1:  # SHORT, left-justified in the 4-byte field
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    return out + struct.pack("<I", next_ifd)


SHORT, LONG = 3, 4


def _tiff_pages(pages: int = 100_000) -> bytes:
    """``pages`` IFDs in a chain, all describing the same uncompressed 8×8 grey strip."""
    strip = bytes(range(0, 256, 4))  # 64 bytes: a grey ramp
    strip_at = 8
    first_ifd = strip_at + len(strip)

    def entries(_i: int) -> list:
        return [(256, SHORT, 1, 8), (257, SHORT, 1, 8), (258, SHORT, 1, 8), (259, SHORT, 1, 1),
                (262, SHORT, 1, 1), (273, LONG, 1, strip_at), (277, SHORT, 1, 1), (278, SHORT, 1, 8),
                (279, LONG, 1, len(strip))]

    size = len(_ifd(entries(0), 0))
    head = _ifd(entries(0), 0)[:-4]  # every IFD is the same but for its "next" offset
    body = b"".join(head + struct.pack("<I", first_ifd + (i + 1) * size if i + 1 < pages else 0)
                    for i in range(pages))
    return b"II*\x00" + struct.pack("<I", first_ifd) + strip + body


def _float_tiff(side: int, rows_per_strip: int = 64) -> bytes:
    """A float32 grey TIFF, deflate-compressed, whose strips all point to the same compressed bytes."""
    row = np.linspace(-1.0, 1.0, side, dtype="<f4").tobytes()
    strip = zlib.compress(row * rows_per_strip, 9)
    n_strips = -(-side // rows_per_strip)
    last_rows = side - (n_strips - 1) * rows_per_strip
    last = zlib.compress(row * last_rows, 9)
    # layout: header, strip data, last strip, offsets array, counts array, IFD
    strip_at = 8
    last_at = strip_at + len(strip)
    offsets_at = last_at + len(last)
    counts_at = offsets_at + 4 * n_strips
    ifd_at = counts_at + 4 * n_strips
    offsets = [strip_at] * (n_strips - 1) + [last_at]
    counts = [len(strip)] * (n_strips - 1) + [len(last)]
    entries = [(256, SHORT, 1, side), (257, SHORT, 1, side), (258, SHORT, 1, 32), (259, SHORT, 1, 8),
               (262, SHORT, 1, 1), (273, LONG, n_strips, offsets_at), (277, SHORT, 1, 1),
               (278, SHORT, 1, rows_per_strip), (279, LONG, n_strips, counts_at), (339, SHORT, 1, 3)]
    return (b"II*\x00" + struct.pack("<I", ifd_at) + strip + last + struct.pack(f"<{n_strips}I", *offsets)
            + struct.pack(f"<{n_strips}I", *counts) + _ifd(entries, 0))


# --- WebP, ICO ------------------------------------------------------------------------------------


def _webp_with_canvas(side: int) -> bytes:
    """A two-frame 1×1 animated WebP whose VP8X canvas then claims side×side."""
    frames = [Image.new("RGB", (1, 1), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=50)
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8X"
    data[24:27] = (side - 1).to_bytes(3, "little")
    data[27:30] = (side - 1).to_bytes(3, "little")
    return bytes(data)


def _ico_with_png_bomb() -> bytes:
    """An icon with one entry, 16×16 in its directory, holding a PNG header that claims 60000×60000."""
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 6, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(bytes(64)))
           + _png_chunk(b"IEND", b""))
    entry = struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 6 + 16)
    return b"\x00\x00\x01\x00\x01\x00" + entry + png


def hostile_files() -> dict[str, bytes]:
    """Every hostile file, by name (with its extension); built once per process."""
    if not _CACHE:
        _CACHE.update({
            "progressive-50000-scans.jpg": _many_scans_jpeg(),
            "grey16-6300.png": _grey16_png(SIDE),
            "float-6300.tif": _float_tiff(SIDE),
            "rgba-6300.png": _rgba_png(SIDE),
            "animated-canvas.webp": _webp_with_canvas(SIDE),
            "pages-100000.tif": _tiff_pages(100_000),
            "wide-1000x6.png": _plain_png(1000, 6),
            "line-40000x1.png": _plain_png(40_000, 1),
            "line-65501x2.png": _plain_png(65_501, 2),
            "line-40000x1.jpg": _jpeg(40_000, 1),
            "line-65501x2.jpg": _jpeg_wider_than_allowed(),
            "icon-png-bomb.ico": _ico_with_png_bomb(),
        })
    return dict(_CACHE)
