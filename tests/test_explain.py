"""Explanation methods and their checks, against answers computed another way."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import vit
from vit import Intervention
from vit import analysis as A
from vit import explain as E

from test_interventions import image, small


def probability(model, x, iv, c):
    with torch.no_grad():
        return float(model.trace(x, intervention=iv).logits.softmax(-1)[0, c])


@pytest.fixture(scope="module")
def trained() -> vit.VisionTransformer:
    if "vit-tiny-shapes" not in vit.available_models():
        pytest.skip("no bundled vit-tiny-shapes model")
    return vit.load_model("vit-tiny-shapes", device="cpu")


# --- the pure maths, by hand --------------------------------------------------------------------


def test_class_attention_map_by_hand():
    attn = torch.zeros(1, 2, 5, 5)
    attn[0, 0, 0] = torch.tensor([0.2, 0.4, 0.0, 0.4, 0.0])
    attn[0, 1, 0] = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0])
    got = A.class_attention_map(attn, (2, 2))
    torch.testing.assert_close(got, torch.tensor([[[0.2, 0.5], [0.2, 0.0]]]))


def test_gradient_rollout_by_hand():
    # one layer, two heads, two tokens. ∇A ⊙ A, positive part, mean over heads:
    attn = torch.tensor([[[[0.5, 0.5], [0.25, 0.75]], [[1.0, 0.0], [0.5, 0.5]]]])
    grad = torch.tensor([[[[2.0, -2.0], [0.0, 4.0]], [[1.0, 3.0], [-1.0, 0.0]]]])
    # head 0: [[1, -1], [0, 3]]⁺ = [[1, 0], [0, 3]]; head 1: [[1, 0], [-.5, 0]]⁺ = [[1, 0], [0, 0]]
    a_bar = torch.tensor([[1.0, 0.0], [0.0, 1.5]])
    r1 = torch.eye(2) + a_bar  # R = I + Ā·I
    torch.testing.assert_close(A.gradient_rollout([attn], [grad])[0], r1)
    # a second layer adds Ā·R to R; a missing gradient adds nothing
    torch.testing.assert_close(A.gradient_rollout([attn, attn], [grad, grad])[0], r1 + a_bar @ r1)
    torch.testing.assert_close(A.gradient_rollout([attn, attn], [grad, None])[0], r1)


# --- occlusion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("hide_with", ["zero", "mean", "drop"])
def test_occlusion_of_one_patch_equals_a_trace_with_it_hidden(hide_with):
    m = small()
    x = image(1)
    with torch.no_grad():
        c = int(m(x).argmax())
    occ = E.occlusion_map(m, x, hide_with=hide_with)
    assert occ.shape == (1, 4, 4)
    p0 = probability(m, x, None, c)
    for patch in (0, 5, 15):
        want = p0 - probability(m, x, Intervention(hide=(patch,), hide_with=hide_with), c)
        assert float(occ[0].flatten()[patch]) == pytest.approx(want, abs=1e-6)
    assert occ.abs().max() > 1e-4


def test_occlusion_for_a_chosen_class_and_several_images():
    m = small()
    x = image(2)
    occ = E.occlusion_map(m, x, target=[3, 5])
    for i, c in enumerate((3, 5)):
        torch.testing.assert_close(occ[i], E.occlusion_map(m, x[i:i + 1], target=c)[0])
    with pytest.raises(ValueError, match="out of range"):
        E.occlusion_map(m, x[:1], target=7)


# --- deletion and insertion ---------------------------------------------------------------------


@pytest.mark.parametrize("hide_with", ["zero", "drop"])
def test_deletion_and_insertion_curves_start_and_end_where_they_must(hide_with):
    m = small()
    x = image(1)
    saliency = torch.rand(4, 4, generator=torch.Generator().manual_seed(4))
    cv = E.deletion_insertion(m, x, saliency, hide_with=hide_with)
    c = cv.target
    every = Intervention(hide=tuple(range(16)), hide_with=hide_with)
    p_image, p_hidden = probability(m, x, None, c), probability(m, x, every, c)
    assert abs(p_image - p_hidden) > 1e-4
    assert cv.deletion.shape == cv.insertion.shape == cv.fractions.shape == (17,)
    assert float(cv.deletion[0]) == pytest.approx(p_image, abs=1e-6)
    assert float(cv.deletion[-1]) == pytest.approx(p_hidden, abs=1e-6)
    assert float(cv.insertion[0]) == pytest.approx(p_hidden, abs=1e-6)
    assert float(cv.insertion[-1]) == pytest.approx(p_image, abs=1e-6)
    # the order is the map's ranking, and step k hides (or reveals) its top k patches
    assert cv.order.tolist() == saliency.flatten().argsort(descending=True).tolist()
    top3 = tuple(cv.order[:3].tolist())
    assert float(cv.deletion[3]) == pytest.approx(probability(m, x, Intervention(hide=top3, hide_with=hide_with), c), abs=1e-6)
    rest = tuple(cv.order[3:].tolist())
    assert float(cv.insertion[3]) == pytest.approx(probability(m, x, Intervention(hide=rest, hide_with=hide_with), c), abs=1e-6)
    # areas by the trapezoidal rule over [0, 1]
    d = cv.deletion
    assert cv.deletion_auc == pytest.approx(float(((d[1:] + d[:-1]) / 2).sum() / 16), abs=1e-6)
    assert 0 <= cv.deletion_auc <= 1 and 0 <= cv.insertion_auc <= 1


def test_deletion_with_fewer_steps():
    m = small()
    x = image(1)
    cv = E.deletion_insertion(m, x, torch.arange(16.0), target=2, steps=5)
    assert cv.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and cv.target == 2
    full = E.deletion_insertion(m, x, torch.arange(16.0), target=2)
    torch.testing.assert_close(cv.deletion, full.deletion[::4])
    with pytest.raises(ValueError, match="patches"):
        E.deletion_insertion(m, x, torch.rand(3, 3))


# --- the gradient method ------------------------------------------------------------------------


def test_gradient_map_is_class_specific_and_leaves_the_model_alone():
    m = small()
    x = image(1)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    maps = [E.gradient_map(m, x, target=c) for c in range(3)]
    assert all(mp.shape == (1, 4, 4) and (mp >= 0).all() and float(mp.max()) == pytest.approx(1.0) for mp in maps)
    assert (maps[0] - maps[1]).abs().max() > 1e-3  # it depends on the class asked about...
    torch.testing.assert_close(E.attention_map(m, x, target=0), E.attention_map(m, x, target=1))  # attention does not
    with torch.inference_mode():  # as the app calls it
        torch.testing.assert_close(E.gradient_map(m, x, target=0), maps[0])
    assert not any(p.requires_grad or p.grad is not None for p in m.parameters())
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_attention_and_rollout_maps_reuse_the_analysis():
    m = small()
    x = image(2)
    with torch.no_grad():
        t = m.trace(x)
    torch.testing.assert_close(E.attention_map(m, x), t.attentions[-1].mean(1)[:, 0, 1:].reshape(2, 4, 4))
    torch.testing.assert_close(E.rollout_map(m, x), A.class_rollout_map(A.attention_rollout(t.attentions), (4, 4)))
    with pytest.raises(ValueError, match="unknown method"):
        E.explanation_map(m, x, "lime")


# --- the sanity check ---------------------------------------------------------------------------


def test_randomising_the_weights_changes_the_gradient_map(trained):
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    check = E.sanity_check(trained, x, methods=("attention", "gradient"), seed=0)
    depth = trained.config.depth
    assert check.stages == ("original", "head", *[f"block {i}" for i in reversed(range(depth))], "embedding")
    maps = check.maps["gradient"]
    assert maps.shape == (depth + 3, 8, 8)
    torch.testing.assert_close(maps[0], E.gradient_map(trained, x, target=check.target)[0])
    assert check.similarity["gradient"][0] == pytest.approx(1.0)
    assert (maps[-1] - maps[0]).abs().max() > 0.1 and check.similarity["gradient"][-1] < 0.9
    # the head does not feed the attention maps: randomising it leaves raw attention as it was
    torch.testing.assert_close(check.maps["attention"][1], check.maps["attention"][0])
    # the shared model is untouched, and the same seed gives the same randomisation
    for k, v in trained.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not any(p.requires_grad for p in trained.parameters())
    again = E.sanity_check(trained, x, methods=("gradient",), seed=0)
    torch.testing.assert_close(again.maps["gradient"], maps)
    other = E.sanity_check(trained, x, methods=("gradient",), seed=1)
    assert (other.maps["gradient"][-1] - maps[-1]).abs().max() > 1e-3


def test_cascading_randomisation_changes_one_more_part_each_stage():
    m = small()
    original = {k: v.clone() for k, v in m.state_dict().items()}
    changed = []
    for name, twin in E.cascading_randomisation(m, seed=5):
        assert twin is not m
        changed.append({k for k, v in twin.state_dict().items() if not torch.equal(v, original[k])})
    assert changed[0] == set()
    assert all(a < b for a, b in zip(changed, changed[1:]))  # cumulative
    assert changed[1] == {k for k in original if k.startswith(("norm.", "head."))}
    assert changed[2] - changed[1] == {k for k in original if k.startswith("blocks.2.")}
    assert changed[-1] == set(original)
    assert all(torch.equal(v, original[k]) for k, v in m.state_dict().items())


# --- threads ------------------------------------------------------------------------------------


def test_explanations_from_many_threads_on_one_model():
    m = small()
    xs = [image(1, seed=s) for s in range(8)]
    want = [(E.gradient_map(m, x), E.occlusion_map(m, x)) for x in xs]
    barrier = threading.Barrier(4)

    def run(i):
        barrier.wait(timeout=10)
        return E.gradient_map(m, xs[i]), E.occlusion_map(m, xs[i])

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(run, range(8)))
    for (g1, o1), (g2, o2) in zip(got, want):
        torch.testing.assert_close(g1, g2, atol=1e-6, rtol=0)
        torch.testing.assert_close(o1, o2, atol=1e-6, rtol=0)


# --- the benchmark's section for all this ---------------------------------------------------------


def test_bench_times_interventions_at_smoke_size(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from vit import bench

    lines = []
    result = bench.run_interventions_bench(smoke=True, device="cpu", threads=1, out=lines.append)
    rows = {r["call"]: r for r in result["rows"]}
    assert set(rows) == {"trace", "trace+intervention", "occlusion", "gradient", "deletion+insertion"}
    assert rows["occlusion"]["batch"] == 17 and rows["deletion+insertion"]["batch"] == 34
    assert all(r["ms"] > 0 for r in rows.values())
    assert rows["occlusion"]["target_ms"] == 500 and rows["trace+intervention"]["target_ms"] == 250
    assert lines[0].startswith("machine:") and any(line.startswith("model") for line in lines)
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, "-m", "vit.bench", "--interventions", "--smoke", "--device", "cpu",
                           "--json", str(out)], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert {r["call"] for r in json.loads(out.read_text())["rows"]} == set(rows)
