"""Offline datasets as plain numpy: Fashion-MNIST, CIFAR-10, an image folder, and synthetic shapes.

Every loader returns an :class:`ArrayDataset` — uint8 images ``(N, H, W, C)`` and int64 labels —
so the rest of the package never cares where the pictures came from. Nothing here downloads
anything, and nothing here ever runs code from a data file: CIFAR-10's pickles are read by a
restricted unpickler that can only rebuild numpy arrays (see :func:`load_cifar10`).

The synthetic **shapes** set is made for teaching position: most of its classes are the *same
parts in a different arrangement* (an arrow pointing up vs. down, an "L" with its corner at the
bottom-left vs. the bottom-right), so a ViT can only tell them apart by learning where its patches
are relative to each other. Left and right are labels there, so never flip those images.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps

__all__ = [
    "ArrayDataset", "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "CIFAR10_CLASSES", "SHAPES_CLASSES",
    "IMAGE_EXTENSIONS", "DATASETS", "read_idx", "load_fashion_mnist", "load_cifar10", "load_image_folder",
    "make_shapes", "shapes_splits", "augment_batch", "load_dataset", "dataset_stats",
]


@dataclass
class ArrayDataset:
    """A labelled image set held in memory."""

    images: np.ndarray      # (N, H, W, C) uint8
    labels: np.ndarray      # (N,) int64
    class_names: list[str]
    name: str
    masks: np.ndarray | None = None  # (N, H, W) bool: where the object's ink is, if the data knows it

    def __len__(self) -> int:
        return len(self.labels)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must be ({len(self.images)},), got {self.labels.shape}")
        if self.masks is not None and self.masks.shape != self.images.shape[:3]:
            raise ValueError(f"masks must be {self.images.shape[:3]}, got {self.masks.shape}")


# --------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# --------------------------------------------------------------------------------------------

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# IDX type codes → big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or plain; told apart by the gzip magic ``1f 8b``).

    Layout: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
    dimension and the data. Anything else — a bad magic, an unknown type, a size that does not
    match the header — raises ``ValueError`` naming the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ValueError(f"{path}: corrupt gzip stream ({exc})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    zero, code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00":
        raise ValueError(f"{path}: not an IDX file (magic starts {raw[:4].hex()}, expected 0000xxxx)")
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions need {header} bytes, file has {len(raw)})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX data is {len(raw) - header} bytes but header {dims} × "
                         f"{dtype.itemsize} needs {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    return None


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None) -> ArrayDataset:
    """Fashion-MNIST (Xiao et al. 2017) from IDX files: 60 000 train / 10 000 test, (N, 28, 28, 1).

    ``root`` defaults to :data:`FASHION_MNIST_DIR`, where Debian's ``dataset-fashion-mnist`` puts them.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root if root is not None else FASHION_MNIST_DIR)
    prefix = "train" if split == "train" else "t10k"
    img_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    if img_path is None or lbl_path is None:
        raise FileNotFoundError(
            f"Fashion-MNIST {split} files ({prefix}-images-idx3-ubyte[.gz], {prefix}-labels-idx1-ubyte[.gz]) "
            f"not found in {root}. Install them with `apt-get install dataset-fashion-mnist` "
            f"(they land in {FASHION_MNIST_DIR}), or point --data at a folder holding them.")
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected uint8 (N, H, W) images, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{lbl_path}: expected {len(images)} labels, got shape {labels.shape}")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise ValueError(f"{lbl_path}: labels outside 0..{len(FASHION_MNIST_CLASSES) - 1}")
    return ArrayDataset(np.ascontiguousarray(images[..., None]), labels, list(FASHION_MNIST_CLASSES), "fashion-mnist")


# --------------------------------------------------------------------------------------------
# CIFAR-10 ("python version" batches), read without ever executing pickled code
# --------------------------------------------------------------------------------------------

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _numpy_reconstruct():
    try:
        from numpy._core import multiarray  # numpy ≥ 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray._reconstruct


