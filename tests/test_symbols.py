"""The symbols generator: deterministic, balanced, with masks, and splits that never overlap."""

import hashlib

import numpy as np
import pytest

from vit import symbols
from vit.data import load_dataset
from vit.symbols import NOTHING, SYMBOL_CLASSES, make_clutter, make_symbols


def test_class_names_are_the_contract():
    assert SYMBOL_CLASSES[:14] == [str(d) for d in range(10)] + ["arrow up", "arrow down", "arrow left", "arrow right"]
    assert SYMBOL_CLASSES[-1] == NOTHING


def test_generator_is_deterministic_and_seeded():
    a = make_symbols(30, "train", seed=3)
    b = make_symbols(30, "train", seed=3)
    c = make_symbols(30, "train", seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_images_labels_and_masks_have_the_right_form():
    images, labels, masks = make_symbols(45, "val", seed=0, image_size=48)
    assert images.shape == (45, 48, 48, 3) and images.dtype == np.uint8
    assert masks.shape == (45, 48, 48) and masks.dtype == bool
    assert np.bincount(labels, minlength=len(SYMBOL_CLASSES)).tolist() == [3] * len(SYMBOL_CLASSES)
    nothing = labels == SYMBOL_CLASSES.index(NOTHING)
    assert not masks[nothing].any(), "a scene without a symbol has no symbol ink"
    ink = masks[~nothing].reshape((~nothing).sum(), -1).mean(1)
    assert (ink > 0.005).all() and (ink < 0.5).all(), ink


def test_the_mask_marks_where_the_ink_is():
    """Ink is darker (or, on a dark screen, brighter) than the paper around it: inside the mask the
    pixels differ from the image's median far more than outside it."""
    images, labels, masks = make_symbols(60, "test", seed=1)
    contrast = []
    for img, m in zip(images, masks):
        if m.sum() < 10:
            continue
        grey = img.astype(float).mean(-1)
        bg = np.median(grey[~m])
        contrast.append(np.abs(grey[m] - bg).mean() > 2 * np.abs(grey[~m] - bg).mean())
    assert np.mean(contrast) > 0.9


def test_splits_never_share_an_image():
    seen = {}
    for split in symbols.SPLITS:
        for img in make_symbols(150, split, seed=0)[0]:
            h = hashlib.sha256(img.tobytes()).hexdigest()
            assert h not in seen, f"{split} repeats an image of {seen.get(h)}"
            seen[h] = split


def test_the_shifted_split_holds_out_typefaces_pens_and_backgrounds():
    assert not set(symbols.TRAIN_FONTS) & set(symbols.SHIFTED_FONTS)
    assert not set(symbols.TRAIN_PENS) & set(symbols.SHIFTED_PENS)
    assert not set(symbols.TRAIN_BACKGROUNDS) & set(symbols.SHIFTED_BACKGROUNDS)
    for name in symbols.TRAIN_FONTS + symbols.SHIFTED_FONTS:
        assert symbols.find_font(name), f"{name} is not installed: apt-get install {' '.join(symbols.FONT_PACKAGES)}"


def test_shifted_draws_only_held_out_factors(monkeypatch):
    used = {"backgrounds": set(), "fonts": set(), "pens": set()}
    real_background, real_glyph, real_strokes = symbols._background, symbols._glyph, symbols._draw_strokes

    def background(rng, kind, C):
        used["backgrounds"].add(kind)
        return real_background(rng, kind, C)

    def glyph(path, char):
        used["fonts"].add(path.rsplit("/", 1)[-1])
        return real_glyph(path, char)

    def strokes(strokes_, box, pen, width, rng, big):
        used["pens"].add(pen)
        return real_strokes(strokes_, box, pen, width, rng, big)

    monkeypatch.setattr(symbols, "_background", background)
    monkeypatch.setattr(symbols, "_glyph", glyph)
    monkeypatch.setattr(symbols, "_draw_strokes", strokes)
    make_symbols(120, "shifted", seed=0)
    assert used["backgrounds"] == set(symbols.SHIFTED_BACKGROUNDS)
    assert used["fonts"] and used["fonts"] <= set(symbols.SHIFTED_FONTS)
    assert used["pens"] <= set(symbols.SHIFTED_PENS) | {"felt"}  # "felt" draws the nothing-class scribbles
    assert "brush" in used["pens"]
    for k in used:
        used[k].clear()
    make_symbols(120, "train", seed=0)
    assert used["backgrounds"] <= set(symbols.TRAIN_BACKGROUNDS)
    assert used["fonts"] <= set(symbols.TRAIN_FONTS) and not used["pens"] & set(symbols.SHIFTED_PENS)


def test_workers_give_the_same_images():
    a = make_symbols(1001, "val", seed=9, image_size=16, workers=1)
    b = make_symbols(1001, "val", seed=9, image_size=16, workers=2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_load_dataset_caches_without_pickle(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_EXPLORER_CACHE", str(tmp_path))
    first = load_dataset("symbols", "test", n=1005, image_size=16)
    files = list(tmp_path.glob(f"symbols-v{symbols.GENERATOR_VERSION}-test-1005-*.npz"))
    assert len(files) == 1
    again = load_dataset("symbols", "test", n=1005, image_size=16)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.masks, again.masks)
    assert again.class_names == SYMBOL_CLASSES
    files[0].write_bytes(b"not an npz")  # a broken cache is made again, not trusted
    np.testing.assert_array_equal(load_dataset("symbols", "test", n=1005, image_size=16).images, first.images)
    with pytest.raises(ValueError, match="split"):
        load_dataset("symbols", "holdout")


def test_clutter_is_seeded_and_photo_like():
    a, b = make_clutter(5, seed=2, image_size=32), make_clutter(5, seed=2, image_size=32)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (5, 32, 32, 3) and a.std() > 20
