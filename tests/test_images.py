"""vit.images: every upload becomes an RGB image or an ImageError with a message for the student."""

from __future__ import annotations

import io
import pickle
import random
import re
import struct
import time
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from vit.images import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageError,
    ImageInfo,
    heif_supported,
    load_image,
    load_image_info,
)
import vit.images as images

PILLOW_STATE = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)


@pytest.fixture(autouse=True)
def _pillow_state_untouched():
    yield
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == PILLOW_STATE


# --------------------------------------------------------------------------------------------------
# Building test files in memory


def gradient(size=(16, 16), mode="RGB") -> Image.Image:
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, 255 - x], -1).astype(np.uint8)
    return Image.fromarray(rgb).convert(mode)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG whose IHDR claims width×height, with a tiny IDAT: a decompression bomb's header, no bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


SMALL = gradient()
SEEDS = {
    "PNG": encode(SMALL, "PNG"),
    "JPEG": encode(SMALL, "JPEG", quality=80),
    "GIF": encode(SMALL.convert("P"), "GIF"),
    "BMP": encode(SMALL, "BMP"),
    "TIFF": encode(SMALL, "TIFF"),
    "WEBP": encode(SMALL, "WEBP", quality=80),
}


# --------------------------------------------------------------------------------------------------
# Formats, inputs, extensions


def test_defaults():
    assert DEFAULT_MAX_BYTES == 20 * 1024 * 1024
    assert DEFAULT_MAX_PIXELS == 40_000_000
    assert {"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"} <= set(ALLOWED_FORMATS)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_each_format_round_trips_to_rgb(fmt):
    im, info = load_image_info(SEEDS[fmt])
    assert isinstance(info, ImageInfo)
    assert im.mode == "RGB" and im.size == (16, 16)
    assert info.format == {"WEBP": "WebP"}.get(fmt, fmt)
    assert info.original_size == (16, 16) and info.n_frames == 1 and not info.took_first_frame
    if fmt in ("PNG", "BMP", "TIFF"):  # lossless
        assert np.array_equal(np.asarray(im), np.asarray(SMALL))
    else:
        assert np.abs(np.asarray(im, dtype=int) - np.asarray(SMALL, dtype=int)).mean() < 40


def test_result_is_detached_from_any_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(SEEDS["PNG"])
    im = load_image(path)
    path.unlink()  # no handle kept (would fail on Windows; here check the image still works)
    assert getattr(im, "fp", None) is None
    assert im.getpixel((0, 0)) == SMALL.getpixel((0, 0))


def test_extension_is_ignored(tmp_path):
    wrong = tmp_path / "holiday.jpg"
    wrong.write_bytes(SEEDS["PNG"])
    im, info = load_image_info(wrong)
    assert info.format == "PNG" and im.mode == "RGB"
    as_str = tmp_path / "x.gif"
    as_str.write_bytes(SEEDS["JPEG"])
    assert load_image_info(str(as_str))[1].format == "JPEG"
    pdf_named_png = tmp_path / "cat.png"
    pdf_named_png.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    with pytest.raises(ImageError, match="PDF"):
        load_image(pdf_named_png)


def test_bytes_like_inputs():
    data = SEEDS["PNG"]
    for source in (data, bytearray(data), memoryview(data)):
        assert load_image(source).size == (16, 16)


def test_file_like_and_path_inputs(tmp_path):
    stream = io.BytesIO(b"junk" + SEEDS["BMP"])
    stream.seek(4)
    assert load_image(stream).size == (16, 16)
    assert stream.tell() == 4, "the stream position is restored"
    assert load_image(stream).size == (16, 16), "so a second load works too"

    class ReadOnly:  # not seekable: a pipe or socket
        def __init__(self, data):
            self._b = io.BytesIO(data)

        def read(self, n=-1):
            return self._b.read(n)

    assert load_image(ReadOnly(SEEDS["GIF"])).size == (16, 16)

    path = tmp_path / "img.tiff"
    path.write_bytes(SEEDS["TIFF"])
    with open(path, "rb") as f:
        assert load_image(f).size == (16, 16)
    with open(path, encoding="latin-1") as f:
        with pytest.raises(ImageError, match="binary"):
            load_image(f)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(ImageError):
        load_image(12345)


