"""Rebuild assets/samples: a few public-domain/CC0 photos from scikit-image's data, Fashion-MNIST
test items and generated shapes. Needs `pip install scikit-image` and the Debian Fashion-MNIST."""

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


def main() -> None:
    import skimage.data

    from vit.data import load_dataset

    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# Sample images", "", "| file | what | licence / credit |", "|---|---|---|"]
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
    (OUT / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
