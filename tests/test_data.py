"""vit.data: IDX and CIFAR readers on fixture files, the image folder, synthetic shapes, augmentation."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vit.data import (
    FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, SHAPES_CLASSES, ArrayDataset, augment_batch, dataset_stats,
    load_cifar10, load_dataset, load_fashion_mnist, load_image_folder, make_shapes, read_idx, shapes_splits,
)


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
            np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}[arr.dtype]
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


# ---------------------------------------------------------------- IDX / Fashion-MNIST

def test_read_idx_plain_and_gzip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(a))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(a)))
    for name in ("a.idx", "a.idx.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        np.testing.assert_array_equal(got, a)
    f = np.linspace(-1, 1, 5).astype(">f4")
    (tmp_path / "f.idx").write_bytes(idx_bytes(f))
    got = read_idx(tmp_path / "f.idx")
    assert got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, f.astype(np.float32))


@pytest.mark.parametrize("blob, message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x02ab", "not an IDX file"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x02ab", "type code"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05ab", "needs 5"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01ab", "needs 1"),
    (b"\x00\x00", "too short"),
    (b"\x1f\x8bnot really gzip", "gzip"),
])
def test_read_idx_malformed(tmp_path, blob, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(blob)
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def write_fashion_fixture(root: Path, split: str, n: int, gz: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        (root / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    return images, labels


def test_load_fashion_mnist_fixture(tmp_path):
    images, labels = write_fashion_fixture(tmp_path, "train", 12, gz=True)
    write_fashion_fixture(tmp_path, "test", 5, gz=False)
    ds = load_fashion_mnist("train", root=tmp_path)
    assert ds.images.shape == (12, 28, 28, 1) and ds.images.dtype == np.uint8
    assert ds.labels.dtype == np.int64
    np.testing.assert_array_equal(ds.images[..., 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.class_names == FASHION_MNIST_CLASSES and ds.name == "fashion-mnist"
    assert len(load_dataset("fashion-mnist", "test", str(tmp_path))) == 5
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("val", root=tmp_path)


def test_load_fashion_mnist_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist("train", root=tmp_path)
    assert "--data" in str(info.value)


def test_load_fashion_mnist_mismatched_labels(tmp_path):
    write_fashion_fixture(tmp_path, "train", 4, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="expected 4 labels"):
        load_fashion_mnist("train", root=tmp_path)


def test_real_fashion_mnist_test_split():
    if not Path(FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{FASHION_MNIST_DIR} absent (apt-get install dataset-fashion-mnist)")
    ds = load_fashion_mnist("test")
    assert ds.images.shape == (10000, 28, 28, 1) and ds.images.dtype == np.uint8
    assert np.bincount(ds.labels, minlength=10).tolist() == [1000] * 10
    assert 0 < ds.images.mean() < 255
    mean, std = dataset_stats(ds)
    assert len(mean) == len(std) == 1
    assert 0.2 < mean[0] < 0.4 and 0.25 < std[0] < 0.45  # the well-known ≈0.286 / ≈0.353


# ---------------------------------------------------------------- CIFAR-10

def py2_pickle(obj) -> bytes:
    """Pickle ``obj`` the way Python 2 wrote the real CIFAR-10 files: protocol 2, strings as BINSTRING,
    numpy arrays via ``numpy.core.multiarray._reconstruct`` (Python 3's pickler cannot write this)."""
    out = bytearray(b"\x80\x02")

    def w(o):
        if isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif o is None:
            out.extend(b"N")
        elif isinstance(o, int):
            out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, (str, bytes)):
            b = o.encode() if isinstance(o, str) else o
            out.extend(b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b)
        elif isinstance(o, (list, tuple)):
            out.extend(b"](" if isinstance(o, list) else b"(")
            for v in o:
                w(v)
            out.extend(b"e" if isinstance(o, list) else b"t")
        elif isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                w(k)
                w(v)
            out.extend(b"u")
        elif isinstance(o, np.ndarray) and o.dtype == np.uint8:
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            w((0,))
            w("b")
            out.extend(b"\x87R(")                       # _reconstruct(ndarray, (0,), "b"); state:
            w(1)
            w(tuple(o.shape))
            out.extend(b"cnumpy\ndtype\n")
            w("u1")
            w(0)
            w(1)
            out.extend(b"\x87R")                        # dtype("u1", 0, 1)
            w((3, "|", None, None, None, -1, -1, 0))
            out.extend(b"b")                            # dtype.__setstate__
            w(False)
            w(o.tobytes())
            out.extend(b"tb")                           # ndarray.__setstate__((1, shape, dtype, False, data))
        else:
            raise TypeError(type(o))

    w(obj)
    return bytes(out + b".")