def test_one_pixel_image():
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        im = load_image(encode(Image.new("RGB", (1, 1), (10, 200, 30)), fmt))
        assert im.size == (1, 1) and im.mode == "RGB"


# --------------------------------------------------------------------------------------------------
# Things that are not images


def make_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("photo.png", SEEDS["PNG"])
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, hint",
    [
        (b"Hello! This is my homework.\nIt is a text file, not a picture.\n", "text file"),
        (random.Random(0).randbytes(4000), None),
        (pickle.dumps({"weights": [1.0, 2.0]}), "pickle"),
        (make_zip(), "ZIP"),
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
    ],
    ids=["text", "random", "pickle", "zip", "pdf", "svg"],
)
def test_non_images_are_refused_helpfully(data, hint):
    with pytest.raises(ImageError) as e:
        load_image(data)
    msg = str(e.value)
    assert "PNG" in msg and "JPEG" in msg and "WebP" in msg, msg
    if hint:
        assert hint in msg, msg


def test_empty_input():
    for source in (b"", io.BytesIO(b"")):
        with pytest.raises(ImageError, match="empty"):
            load_image(source)


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError)


# --------------------------------------------------------------------------------------------------
# Size limits and decompression bombs


def test_bomb_header_is_refused_fast():
    bomb = png_header_only(100_000, 100_000)
    assert len(bomb) < 200
    t = time.perf_counter()
    with pytest.raises(ImageError) as e:
        load_image(bomb)
    assert time.perf_counter() - t < 1.0
    assert "limit is 40 megapixels" in str(e.value), str(e.value)


@pytest.mark.filterwarnings("error")  # Pillow's DecompressionBombWarning must not escape either
def test_big_png_refused_before_decoding():
    for w, h in [(10_000, 10_000), (8_000, 6_000)]:  # above Pillow's warning level; above ours only
        t = time.perf_counter()
        with pytest.raises(ImageError) as e:
            load_image(png_header_only(w, h))
        assert time.perf_counter() - t < 1.0
        msg = str(e.value)
        assert f"{w}×{h}" in msg and "limit is 40 megapixels" in msg and "resize" in msg, msg
    with pytest.raises(ImageError, match=r"16×16 pixels \(256 pixels\); the limit is 100 pixels"):
        load_image(SEEDS["PNG"], max_pixels=100)


def test_absurd_and_zero_dimensions():
    with pytest.raises(ImageError, match="65,535"):
        load_image(png_header_only(70_000, 1))
    for w, h in [(0, 10), (10, 0)]:
        with pytest.raises(ImageError):
            load_image(png_header_only(w, h))
    bmp = bytearray(SEEDS["BMP"])
    bmp[18:22] = struct.pack("<i", 0)  # BITMAPINFOHEADER width
    with pytest.raises(ImageError):
        load_image(bytes(bmp))


def test_large_jpeg_is_downscaled_with_draft():
    data = encode(gradient((400, 300)), "JPEG", quality=90)
    im, info = load_image_info(data, max_pixels=20_000)
    assert im.size[0] * im.size[1] <= 20_000
    assert im.size == (100, 75)  # 1/2 would be 30,000 px, so the decoder scales by 1/4
    assert info.downscaled and info.original_size == (400, 300)
    assert any("reduced size" in n for n in info.notes)
    im2, info2 = load_image_info(data, max_pixels=60_000)
    assert im2.size == (200, 150) and info2.downscaled
    with pytest.raises(ImageError, match="limit"):  # even 1/8 (50×38) is too big
        load_image(data, max_pixels=1_000)
    assert not load_image_info(data)[1].downscaled