# The only globals a pickle may name: what numpy needs to rebuild a plain ndarray.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside :data:`_PICKLE_ALLOWED`.

    Plain containers and scalars (dict, list, tuple, bytes, str, int, float, bool, None) need no
    global at all; a numpy array needs exactly the four allowed names. Everything else — ``os.system``,
    ``builtins.eval``, any class — raises ``pickle.UnpicklingError`` *before* it could be called.
    """

    def find_class(self, module: str, name: str):
        factory = _PICKLE_ALLOWED.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data file "
                                         "(only numpy arrays, dicts, lists, bytes and numbers are allowed)")
        return factory()

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent references in a data file")


def _safe_unpickle(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error) as exc:
        raise ValueError(f"{path}: not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from None


def _str_keys(obj: object, path: Path) -> dict:
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _str_keys(_safe_unpickle(path), path)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels' (keys: {sorted(map(str, batch))})")
    data, labels = batch["data"], batch["labels"]
    if isinstance(data, (bytes, bytearray)):
        data = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3072)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be a uint8 (N, 3072) array, got "
                         f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if not all(isinstance(v, (int, np.integer)) for v in labels) or len(labels) != len(data):
        raise ValueError(f"{path}: 'labels' must be {len(data)} integers")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def load_cifar10(root: str | os.PathLike, split: str = "train") -> ArrayDataset:
    """CIFAR-10 (Krizhevsky 2009) from its "python version" batches: (N, 32, 32, 3).

    ``root`` is the ``cifar-10-batches-py`` folder (or the folder holding it) with ``data_batch_1`` …
    ``data_batch_5``, ``test_batch`` and optionally ``batches.meta``.

    Safety: those files are pickles, and unpickling runs whatever code a file names. We never call
    ``pickle.load``; a restricted :class:`pickle.Unpickler` resolves only
    ``numpy.core.multiarray._reconstruct``, ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``
    and ``numpy.dtype`` — exactly what rebuilding an ndarray needs — and raises ``ValueError`` for any
    other global before anything is called. (Arrays pickled with protocol 5, which numpy rebuilds with
    ``_frombuffer``, are therefore refused; the real CIFAR-10 files use protocol 2.)
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 {split} batches {missing} not found in {root}; extract "
                                "cifar-10-python.tar.gz and point --data at its cifar-10-batches-py folder")
    parts = [_read_cifar_batch(root / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    class_names = list(CIFAR10_CLASSES)
    if (root / "batches.meta").is_file():
        meta = _str_keys(_safe_unpickle(root / "batches.meta"), root / "batches.meta")
        names_meta = meta.get("label_names")
        if isinstance(names_meta, list) and len(names_meta) == 10:
            class_names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names_meta]
    return ArrayDataset(images, labels, class_names, "cifar10")


# --------------------------------------------------------------------------------------------
# A folder of images, one subfolder per class
# --------------------------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)


def _fit_square(img: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` and centre-crop the longer one (no distortion)."""
    return ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC)


def load_image_folder(root: str | os.PathLike, image_size: int | None = None, channels: int = 3,
                      class_names: list[str] | None = None) -> ArrayDataset:
    """Images in ``root/<class name>/*.png|jpg|…``; classes are the sorted subfolder names.

    With ``image_size`` every image is scaled (shorter side) and centre-cropped to a square of that
    size; without it all images must already share one size. ``channels`` is 3 (RGB) or 1 (grey).
    ``class_names`` fixes the class order (e.g. the training split's) instead of reading it from disk.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if class_names is None:
        class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                             and _image_files(p))
    if not class_names:
        raise ValueError(f"{root} has no class subfolders with images ({', '.join(IMAGE_EXTENSIONS)})")
    mode = "RGB" if channels == 3 else "L"
    arrays, labels = [], []
    for label, cls in enumerate(class_names):
        folder = root / cls
        for path in (_image_files(folder) if folder.is_dir() else []):
            try:
                with Image.open(path) as im:
                    im = ImageOps.exif_transpose(im)
                    if im.mode in ("P", "PA"):  # palette (maybe with transparency): expand first
                        im = im.convert("RGBA")
                    im = im.convert(mode)
                    if image_size is not None:
                        im = _fit_square(im, image_size)
                    arr = np.asarray(im, dtype=np.uint8)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                raise ValueError(f"{path}: cannot read image ({exc})") from None
            if arrays and arr.shape != arrays[0].shape:
                raise ValueError(f"{path} is {arr.shape[1]}×{arr.shape[0]} but earlier images are "
                                 f"{arrays[0].shape[1]}×{arrays[0].shape[0]}; pass image_size to resize them")
            arrays.append(arr)
            labels.append(label)
    if not arrays:
        raise ValueError(f"{root}: no images found for classes {class_names}")
    images = np.stack(arrays)
    if images.ndim == 3:
        images = images[..., None]
    return ArrayDataset(images, np.asarray(labels, dtype=np.int64), list(class_names), root.name or "folder")


# --------------------------------------------------------------------------------------------
# Synthetic shapes: classes that differ only in where their parts are
# --------------------------------------------------------------------------------------------

SHAPES_CLASSES = [
    "arrow up", "arrow down", "arrow left", "arrow right",
    "L (corner bottom-left)", "L (corner bottom-right)", "L (corner top-left)", "L (corner top-right)",
    "circle", "cross",
]

_SS = 4  # supersampling factor: draw at 4× and average down


def _arrow_up(u: np.ndarray) -> np.ndarray:
    """An upward arrow in the unit box [-½, ½]² (y grows downwards): triangular head and a shaft.
    ``u`` holds two uniform [0, 1) numbers that pick its proportions."""
    head = 0.42 + 0.13 * u[0]           # head height
    w = (0.30 + 0.10 * u[1]) / 2        # half shaft width
    y = -0.5 + head
    return np.array([(0, -0.5), (0.5, y), (w, y), (w, 0.5), (-w, 0.5), (-w, y), (-0.5, y)])


def _l_bottom_left(u: np.ndarray) -> np.ndarray:
    """An "L" with equal arms whose corner sits at the bottom-left of the unit box."""
    t = 0.30 + 0.08 * u[0]  # stroke thickness
    return np.array([(-0.5, -0.5), (-0.5 + t, -0.5), (-0.5 + t, 0.5 - t), (0.5, 0.5 - t), (0.5, 0.5), (-0.5, 0.5)])


def _cross(u: np.ndarray) -> np.ndarray:
    t = (0.30 + 0.08 * u[0]) / 2
    return np.array([(-t, -0.5), (t, -0.5), (t, -t), (0.5, -t), (0.5, t), (t, t), (t, 0.5), (-t, 0.5),
                     (-t, t), (-0.5, t), (-0.5, -t), (-t, -t)])


# Exact orientation of each class as a 2×2 map applied to the canonical polygon (x right, y down).
_ROT = {"up": np.eye(2), "down": np.array([[1, 0], [0, -1]]),
        "left": np.array([[0, 1], [1, 0]]), "right": np.array([[0, -1], [1, 0]])}
_MIRROR = {"bottom-left": np.eye(2), "bottom-right": np.diag([-1, 1]),
           "top-left": np.diag([1, -1]), "top-right": np.diag([-1, -1])}


def _class_polygon(label: int, u: np.ndarray) -> np.ndarray:
    """The class's outline in the unit box [-½, ½]² (image axes: x right, y down)."""
    name = SHAPES_CLASSES[label]
    if name.startswith("arrow "):
        return _arrow_up(u) @ _ROT[name.split()[1]].T
    if name.startswith("L (corner "):
        return _l_bottom_left(u) @ _MIRROR[name[len("L (corner "):-1]].T
    if name == "cross":
        return _cross(u)
    return _CIRCLE  # a 48-gon, so that aspect and rotation jitter apply to it like to the others


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """(n, size, size) bilinear-upsampled random ``cells × cells`` grid in [0, 1]."""
    grid = rng.random((n, cells, cells))
    pos = np.linspace(0, cells - 1, size)
    i0 = np.minimum(pos.astype(int), cells - 2)
    f = pos - i0
    interp = np.zeros((size, cells))
    interp[np.arange(size), i0] = 1 - f
    interp[np.arange(size), i0 + 1] = f
    return np.einsum("yi,nij,xj->nyx", interp, grid, interp, optimize=True)


def _backgrounds(rng: np.random.Generator, n: int, size: int, dark: np.ndarray) -> np.ndarray:
    """Textured backgrounds (n, size, size, 3) in [0, 1]: smooth noise mixed with stripes between two
    colours from one luminance band (dark images: channels ≤ 0.38; light: ≥ 0.62)."""
    noise = _smooth_noise(rng, n, size, 5)
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, np.pi, n)[:, None, None]
    freq = rng.uniform(2.0, 5.0, n)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    mix = rng.uniform(0, 1, n)[:, None, None]
    t = mix * noise + (1 - mix) * stripes
    c1 = rng.uniform(0.0, 0.38, (n, 1, 1, 3))
    c2 = rng.uniform(0.0, 0.38, (n, 1, 1, 3))
    bg = c1 + (c2 - c1) * t[..., None]
    bg = np.where(dark[:, None, None, None], bg, 1.0 - bg)
    return bg.astype(np.float32)


def make_shapes(n: int, seed: int, image_size: int = 32, *, stream: int = 0) -> ArrayDataset:
    """``n`` synthetic colour images (n, S, S, 3) of :data:`SHAPES_CLASSES`, balanced, deterministic.

    Each image: a textured background (smooth noise + stripes) with a few small distractor dots and
    dashes, and one object filling 40–70 % of the image at a random place, with ±10° of jitter in
    rotation and a little in aspect ratio. The object's colour lies in the opposite luminance band to
    the background's, so it always stands out. Drawn at 4× with Pillow and box-filtered down.

    The output depends only on ``(n, seed, image_size, stream)``; :func:`shapes_splits` gives train and
    test different ``stream``s so the two never share a random draw.
    """
    if n < 0:
        raise ValueError("n must be ≥ 0")
    if image_size < 8:
        raise ValueError("image_size must be ≥ 8")
    ss = np.random.SeedSequence(seed, spawn_key=(stream,))
    rng = np.random.default_rng(ss)
    k = len(SHAPES_CLASSES)
    labels = rng.permutation(np.arange(n) % k).astype(np.int64)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    masks = np.empty((n, image_size, image_size), dtype=bool)
    chunk = 1024
    for j, child in enumerate(ss.spawn((n + chunk - 1) // chunk)):
        sl = slice(j * chunk, min(n, (j + 1) * chunk))
        images[sl], masks[sl] = _render_shapes(np.random.default_rng(child), labels[sl], image_size)
    return ArrayDataset(images, labels, list(SHAPES_CLASSES), "shapes", masks=masks)


def _render_shapes(rng: np.random.Generator, labels: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one chunk of shapes images (len(labels), S, S, 3) uint8, and the objects' masks (at least half covered)."""
    n, big = len(labels), S * _SS
    dark = rng.random(n) < 0.5
    bg = _backgrounds(rng, n, S, dark)
    fg = rng.uniform(0.62, 1.0, (n, 3))
    fg = np.where(dark[:, None], fg, 1.0 - fg)
    # distractors: colour half-way between the background's band and the object's band
    dcol = rng.uniform(0.25, 0.5, (n, 3))
    dcol = np.where(dark[:, None], dcol, 1.0 - dcol)

    scale = rng.uniform(0.40, 0.70, n) * S
    aspect = np.exp(rng.uniform(-0.12, 0.12, n))
    theta = np.deg2rad(rng.uniform(-10, 10, n))
    half = 0.5 * scale * np.maximum(aspect, 1 / aspect) * 1.2 + 1.5  # rotated extent + margin (≥ augment pad)
    room = np.maximum(S - 2 * half, 0)
    cx = half + rng.random(n) * room
    cy = half + rng.random(n) * room
    n_dots = rng.integers(1, 5, n)
    n_dash = rng.integers(0, 3, n)
    dots = rng.random((n, 4, 3)) * (big, big, 0.7 * _SS) + (0, 0, 0.5 * _SS)        # x, y, radius
    dashes = rng.random((n, 2, 4)) * (big, big, np.pi, 2 * _SS) + (0, 0, 0, 2 * _SS)  # x, y, angle, length
    dashes = np.concatenate([dashes[..., :2], dashes[..., :2] + dashes[..., 3:] * np.stack(
        [np.cos(dashes[..., 2]), np.sin(dashes[..., 2])], -1)], -1)                 # x0, y0, x1, y1
    u = rng.random((n, 2))
    cos, sin = np.cos(theta), np.sin(theta)
    # rotation · aspect, per image: (n, 2, 2)
    rot = np.stack([np.stack([cos * aspect, -sin / aspect], -1), np.stack([sin * aspect, cos / aspect], -1)], -2)
    dots, dashes = dots.tolist(), dashes.tolist()

    obj = np.empty((n, S, S), dtype=np.uint8)
    clutter = np.empty((n, S, S), dtype=np.uint8)
    for i in range(n):
        # distractors: small dots (≤ 1.2 px radius) and short thin dashes (≤ 4 px), anywhere
        im = Image.new("L", (big, big), 0)
        d = ImageDraw.Draw(im)
        for x, y, rad in dots[i][:n_dots[i]]:
            d.ellipse((x - rad, y - rad, x + rad, y + rad), fill=255)
        for line in dashes[i][:n_dash[i]]:
            d.line(line, fill=255, width=_SS)
        clutter[i] = np.asarray(im.reduce(_SS))  # box filter: antialiased coverage
        # the object
        im = Image.new("L", (big, big), 0)
        poly = _class_polygon(int(labels[i]), u[i])
        pts = ((poly @ rot[i].T) * scale[i] + (cx[i], cy[i])) * _SS
        ImageDraw.Draw(im).polygon(list(map(tuple, pts.tolist())), fill=255)
        obj[i] = np.asarray(im.reduce(_SS))

    a_clutter = clutter[..., None].astype(np.float32) / 255.0
    a_obj = obj[..., None].astype(np.float32) / 255.0
    img = bg
    img += a_clutter * (dcol[:, None, None, :].astype(np.float32) - img)
    img += a_obj * (fg[:, None, None, :].astype(np.float32) - img)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.02)  # a little sensor noise
    img *= np.float32(255.0)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), obj >= 128


_CIRCLE = 0.5 * np.stack([np.cos(np.linspace(0, 2 * np.pi, 48, endpoint=False)),
                          np.sin(np.linspace(0, 2 * np.pi, 48, endpoint=False))], 1)


def shapes_splits(n_train: int, n_test: int, seed: int = 0, image_size: int = 32) -> tuple[ArrayDataset, ArrayDataset]:
    """Train and test shapes from two independent random streams (``stream`` 0 and 1) of one seed."""
    return (make_shapes(n_train, seed, image_size, stream=0),
            make_shapes(n_test, seed, image_size, stream=1))


# --------------------------------------------------------------------------------------------
# Augmentation on a batch tensor
# --------------------------------------------------------------------------------------------

def augment_batch(x: torch.Tensor, *, flip: bool, pad: int, generator: torch.Generator | None = None,
                  mode: str = "reflect") -> torch.Tensor:
    """Random shift (pad by ``pad`` then crop back at a random offset) and, only if ``flip``, a random
    horizontal mirror — on a whole (B, C, H, W) float batch at once, one gather, no Python loop.

    ``mode`` is the padding: ``"reflect"``, ``"replicate"`` or ``"zeros"``. With ``pad=0`` and
    ``flip=False`` the batch comes back unchanged. Never pass ``flip=True`` for the shapes set, where
    left and right are labels.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if pad < 0:
        raise ValueError("pad must be ≥ 0")
    if pad == 0 and not flip:
        return x
    B, C, H, W = x.shape
    if pad:
        if mode == "zeros":
            xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        elif mode in ("reflect", "replicate"):
            if mode == "reflect" and pad >= min(H, W):
                raise ValueError(f"reflect padding {pad} needs images larger than {pad} pixels")
            xp = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode=mode)
        else:
            raise ValueError(f"unknown padding mode {mode!r}")
    else:
        xp = x
    gen_device = generator.device if generator is not None else torch.device("cpu")
    oy = torch.randint(0, 2 * pad + 1, (B,), generator=generator, device=gen_device).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (B,), generator=generator, device=gen_device).to(x.device)
    cols = torch.arange(W, device=x.device)
    cols = cols.expand(B, W)
    if flip:
        mirror = (torch.rand(B, generator=generator, device=gen_device) < 0.5).to(x.device)
        cols = torch.where(mirror[:, None], W - 1 - cols, cols)
    rows = oy[:, None] + torch.arange(H, device=x.device)   # (B, H)
    cols = ox[:, None] + cols                                # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------
# One entry point and statistics
# --------------------------------------------------------------------------------------------

def _load_shapes(split: str, data=None, *, n_train: int = 20000, n_test: int = 4000, seed: int = 0,
                 image_size: int = 32) -> ArrayDataset:
    if split not in ("train", "test", "val"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    n = n_train if split == "train" else n_test
    return make_shapes(n, seed, image_size, stream={"train": 0, "test": 1, "val": 2}[split])


def _load_fashion(split: str, data=None) -> ArrayDataset:
    return load_fashion_mnist(split, root=data)


def _load_cifar(split: str, data=None) -> ArrayDataset:
    if data is None:
        raise FileNotFoundError("CIFAR-10 needs --data pointing at the extracted cifar-10-batches-py folder")
    return load_cifar10(data, split)


def _load_folder(split: str, data=None, *, image_size: int | None = None, channels: int = 3,
                 test_fraction: float = 0.2, seed: int = 0) -> ArrayDataset:
    """``data/train`` and ``data/test`` if they exist; otherwise one folder split per class,
    deterministically, ``test_fraction`` of each class held out."""
    if data is None:
        raise FileNotFoundError("the folder dataset needs --data pointing at a folder of class subfolders")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(data)
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = load_image_folder(root / "train", image_size, channels).class_names if split == "test" else None
        return load_image_folder(root / split, image_size, channels, class_names=classes)
    ds = load_image_folder(root, image_size, channels)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(ds), dtype=bool)
    for c in range(len(ds.class_names)):
        idx = np.flatnonzero(ds.labels == c)
        k = int(round(len(idx) * test_fraction)) if len(idx) > 1 else 0
        test[rng.permutation(idx)[:k]] = True
    keep = test if split == "test" else ~test
    return ArrayDataset(ds.images[keep], ds.labels[keep], ds.class_names, ds.name)


SYMBOLS_SIZES = {"train": 45000, "val": 3000, "test": 6000, "shifted": 3000}


def symbols_cache_dir() -> Path:
    """Where generated symbol sets are kept between runs: $VIT_EXPLORER_CACHE or ~/.cache/vit-explorer."""
    return Path(os.environ.get("VIT_EXPLORER_CACHE") or Path.home() / ".cache" / "vit-explorer")


def _load_symbols(split: str, data=None, *, n: int | None = None, seed: int = 0, image_size: int = 64,
                  workers: int = 2, cache: bool = True) -> ArrayDataset:
    """The generated symbols (:mod:`vit.symbols`): ``train``, ``val``, ``test`` or ``shifted``.

    ``n`` defaults to :data:`SYMBOLS_SIZES`. Generated sets are cached as plain ``.npz`` arrays
    (read back without pickle), keyed by the generator's version, split, size, seed and image size.
    """
    from .symbols import GENERATOR_VERSION, SPLITS, SYMBOL_CLASSES, make_symbols
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    n = SYMBOLS_SIZES[split] if n is None else n
    path = symbols_cache_dir() / f"symbols-v{GENERATOR_VERSION}-{split}-{n}-seed{seed}-{image_size}px.npz"
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return ArrayDataset(z["images"], z["labels"], list(SYMBOL_CLASSES), "symbols", masks=z["masks"])
        except (OSError, ValueError, KeyError):
            pass  # a broken cache file is simply made again
    images, labels, masks = make_symbols(n, split, seed, image_size, workers=workers)
    if cache and n >= 1000:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, labels=labels, masks=masks)
        os.replace(tmp, path)
    return ArrayDataset(images, labels, list(SYMBOL_CLASSES), "symbols", masks=masks)


DATASETS = {"fashion-mnist": _load_fashion, "shapes": _load_shapes, "cifar10": _load_cifar, "folder": _load_folder,
            "symbols": _load_symbols}


def load_dataset(name: str, split: str, data: str | os.PathLike | None = None, **kw) -> ArrayDataset:
    """Load ``split`` ("train" | "test") of ``name`` ∈ :data:`DATASETS`.

    ``data`` is the location on disk (Fashion-MNIST IDX folder — default the Debian one —, CIFAR-10
    batches folder, or image folder); the generated ``shapes`` ignore it and take ``n_train``,
    ``n_test``, ``seed`` and ``image_size`` keywords instead.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name](split, data, **kw)


def dataset_stats(ds: ArrayDataset) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the images on the [0, 1] scale."""
    x = ds.images.reshape(-1, ds.images.shape[-1])
    mean = np.zeros(x.shape[1])
    sq = np.zeros(x.shape[1])
    for i in range(0, len(x), 1 << 20):  # chunks keep the float copy small
        chunk = x[i:i + (1 << 20)].astype(np.float64)
        mean += chunk.sum(0)
        sq += (chunk * chunk).sum(0)
    count = max(len(x), 1)
    mean /= count
    var = np.maximum(sq / count - mean * mean, 0.0)
    return [float(m / 255.0) for m in mean], [float(max(math.sqrt(v) / 255.0, 1e-6)) for v in var]
