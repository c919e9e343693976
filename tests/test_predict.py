"""The "I don't know" contract: vit.predict, the known rule and its calibration."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vit
from vit.predict import Prediction, calibrate_known_rule, decide_known, prediction_from_logits
from vit.symbols import NOTHING, SYMBOL_CLASSES, render_symbol

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
NAMES = ["a", "b", "c", NOTHING]


def tiny_model(rule=None) -> vit.VisionTransformer:
    torch.manual_seed(0)
    m = vit.VisionTransformer(vit.ViTConfig(image_size=16, patch_size=4, in_channels=3, dim=16, depth=1, heads=2,
                                            mlp_dim=32, num_classes=4)).eval()
    m.class_names = list(NAMES)
    m.meta = {"mean": [0.5] * 3, "std": [0.5] * 3, **({"known_rule": rule} if rule else {})}
    return m


def test_prediction_fields_and_top_k_order():
    p = vit.predict(tiny_model(), Image.new("RGB", (40, 30), (200, 10, 10)), top_k=3)
    assert isinstance(p, Prediction)
    assert len(p.labels) == len(p.probs) == 3 and set(p.labels) <= set(NAMES)
    assert p.probs == sorted(p.probs, reverse=True)
    assert sum(p.all_probs) == pytest.approx(1.0, abs=1e-5) and p.probs[0] == pytest.approx(max(p.all_probs))
    assert p.known is True and p.rule is None, "no calibrated rule: nothing can be claimed, so known stays True"
    assert vit.predict(tiny_model(), Image.new("L", (16, 16)), top_k=99).labels.__len__() == 4


def test_predict_matches_the_model_on_the_same_input():
    m = tiny_model()
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    with torch.inference_mode():
        probs = m(vit.preprocess(img, m)).softmax(-1)[0]
    p = vit.predict(m, img, top_k=4)
    assert p.labels[0] == NAMES[int(probs.argmax())]
    np.testing.assert_allclose(p.all_probs, probs.numpy(), atol=1e-6)


def test_the_rule_by_hand():
    rule = {"score": "max_prob", "threshold": 0.6, "nothing_class": NOTHING}
    logits = torch.tensor([[3.0, 0.0, 0.0, 0.0],    # a wins clearly: known
                           [0.1, 0.0, 0.0, 0.0],    # a wins, but p ≈ 0.27 < 0.6: low score
                           [0.0, 0.0, 0.0, 5.0]])   # nothing wins: not known, whatever its probability
    known, score, reasons = decide_known(logits, rule, NAMES)
    assert known.tolist() == [True, False, False]
    assert reasons == ["", "low-score", "nothing"]
    assert score[0].item() == pytest.approx(np.exp(3) / (np.exp(3) + 3))
    energy = decide_known(logits, {"score": "energy", "threshold": 2.0}, NAMES)
    assert energy[0].tolist() == [True, False, True] and energy[1][2].item() == pytest.approx(np.log(np.exp(5) + 3))


def test_the_forced_guess_is_never_the_nothing_class():
    rule = {"score": "max_prob", "threshold": 0.5, "nothing_class": NOTHING}
    p = prediction_from_logits(torch.tensor([0.0, 2.0, 1.0, 4.0]), NAMES, rule, top_k=2)
    assert p.labels == [NOTHING, "b"] and not p.known and p.reason == "nothing"
    assert p.guess == "b" and p.guess_prob == pytest.approx(p.all_probs[1])


def test_calibration_keeps_the_share_asked_for_and_picks_the_better_score():
    g = torch.Generator().manual_seed(0)
    # in-domain: one class far ahead; out-of-domain: flat logits
    inside = torch.randn(1000, 4, generator=g) * 0.3
    inside[torch.arange(1000), torch.arange(1000) % 3] += torch.linspace(1, 6, 1000)
    outside = torch.randn(500, 4, generator=g) * 0.3
    rule = calibrate_known_rule(inside, outside, NAMES, keep=0.9, nothing_class=NOTHING)
    assert rule["score"] in ("max_prob", "energy")
    assert decide_known(inside, rule, NAMES)[0].float().mean().item() == pytest.approx(0.9, abs=0.002)
    by = rule["calibration"]["by_score"]
    assert by[rule["score"]]["known_out"] == min(v["known_out"] for v in by.values())
    assert by[rule["score"]]["known_out"] < 0.05
    with pytest.raises(ValueError):
        calibrate_known_rule(inside, outside, NAMES, keep=1.0)


def test_every_bundled_model_has_a_calibrated_rule():
    for name in vit.available_models():
        rule = vit.load_model(name, "cpu").meta.get("known_rule")
        assert rule and rule["score"] in ("max_prob", "energy") and np.isfinite(rule["threshold"]), name
        assert rule["calibration"]["in_domain_images"] >= 1000, name


def _symbols_model():
    if "vit-tiny-symbols" not in vit.available_models():
        pytest.skip("vit-tiny-symbols is not bundled")
    model = vit.load_model("vit-tiny-symbols", "cpu")
    if model.meta.get("provisional"):
        pytest.skip("the bundled vit-tiny-symbols is a provisional, untrained placeholder")
    return model


def test_a_drawn_symbol_is_known_and_named():
    model = _symbols_model()
    hits = 0
    for i, label in enumerate(["3", "7", "arrow left", "0", "arrow up"]):
        image, _ = render_symbol(np.random.default_rng(1000 + i), label, 128)
        p = vit.predict(model, Image.fromarray(image))
        hits += p.known and p.labels[0] == label
    assert hits >= 4


@pytest.mark.parametrize("photo", ["cat.jpg", "astronaut.jpg", "coffee.jpg", "rocket.jpg", "camera.jpg"])
def test_a_photo_is_not_known(photo):
    model = _symbols_model()
    p = vit.predict(model, Image.open(SAMPLES / photo))
    assert not p.known and p.guess in SYMBOL_CLASSES and p.guess != NOTHING