def test_file_bigger_than_max_bytes(tmp_path):
    data = SEEDS["PNG"] + b"\x00" * 1_100_000  # trailing junk after IEND is fine for Pillow
    assert load_image(data).size == (16, 16)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    for source in (data, path, io.BytesIO(data)):
        with pytest.raises(ImageError, match="the limit is 1 MB"):
            load_image(source, max_bytes=1024 * 1024)
    with pytest.raises(ImageError, match="limit is 0.5 MB"):
        load_image(data, max_bytes=512 * 1024)


def test_stream_is_never_read_past_the_limit():
    class Endless(io.RawIOBase):
        def readable(self):
            return True

        def read(self, n=-1):
            assert 0 < n <= 1024 * 1024 + 1, "must ask for a bounded amount"
            return b"\x89PNG" + b"\x00" * (n - 4)

    with pytest.raises(ImageError, match="limit is 1 MB"):
        load_image(Endless(), max_bytes=1024 * 1024)


# --------------------------------------------------------------------------------------------------
# Damage


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(fmt):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(noise, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    # (a cut that only loses the trailing CRC/IEND of a PNG leaves every pixel decodable: that loads)
    for cut in (len(data) // 2, len(data) - 100, 40):
        with pytest.raises(ImageError, match="cut off or damaged"):
            load_image(data[:cut])


def jpeg_with_exif(im: Image.Image, exif_bytes: bytes) -> bytes:
    """A JPEG with an APP1 Exif segment carrying exactly these bytes."""
    plain = encode(im, "JPEG", quality=90)
    app1 = b"Exif\x00\x00" + exif_bytes
    return plain[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + plain[2:]


def test_exif_orientation_is_applied():
    src = gradient((40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    im, info = load_image_info(encode(src, "JPEG", exif=exif.tobytes()))
    assert im.size == (20, 40) and info.original_size == (40, 20)
    assert info.exif_rotated and any("EXIF" in n for n in info.notes)
    # the stored top-left corner (dark red-ish, x=0,y=0 → blue 255) ends up top-right
    top_right = np.asarray(im)[0, -1].astype(int)
    assert np.abs(top_right - np.asarray(src)[0, 0]).max() < 40


@pytest.mark.parametrize(
    "exif",
    [
        b"II*\x00\xff\xff\xff\x7f",  # IFD offset far past the end
        b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00" * 3,  # 65535 entries
        b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\xff\xff\xff\xff\x00\x00\x00\x00",  # count overflow
        b"garbage!",
        b"",
    ],
)
def test_malformed_exif_does_not_crash(exif):
    im, info = load_image_info(jpeg_with_exif(gradient((30, 20)), exif))
    assert im.mode == "RGB" and im.size in ((30, 20), (20, 30))


# --------------------------------------------------------------------------------------------------
# Pixel formats


def test_sixteen_bit_png_is_rescaled_not_saturated():
    values = np.linspace(0, 4000, 32 * 32).reshape(32, 32).astype(np.uint16)
    src = Image.fromarray(values)
    assert src.mode.startswith("I;16")
    data = encode(src, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    im, info = load_image_info(data)
    a = np.asarray(im)
    assert im.mode == "RGB" and info.original_mode.startswith("I")
    assert (a == 255).mean() < 0.1, "not all white"
    assert a.min() <= 5 and a.max() >= 250, "the range spans most of 0..255"
    assert np.all(np.diff(a[..., 0].ravel().astype(int)) >= 0), "monotone, like the values"


def test_float_tiff_is_rescaled():
    values = np.linspace(-3.0, 7.0, 24 * 24, dtype=np.float32).reshape(24, 24)
    values[0, 0] = np.nan  # not a crash, not a colour
    data = encode(Image.fromarray(values), "TIFF")
    im, info = load_image_info(data)
    a = np.asarray(im)[..., 0]
    assert info.original_mode == "F" and im.mode == "RGB"
    assert a.ravel()[1] <= 5 and a.max() >= 250 and (a == 255).mean() < 0.1


def test_constant_high_depth_images():
    flat = encode(Image.fromarray(np.full((8, 8), 1000, np.uint16)), "PNG")
    assert set(np.asarray(load_image(flat)).ravel()) == {128}, "out-of-8-bit constant → mid grey"
    zero = encode(Image.fromarray(np.zeros((8, 8), np.float32)), "TIFF")
    assert set(np.asarray(load_image(zero)).ravel()) == {0}


def test_rgba_transparency_uses_background():
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[..., 0] = 200
    arr[:, 4:, 3] = 255  # right half opaque red, left half fully transparent
    data = encode(Image.fromarray(arr), "PNG")
    a = np.asarray(load_image(data))
    assert tuple(a[0, 0]) == (255, 255, 255) and tuple(a[0, 7]) == (200, 0, 0)
    a = np.asarray(load_image(data, background=(0, 0, 255)))
    assert tuple(a[0, 0]) == (0, 0, 255)
    half = arr.copy()
    half[..., 3] = 128
    a = np.asarray(load_image(encode(Image.fromarray(half), "PNG"), background=(0, 0, 0)))
    assert abs(int(a[0, 0, 0]) - 100) <= 2, "50% alpha blends halfway"
    with pytest.raises(ImageError, match="background"):
        load_image(data, background=(300, 0, 0))


def test_palette_with_transparency_index():
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 255, 0] + [255, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    for fmt in ("PNG", "GIF"):
        data = encode(p, fmt, transparency=0)
        a = np.asarray(load_image(data, background=(10, 20, 30)))
        assert tuple(a[0, 0]) == (10, 20, 30), fmt
        assert tuple(a[1, 1]) == (255, 0, 0), fmt


def test_la_and_other_modes():
    la = Image.merge("LA", (Image.new("L", (4, 4), 90), Image.new("L", (4, 4), 0)))
    la.putpixel((3, 3), (90, 255))
    a = np.asarray(load_image(encode(la, "PNG")))
    assert tuple(a[0, 0]) == (255, 255, 255) and tuple(a[3, 3]) == (90, 90, 90)

    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red ink
    im, info = load_image_info(encode(cmyk, "JPEG", quality=95))
    assert info.original_mode == "CMYK" and im.mode == "RGB"
    r, g, b = np.asarray(im).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60

    one = Image.new("1", (9, 9), 0)
    one.putpixel((4, 4), 1)
    a = np.asarray(load_image(encode(one, "PNG")))
    assert tuple(a[4, 4]) == (255, 255, 255) and tuple(a[0, 0]) == (0, 0, 0)

    for mode in ("P", "L"):
        src = SMALL.convert(mode)
        im, info = load_image_info(encode(src, "PNG"))
        assert info.original_mode == mode and im.mode == "RGB"
        assert np.array_equal(np.asarray(im), np.asarray(src.convert("RGB")))

    for mode in ("YCbCr", "LAB", "HSV", "La", "RGBa", "PA", "I", "I;16B"):
        src = SMALL.convert("RGBA").convert(mode) if mode in ("La", "RGBa", "PA") else Image.new(mode, (5, 5))
        img = images._to_rgb(src, (255, 255, 255), ImageInfo("X", src.size, mode))
        assert img.mode == "RGB" and img.size == src.size, mode


def test_animated_gif_takes_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    im, info = load_image_info(data)
    assert info.n_frames == 3 and info.took_first_frame
    assert any("3 frames" in n and "first" in n for n in info.notes), info.notes
    assert tuple(np.asarray(im)[0, 0]) == (255, 0, 0)


def test_multipage_tiff_and_animated_webp():
    pages = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 255), (255, 255, 0))]
    tiff = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    im, info = load_image_info(tiff)
    assert info.n_frames == 2 and info.took_first_frame and any("pages" in n for n in info.notes)
    assert tuple(np.asarray(im)[0, 0]) == (0, 0, 255)
    webp = encode(pages[0], "WEBP", save_all=True, append_images=pages[1:], lossless=True, duration=50)
    im, info = load_image_info(webp)
    assert info.n_frames == 2 and info.took_first_frame
    assert tuple(np.asarray(im)[0, 0]) == (0, 0, 255)


def test_heic(monkeypatch):
    fake = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    if heif_supported():
        pillow_heif = pytest.importorskip("pillow_heif")
        src = gradient((64, 48))
        buf = io.BytesIO()
        pillow_heif.from_pillow(src).save(buf, quality=90)
        im, info = load_image_info(buf.getvalue())
        assert info.format == "HEIC" and im.mode == "RGB" and im.size == (64, 48)
        assert np.abs(np.asarray(im, dtype=int) - np.asarray(src, dtype=int)).mean() < 30
        with pytest.raises(ImageError):  # a bare ftyp box is not a photo
            load_image(fake)
    monkeypatch.setattr(images, "_HEIF", False)
    with pytest.raises(ImageError, match="HEIC photos are not supported here.*JPEG or PNG"):
        load_image(fake)


def test_pillow_global_state_unchanged_after_many_loads():
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    inputs = list(SEEDS.values()) + [png_header_only(100_000, 100_000), png_header_only(9_000, 9_000),
                                     SEEDS["JPEG"][:200], b"not an image"]
    for data in inputs * 3:
        try:
            load_image(data, max_pixels=1_000_000)
        except ImageError:
            pass
    load_image(encode(gradient((400, 300)), "JPEG"), max_pixels=10_000)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before == PILLOW_STATE


def test_no_warnings_escape():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError):
            load_image(png_header_only(10_000, 10_000))
        load_image(jpeg_with_exif(SMALL, b"II*\x00\xff\xff\xff\x7f"))


# --------------------------------------------------------------------------------------------------
# Fuzzing: nothing but an RGB image or an ImageError comes out


FUZZ_MAX_PIXELS = 1 << 16

_seed_names = sorted(SEEDS)
_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 16)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
)


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, arg in ops:
        if not b:
            break
        i = pos % (len(b) + (op == "insert"))
        if op == "flip":
            b[i] = arg
        elif op == "insert":
            b[i:i] = arg
        elif op == "delete":
            del b[i : i + arg]
        else:
            del b[i:]
    return bytes(b)


