"""Rebuild assets/samples: a few public-domain/CC0 photos from scikit-image's data, Fashion-MNIST
test items, generated shapes and generated drawings. Needs `pip install scikit-image` and the Debian
Fashion-MNIST; `python scripts/make_samples.py drawings` makes only the drawings (vit.symbols)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "assets" / "samples"

PHOTOS = {  # file name: (skimage.data function, credit)
    "cat": ("chelsea", "Chelsea the cat, by Stefan van der Walt, CC0"),
    "coffee": ("coffee", "A cup of coffee, by Rachel Michetti, CC0"),
    "rocket": ("rocket", "A Falcon 9 launch, by SpaceX, public domain"),
    "astronaut": ("astronaut", "Astronaut Eileen Collins, NASA, public domain"),
    "camera": ("camera", "A photographer with a camera, by Lav Varshney, CC0"),
}
FASHION_ITEMS = [0, 1, 2, 13, 17]  # test-set indices: boot, pullover, trouser, bag/sneaker…
DRAWINGS = {"3": 0, "arrow left": 2, "7": 3}  # symbol: seed of a clear hand-drawn one, as a camera sees it
DRAWING_SIZE = 256
README_HEAD = ["# Sample images", "", "| file | what | licence / credit |", "|---|---|---|"]


def drawings() -> list[str]:
    """Photo-like drawings of symbols, as vit-tiny-symbols sees them through a camera; one README row each."""
    from vit.symbols import render_symbol

    rows = []
    for label, seed in DRAWINGS.items():
        image, _ = render_symbol(np.random.default_rng(seed), label, S=DRAWING_SIZE)
        name = f"symbols-{label.replace(' ', '-')}.png"
        Image.fromarray(image).save(OUT / name)
        rows.append(f"| {name} | generated drawing: {label} (seed {seed}, {DRAWING_SIZE} px) | "
                    "made by this project (vit/symbols.py), CC0 |")
    return rows


def write_readme(rows: list[str]) -> None:
    """Write the samples' README: these rows, after the rows of files they do not replace."""
    readme = OUT / "README.md"
    old = readme.read_text().splitlines()[len(README_HEAD):] if readme.is_file() else []
    new_files = {r.split("|")[1].strip() for r in rows}
    kept = [r for r in old if r.startswith("|") and r.split("|")[1].strip() not in new_files]
    readme.write_text("\n".join(README_HEAD + kept + rows) + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if sys.argv[1:] == ["drawings"]:
        write_readme(drawings())
        return

    import skimage.data

    from vit.data import load_dataset

    lines = list(README_HEAD)
    for name, (fn, credit) in PHOTOS.items():
        img = Image.fromarray(getattr(skimage.data, fn)())
        img.thumbnail((384, 384), Image.Resampling.LANCZOS)
        img.convert("RGB").save(OUT / f"{name}.jpg", quality=90)
        lines.append(f"| {name}.jpg | photo | {credit}; from scikit-image's bundled data |")
    fashion = load_dataset("fashion-mnist", "test")
    for i in FASHION_ITEMS:
        label = fashion.class_names[fashion.labels[i]].replace("/", "-").replace(" ", "-").lower()
        name = f"fashion-{i}-{label}.png"
        Image.fromarray(fashion.images[i][..., 0]).save(OUT / name)
        lines.append(f"| {name} | Fashion-MNIST test item {i} ({fashion.class_names[fashion.labels[i]]}) | Fashion-MNIST, MIT licence (Zalando Research) |")
    shapes = load_dataset("shapes", "test", n_test=64)
    seen = set()
    for img, y in zip(shapes.images, shapes.labels):
        if len(seen) == 5:
            break
        if y in seen:
            continue
        seen.add(int(y))
        label = shapes.class_names[y].lower().replace(" ", "-").replace("(", "").replace(")", "")
        name = f"shapes-{label}.png"
        Image.fromarray(img).resize((128, 128), Image.Resampling.NEAREST).save(OUT / name)
        lines.append(f"| {name} | generated shape: {shapes.class_names[y]} | made by this project (vit/data.py), CC0 |")
    lines += drawings()
    (OUT / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