def dump(obj, path: Path, protocol) -> None:
    path.write_bytes(py2_pickle(obj) if protocol == "py2" else pickle.dumps(obj, protocol=protocol))


def write_cifar_fixture(root: Path, n_per_batch: int = 3, protocol="py2") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img{i}.png".encode() for i in range(n_per_batch)]}
        dump(batch, root / name, protocol)
        written[name] = (data, np.array(labels))
    meta = {"label_names": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], "num_vis": 3072}
    dump(meta, root / "batches.meta", protocol)
    return written


@pytest.mark.parametrize("protocol", ["py2", 3, 4])
def test_load_cifar10_fixture(tmp_path, protocol):
    written = write_cifar_fixture(tmp_path, protocol=protocol)
    train = load_cifar10(tmp_path, "train")
    assert train.images.shape == (15, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.class_names == list("abcdefghij")
    data, labels = written["data_batch_1"]
    # CIFAR stores each row as 1024 red, then 1024 green, then 1024 blue values
    np.testing.assert_array_equal(train.images[0, :, :, 0].ravel(), data[0, :1024])
    np.testing.assert_array_equal(train.images[0, :, :, 2].ravel(), data[0, 2048:])
    np.testing.assert_array_equal(train.labels[:3], labels)
    test = load_dataset("cifar10", "test", str(tmp_path))
    assert test.images.shape == (3, 32, 32, 3) and test.name == "cifar10"


def test_load_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path, "train")


class Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_never_runs(tmp_path):
    write_cifar_fixture(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(str(marker)), b"labels": [0]}, f, protocol=4)
    # sanity: the payload is real — plain pickle.loads would run it (we never do; just look at it)
    assert b"system" in (tmp_path / "test_batch").read_bytes()
    with pytest.raises(ValueError, match=r"refusing to load global (posix|os|nt)\.system"):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    lambda m: {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": Evil(m)},
    lambda m: [eval],
    lambda m: {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": np.array([Evil(m)], dtype=object)},
])
def test_restricted_unpickler_refuses_other_globals(tmp_path, payload):
    write_cifar_fixture(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(payload(str(marker)), f, protocol=4)
    with pytest.raises(ValueError):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()


# ---------------------------------------------------------------- image folder

def test_load_image_folder(tmp_path):
    rng = np.random.default_rng(3)
    for cls, ext, size in (("cat", "png", (20, 16)), ("dog", "jpg", (16, 16)), ("bird", "bmp", (30, 40))):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.{ext}")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    ds = load_image_folder(tmp_path, image_size=12)
    assert ds.class_names == ["bird", "cat", "dog"]
    assert ds.images.shape == (6, 12, 12, 3) and ds.images.dtype == np.uint8
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    grey = load_image_folder(tmp_path, image_size=8, channels=1)
    assert grey.images.shape == (6, 8, 8, 1)
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(tmp_path)  # mixed sizes and no image_size
    # same-size images load as they are
    only_dog = tmp_path / "only"
    (only_dog / "dog").mkdir(parents=True)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(img).save(only_dog / "dog" / "a.png")
    one = load_image_folder(only_dog)
    np.testing.assert_array_equal(one.images[0], img)


def test_folder_dataset_split(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / cls / f"{i}.png")
    train = load_dataset("folder", "train", str(tmp_path))
    test = load_dataset("folder", "test", str(tmp_path))
    assert len(train) == 16 and len(test) == 4
    assert np.bincount(test.labels).tolist() == [2, 2]


# ---------------------------------------------------------------- synthetic shapes

def test_shapes_classes_are_mostly_orientations():
    assert len(SHAPES_CLASSES) >= 10 and len(set(SHAPES_CLASSES)) == len(SHAPES_CLASSES)
    oriented = [c for c in SHAPES_CLASSES if c.startswith(("arrow", "L ("))]
    assert len(oriented) > len(SHAPES_CLASSES) / 2
    for d in ("up", "down", "left", "right"):
        assert f"arrow {d}" in SHAPES_CLASSES


def test_make_shapes_deterministic_and_balanced():
    a = make_shapes(60, seed=5)
    b = make_shapes(60, seed=5)
    c = make_shapes(60, seed=6)
    assert a.images.shape == (60, 32, 32, 3) and a.images.dtype == np.uint8 and a.labels.dtype == np.int64
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)
    assert np.bincount(a.labels, minlength=len(SHAPES_CLASSES)).tolist() == [6] * len(SHAPES_CLASSES)
    assert a.class_names == SHAPES_CLASSES and a.name == "shapes"
    assert make_shapes(10, seed=0, image_size=24).images.shape == (10, 24, 24, 3)