_fuzz_input = st.one_of(
    st.binary(max_size=600),
    st.builds(_mutate, st.sampled_from(_seed_names).map(SEEDS.__getitem__), st.lists(_mutation, min_size=1, max_size=4)),
    st.builds(lambda name, head: head + SEEDS[name][len(head):], st.sampled_from(_seed_names), st.binary(max_size=12)),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fuzz_input)
def test_fuzz_only_images_or_image_errors(data):
    try:
        im = load_image(data, max_pixels=FUZZ_MAX_PIXELS)
    except ImageError as e:
        assert str(e) and e.code and e.template.format(**e.params) == str(e)
        return
    assert isinstance(im, Image.Image) and im.mode == "RGB"
    assert 0 < im.size[0] * im.size[1] <= FUZZ_MAX_PIXELS


# --------------------------------------------------------------------------------------------------
# Translatable errors and notes: code, template, params; Korean with the same numbers


def hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def korean(e: ImageError) -> str:
    from vit.i18n import gettext, use_language

    with use_language("ko"):
        return gettext(e.template).format(**e.params)


def _damaged_png() -> bytes:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(noise, "PNG")
    return data[: len(data) // 2]


@pytest.mark.parametrize("load, code, numbers", [
    (lambda: load_image(b""), "empty_file", ["0"]),
    (lambda: load_image(_damaged_png()), "damaged", []),
    (lambda: load_image(encode(gradient((16, 16)), "PNG"), max_pixels=100), "too_many_pixels", ["16×16", "256", "100"]),
    (lambda: load_image(png_header_only(100_000, 100_000)), "too_many_pixels", ["10,000", "40"]),
    (lambda: load_image(b"%PDF-1.7 not an image"), "not_an_image", []),
    (lambda: load_image(b"x" * (3 * 1024 * 1024), max_bytes=1024 * 1024), "file_too_large", ["3", "1"]),
    (lambda: load_image(png_header_only(70_000, 1)), "side_too_long", ["70000×1", "65,535"]),
], ids=["empty", "damaged", "too-many-pixels", "bomb-header", "pdf", "too-big", "long-side"])
def test_errors_carry_code_template_and_params(load, code, numbers):
    with pytest.raises(ImageError) as e:
        load()
    err = e.value
    assert err.code == code
    assert isinstance(err.template, str) and isinstance(err.params, dict)
    assert err.template.format(**err.params) == str(err)  # the English text, exactly
    assert "{" not in str(err)
    ko = korean(err)
    assert hangul(ko) and ko != str(err), ko
    for n in numbers:
        assert n in str(err) and n in ko, (n, str(err), ko)


def test_missing_file_error_keeps_the_name_as_a_parameter(tmp_path):
    name = "고양이 {photo}.png"  # a user's file name, braces and all, is shown as it is
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / name)
    err = e.value
    assert err.code == "file_not_found"
    assert err.params == {"name": name} and name not in err.template
    assert err.template.format(**err.params) == str(err) and repr(name) in str(err)
    ko = korean(err)
    assert repr(name) in ko and "파일" in ko


def test_user_colour_is_a_parameter():
    with pytest.raises(ImageError) as e:
        load_image(SEEDS["PNG"], background="{not a colour}")
    assert e.value.code == "bad_background" and "{not a colour}" not in e.value.template
    assert e.value.template.format(**e.value.params) == str(e.value) and "'{not a colour}'" in korean(e.value)


def test_image_error_survives_pickling():
    with pytest.raises(ImageError) as e:
        load_image(b"")
    copy = pickle.loads(pickle.dumps(e.value))
    assert (type(copy), copy.code, copy.template, str(copy)) == (ImageError, "empty_file", e.value.template, str(e.value))


def _notes_in(info: ImageInfo, lang: str) -> list[str]:
    from vit.i18n import gettext, use_language

    with use_language(lang):
        return [gettext(t).format(**p) for t, p in info.messages]


def test_messages_match_notes():
    exif = Image.Exif()
    exif[0x0112] = 6
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, 4:, 3] = 255
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    images_with_notes = {
        "exif": encode(gradient((40, 20)), "JPEG", exif=exif.tobytes()),
        "transparent": encode(Image.fromarray(arr), "PNG"),
        "frames": encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        "sixteen-bit": encode(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000), "PNG"),
        "downscaled": encode(gradient((400, 300)), "JPEG", quality=80),
    }
    for label, data in images_with_notes.items():
        _im, info = load_image_info(data, max_pixels=50_000 if label == "downscaled" else DEFAULT_MAX_PIXELS)
        assert info.notes, label
        assert len(info.messages) == len(info.notes), label
        assert _notes_in(info, "en") == info.notes, label
        assert [t.format(**p) for t, p in info.messages] == info.notes, label
        ko = _notes_in(info, "ko")
        assert all(hangul(n) for n in ko), (label, ko)
        for en_note, ko_note in zip(info.notes, ko):
            for number in re.findall(r"\d[\d,.×]*\d|\d", en_note):
                assert number in ko_note, (label, number, ko_note)
    transparent = load_image_info(images_with_notes["transparent"])[1]
    assert transparent.notes == ["Transparent areas were filled with the background colour (white)."]
    assert _notes_in(transparent, "ko") == ["투명한 부분은 배경색 (흰색)으로 채웠습니다."]


def test_image_info_note_fills_both_lists():
    info = ImageInfo(format="PNG", original_size=(1, 1), original_mode="RGB")
    info.note("This {format} has {n} frames; only the first is used.", format="GIF", n=12)
    assert info.notes == ["This GIF has 12 frames; only the first is used."]
    assert info.messages == [("This {format} has {n} frames; only the first is used.", {"format": "GIF", "n": 12})]