def test_shapes_train_test_disjoint():
    train, test = shapes_splits(400, 200, seed=0)
    assert len(train) == 400 and len(test) == 200
    assert set(train.labels.tolist()) == set(test.labels.tolist()) == set(range(len(SHAPES_CLASSES)))
    seen = {img.tobytes() for img in train.images}
    assert not any(img.tobytes() in seen for img in test.images)
    # load_dataset gives the same split images
    same = load_dataset("shapes", "test", None, n_train=400, n_test=200)
    np.testing.assert_array_equal(same.images, test.images)


def test_shapes_object_stands_out():
    """Each object is drawn in the luminance band opposite its background's: the image is bimodal."""
    ds = make_shapes(50, seed=1)
    lum = ds.images.astype(np.float32).mean(-1) / 255.0
    border = np.concatenate([lum[:, 0], lum[:, -1], lum[:, :, 0], lum[:, :, -1]], axis=1)
    centre_spread = np.abs(lum - np.median(border, axis=1)[:, None, None]).max(axis=(1, 2))
    assert (centre_spread > 0.3).all()


def test_shapes_contact_sheet():
    """4 examples per class, saved for a human to look at: /tmp/shapes_sheet.png."""
    ds = make_shapes(20 * len(SHAPES_CLASSES), seed=0)
    rows = []
    for c in range(len(SHAPES_CLASSES)):
        idx = np.flatnonzero(ds.labels == c)[:4]
        rows.append(np.concatenate([np.pad(ds.images[i], ((1, 1), (1, 1), (0, 0)), constant_values=255) for i in idx], 1))
    sheet = np.concatenate(rows, 0)
    Image.fromarray(sheet).resize((sheet.shape[1] * 4, sheet.shape[0] * 4), Image.NEAREST).save("/tmp/shapes_sheet.png")
    assert Path("/tmp/shapes_sheet.png").stat().st_size > 0


# ---------------------------------------------------------------- augmentation, stats, registry

def test_augment_identity_and_shapes(rng):
    x = torch.randn(8, 3, 12, 10, generator=rng)
    assert torch.equal(augment_batch(x, flip=False, pad=0, generator=rng), x)
    for mode in ("reflect", "replicate", "zeros"):
        y = augment_batch(x, flip=True, pad=2, generator=rng, mode=mode)
        assert y.shape == x.shape and y.dtype == x.dtype


def test_augment_shift_is_a_crop_of_the_padded_image(rng):
    x = torch.randn(64, 2, 9, 9, generator=rng)
    y = augment_batch(x, flip=False, pad=2, generator=rng, mode="zeros")
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifted = 0
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(y[i], xp[i, :, dy:dy + 9, dx:dx + 9])]
        assert hits, f"image {i} is not a shift of the input"
        shifted += hits[0] != (2, 2)
    assert shifted > 32  # most images actually moved


def test_augment_never_mirrors_without_flip(rng):
    # an image whose left and right halves differ: any crop of it stays un-mirrored
    x = torch.zeros(256, 1, 8, 8)
    x[:, :, :, :4] = 1.0
    y = augment_batch(x, flip=False, pad=0, generator=rng)
    assert torch.equal(y, x)
    x = torch.arange(16.0).repeat(32, 1, 16, 1)  # each row 0..15, left to right
    y = augment_batch(x, flip=False, pad=1, generator=rng, mode="replicate")
    assert (y[..., 1:] >= y[..., :-1]).all()  # still increasing: never mirrored
    y = augment_batch(x, flip=True, pad=0, generator=rng)
    mirrored = (y[:, 0, 0, 0] == 15).sum().item()
    assert 0 < mirrored < 32 and ((y[:, 0, 0, 0] == 0) | (y[:, 0, 0, 0] == 15)).all()


def test_augment_deterministic_with_generator():
    x = torch.randn(16, 3, 8, 8)
    a = augment_batch(x, flip=True, pad=2, generator=torch.Generator().manual_seed(1))
    b = augment_batch(x, flip=True, pad=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_dataset_stats():
    images = np.zeros((2, 2, 2, 3), np.uint8)
    images[0, ..., 0] = 255
    images[..., 2] = 51
    mean, std = dataset_stats(ArrayDataset(images, np.zeros(2, np.int64), ["x"], "t"))
    assert mean == pytest.approx([0.5, 0.0, 0.2])
    assert std == pytest.approx([0.5, 1e-6, 1e-6], abs=1e-6)


def test_load_dataset_unknown():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet", "train")
