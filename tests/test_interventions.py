"""Interventions on a live ViT, checked against answers that follow from the maths.

Small models with random weights; every expected value is computed another way: by hand from the
model's own stages, or from a symmetry of attention (permutation equivariance).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import vit
from vit import Intervention

ATOL = 1e-5


def small(**kw) -> vit.VisionTransformer:
    torch.manual_seed(0)
    cfg = vit.ViTConfig(image_size=16, patch_size=4, in_channels=3, dim=32, depth=3, heads=4, mlp_dim=64, num_classes=7)
    model = vit.VisionTransformer(cfg.replace(**kw))
    with torch.no_grad():  # weights that make every input count (std 0.02 gives a near-constant output)
        for name, p in model.named_parameters():
            if p.ndim >= 2 and name != "pos_embed":
                p.normal_(0, p[0].numel() ** -0.5)  # 1/√fan_in
            elif "norm" in name and name.endswith("weight"):
                p.normal_(1, 0.1)
            else:  # biases, [class], positions: non-zero, so a missed term would show
                p.normal_(0, 0.5)
    return model.eval().requires_grad_(False)


def image(b: int = 2, seed: int = 1, size: int = 16) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def trace(model, x, iv=None, **kw):
    with torch.no_grad():
        return model.trace(x, intervention=iv, **kw)


def close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


PERM = tuple(torch.randperm(16, generator=torch.Generator().manual_seed(3)).tolist())


# --- the empty intervention -----------------------------------------------------------------------


@pytest.mark.parametrize("grad", [False, True])
def test_empty_intervention_is_bit_identical(grad):
    m = small()
    x = image()
    with torch.set_grad_enabled(grad):
        plain = m.trace(x, mlp_activations=True)
        empty = m.trace(x, mlp_activations=True, intervention=Intervention())
        assert torch.equal(m(x, intervention=Intervention()), m(x))
    for f in dataclasses.fields(vit.Trace):
        a, b = getattr(plain, f.name), getattr(empty, f.name)
        if isinstance(a, list):
            assert len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b)), f.name
        elif isinstance(a, torch.Tensor):
            assert torch.equal(a, b), f.name
        else:
            assert a == b, f.name
    # options that only qualify a change are not a change by themselves
    assert Intervention(hide_with="drop", heads_with="mean", move_positions=True, position_seed=5).is_empty


def test_intervention_is_hashable_data():
    a = Intervention(hide=[5, 1, 5], heads_off=[[0, 1]], skip_mlp=[2])
    b = Intervention(hide=(1, 5), heads_off=((0, 1),), skip_mlp=(2,))
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert repr(b) == "Intervention(hide=(1, 5), heads_off=((0, 1),), skip_mlp=(2,))"
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.hide = (2,)


# --- hiding patches -----------------------------------------------------------------------------


def test_hide_zero_sets_the_patch_pixels_to_zero():
    m = small()
    x = image()
    by_hand = x.clone()
    by_hand[:, :, 4:8, 8:12] = 0  # patch 6 of the 4×4 grid: row 1, column 2
    t = trace(m, x, Intervention(hide=(6,)))
    close(t.logits, trace(m, by_hand).logits, atol=1e-6)
    assert (t.patches[:, 6] == 0).all() and torch.equal(t.patches[:, 5], trace(m, x).patches[:, 5])
    close(t.patch_embeddings[:, 6], m.patch_embed.bias.expand(2, -1), atol=1e-6)  # E·0 + b


def test_hide_mean_gives_the_mean_token():
    m = small()
    x = image()
    plain, t = trace(m, x), trace(m, x, Intervention(hide=(0, 9), hide_with="mean"))
    mean_token = plain.patch_embeddings.mean(dim=1)
    for p in (0, 9):
        close(t.patch_embeddings[:, p], mean_token)
    close(t.patch_embeddings[:, 1], plain.patch_embeddings[:, 1], atol=1e-6)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_dropping_a_token_equals_the_shorter_sequence_by_hand(pool):
    m = small(pool=pool)
    x = image()
    dropped = (2, 11)
    t = trace(m, x, Intervention(hide=dropped, hide_with="drop"))
    with torch.no_grad():
        z, _, _, _ = m.embed(x)
        keep = [0] + [1 + p for p in range(16) if p not in dropped]
        z = z[:, keep]
        attentions = []
        for block in m.blocks:
            z, out = block(z, need_weights=True)
            attentions.append(out["attn"])
        _, _, logits = m.forward_head(m.norm(z))
    assert t.hidden_states[0].shape == (2, 15, 32) and t.attentions[0].shape == (2, 4, 15, 15)
    assert t.patch_index.tolist() == [p for p in range(16) if p not in dropped]
    close(t.logits, logits)
    for a, b in zip(t.attentions, attentions):
        close(a, b)
    close(m(x, intervention=Intervention(hide=dropped, hide_with="drop")), logits)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_dropping_per_item_masks_keys_and_equals_the_shorter_sequence(pool):
    """``hide_each`` with 'drop' cannot shorten each item differently; masking the dropped keys (and
    leaving them out of a mean pool) must give the same answer as the shorter sequence."""
    m = small(pool=pool)
    x = image(1)
    each = ((3,), (0, 15), ())
    t = trace(m, x, Intervention(hide_each=each, hide_with="drop"))
    assert t.logits.shape == (3, 7) and t.token_mask.shape == (3, 17)
    for i, hidden in enumerate(each):
        alone = trace(m, x, Intervention(hide=hidden, hide_with="drop"))
        close(t.logits[i], alone.logits[0])
        for p in hidden:
            assert (t.attentions[0][i, :, :, 1 + p] == 0).all()  # nothing attends to a dropped token
    close(m(x, intervention=Intervention(hide_each=each, hide_with="drop")), t.logits)


@pytest.mark.parametrize("hide_with", ["zero", "mean"])
def test_hide_each_equals_hide_one_at_a_time(hide_with):
    m = small()
    x = image(1)
    each = ((1,), (4, 5), ())
    t = trace(m, x, Intervention(hide_each=each, hide_with=hide_with))
    for i, hidden in enumerate(each):
        close(t.logits[i], trace(m, x, Intervention(hide=hidden, hide_with=hide_with)).logits[0], atol=1e-6)
    # one image per item works too
    xs = image(3)
    got = trace(m, xs, Intervention(hide_each=each, hide_with=hide_with)).logits
    for i, hidden in enumerate(each):
        close(got[i], trace(m, xs[i:i + 1], Intervention(hide=hidden, hide_with=hide_with)).logits[0], atol=1e-6)


# --- shuffling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_without_positions_shuffling_changes_nothing_but_the_order(pool):
    m = small(pool=pool)
    x = image()
    still = trace(m, x, Intervention(positions="zero"))
    moved = trace(m, x, Intervention(positions="zero", shuffle=PERM))
    assert (still.position_embeddings == 0).all()
    close(moved.final_tokens[:, 0], still.final_tokens[:, 0])
    close(moved.pooled, still.pooled)
    close(moved.logits, still.logits)
    # every other token is the same token, moved: slot i now holds patch PERM[i]
    idx = [0] + [1 + p for p in PERM]
    for a, b in zip(moved.hidden_states, still.hidden_states):
        close(a, b[:, idx])
    assert moved.patch_index.tolist() == list(PERM)


def test_with_positions_shuffling_the_patches_changes_the_output():
    m = small()
    x = image()
    plain, moved = trace(m, x), trace(m, x, Intervention(shuffle=PERM))
    assert (moved.logits - plain.logits).abs().max() > 1e-3
    close(moved.patches, plain.patches[:, list(PERM)], atol=0)
    assert moved.position_index.tolist() == list(range(16))  # the positions stayed in their slots


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_moving_tokens_with_their_positions_changes_nothing(pool):
    m = small(pool=pool)
    x = image()
    plain = trace(m, x)
    for shuffle in (PERM, 7):  # a permutation, or a seed
        moved = trace(m, x, Intervention(shuffle=shuffle, move_positions=True))
        close(moved.logits, plain.logits)
        perm = moved.patch_index.tolist()
        assert sorted(perm) == list(range(16)) and perm != list(range(16))
        assert moved.position_index.tolist() == perm
        idx = [0] + [1 + p for p in perm]
        close(moved.attentions[-1], plain.attentions[-1][:, :, idx][:, :, :, idx])
    assert torch.equal(trace(m, x, Intervention(shuffle=7)).patch_index, trace(m, x, Intervention(shuffle=7)).patch_index)


def test_shuffled_positions_are_a_permutation_of_the_rows():
    m = small()
    x = image()
    plain, t = trace(m, x), trace(m, x, Intervention(positions="shuffle", position_seed=2))
    wear = t.position_index.tolist()
    assert sorted(wear) == list(range(16)) and wear != list(range(16))
    close(t.position_embeddings[:, 0], plain.position_embeddings[:, 0], atol=0)
    close(t.position_embeddings[:, 1:], plain.position_embeddings[:, 1:][:, wear], atol=0)
    assert (t.logits - plain.logits).abs().max() > 1e-4


# --- heads and branches -------------------------------------------------------------------------


def test_every_head_off_leaves_only_the_output_bias():
    m = small()
    x = image()
    layer = 1
    t = trace(m, x, Intervention(heads_off=[(layer, h) for h in range(4)]))
    z_prev, z_mid = t.hidden_states[layer], t.residual_mid[layer]
    assert torch.equal(z_mid, z_prev + m.blocks[layer].attn.proj.bias)  # z'ₗ = zₗ₋₁ + b_O, exactly
    plain = trace(m, x)
    for i in range(layer + 1):  # earlier stages untouched; the attention maps themselves are unchanged
        assert torch.equal(t.hidden_states[i], plain.hidden_states[i])
        assert torch.equal(t.attentions[i], plain.attentions[i])


def test_a_head_off_equals_zeroing_its_columns_of_w_o():
    """Head h's output enters W_O through columns h·d … (h+1)·d: zeroing the output is zeroing those."""
    m = small()
    x = image()
    twin = copy.deepcopy(m)
    with torch.no_grad():
        twin.blocks[2].attn.proj.weight[:, 8:16] = 0  # head 1 of 4, d = 8
    close(trace(m, x, Intervention(heads_off=[(2, 1)])).logits, trace(twin, x).logits, atol=1e-6)
    close(m(x, intervention=Intervention(heads_off=[(2, 1)])), trace(twin, x).logits)


def test_mean_ablated_heads_give_every_token_the_same_branch_output():
    m = small()
    x = image()
    t = trace(m, x, Intervention(heads_off=[(0, h) for h in range(4)], heads_with="mean"))
    branch = t.residual_mid[0] - t.hidden_states[0]  # (B, T, D), the same row for every token
    close(branch, branch[:, :1].expand_as(branch))
    # and it is W_O applied to the mean over tokens of the heads' outputs
    plain = trace(m, x)
    with torch.no_grad():
        blk = m.blocks[0]
        h = blk.norm1(plain.hidden_states[0])
        v = blk.attn.qkv(h)[..., 64:].reshape(2, 17, 4, 8).transpose(1, 2)  # (B, H, T, d)
        heads = (plain.attentions[0] @ v).mean(dim=2)  # (B, H, d)
        want = blk.attn.proj(heads.reshape(2, 32))
    close(branch[:, 0], want)


@pytest.mark.parametrize("layer", [0, 2])
def test_skipping_a_branch_passes_the_residual_stream_unchanged(layer):
    m = small()
    x = image()
    plain = trace(m, x)
    t = trace(m, x, Intervention(skip_attention=(layer,)))
    assert torch.equal(t.residual_mid[layer], t.hidden_states[layer])  # z'ₗ = zₗ₋₁
    assert torch.equal(t.attentions[layer], plain.attentions[layer])  # still computed, to be shown
    close(m(x, intervention=Intervention(skip_attention=(layer,))), t.logits)
    t = trace(m, x, Intervention(skip_mlp=(layer,)), mlp_activations=True)
    assert torch.equal(t.hidden_states[layer + 1], t.residual_mid[layer])  # zₗ = z'ₗ
    assert torch.equal(t.mlp_activations[layer], plain_mlp(m, x)[layer])
    close(m(x, intervention=Intervention(skip_mlp=(layer,))), t.logits)
    assert (t.logits - plain.logits).abs().max() > 1e-4


def plain_mlp(m, x):
    return trace(m, x, mlp_activations=True).mlp_activations


def test_interventions_combine():
    m = small()
    x = image()
    iv = Intervention(hide=(3,), hide_with="drop", shuffle=PERM, move_positions=True, heads_off=[(0, 0)], skip_mlp=[1])
    t = trace(m, x, iv)
    assert t.patch_index.tolist() == [p for p in PERM if p != 3]
    assert t.position_index.tolist() == t.patch_index.tolist()
    # moving tokens with their positions still changes nothing else
    same = trace(m, x, Intervention(hide=(3,), hide_with="drop", heads_off=[(0, 0)], skip_mlp=[1]))
    close(t.logits, same.logits)
    close(m(x, intervention=iv), t.logits)
    assert t.to_numpy()["patch_index"].dtype.kind == "i"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("iv,match", [
    (Intervention(hide=(16,)), "cannot hide patch 16: this input has 16 patches"),
    (Intervention(hide_each=((0,), (99,))), "cannot hide patch 99"),
    (Intervention(shuffle=(0, 1, 2)), "permutation of the 16 patches"),
    (Intervention(shuffle=(0,) * 16), "permutation"),
    (Intervention(heads_off=[(3, 0)]), "layer 3 does not exist; the model has 3 layers"),
    (Intervention(heads_off=[(0, 4)]), "head 4 does not exist; each layer has 4 heads"),
    (Intervention(skip_attention=(5,)), "skip_attention: layer 5"),
    (Intervention(skip_mlp=(3,)), "skip_mlp: layer 3"),
    (Intervention(hide_each=((0,), (1,), (2,))), "hide_each has 3 items but the batch has 2"),
])
def test_invalid_indices_raise_a_clear_error(iv, match):
    m = small()
    with pytest.raises(ValueError, match=match):
        trace(m, image(2), iv)
    with pytest.raises(ValueError, match=match):
        m(image(2), intervention=iv)


@pytest.mark.parametrize("kw,match", [
    (dict(hide=(-1,)), "negative"), (dict(hide=(1.5,)), "not a whole number"), (dict(hide=(True,)), "not a whole number"),
    (dict(hide_with="blur"), "hide_with"), (dict(positions="random"), "positions"), (dict(heads_with="max"), "heads_with"),
    (dict(heads_off=[(1,)]), r"\(layer, head\) pairs"), (dict(hide_each=()), "empty"), (dict(shuffle=True), "bool"),
])
def test_invalid_interventions_are_refused_when_made(kw, match):
    with pytest.raises(ValueError, match=match):
        Intervention(**kw)


def test_a_trace_with_another_object_is_refused():
    with pytest.raises(TypeError, match="vit.Intervention"):
        small()(image(), intervention={"hide": (1,)})


# --- one shared model, many threads -------------------------------------------------------------


def test_threads_with_their_own_interventions_get_their_own_results():
    m = small()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x = image(1)
    interventions = [Intervention(hide=(i,), hide_with=("zero", "mean", "drop")[i % 3]) for i in range(16)]
    interventions += [Intervention(heads_off=[(i % 3, i % 4)], heads_with=("zero", "mean")[i % 2]) for i in range(8)]
    interventions += [Intervention(shuffle=i, move_positions=bool(i % 2)) for i in range(8)]
    interventions += [Intervention(skip_attention=(i,)) for i in range(3)] + [Intervention(skip_mlp=(i,)) for i in range(3)]
    want = [trace(m, x, iv) for iv in interventions]
    barrier = threading.Barrier(8)

    def run(i):
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        with torch.inference_mode():
            return m.trace(x, intervention=interventions[i]) if i % 2 else m(x, intervention=interventions[i])

    order = torch.randperm(len(interventions), generator=torch.Generator().manual_seed(0)).tolist()
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = dict(zip(order, pool.map(run, order)))
    for i, w in enumerate(want):
        g = got[i]
        if isinstance(g, vit.Trace):
            close(g.logits, w.logits, atol=1e-6)
            for a, b in zip(g.attentions, w.attentions):
                close(a, b, atol=1e-6)
        else:
            close(g, w.logits)
    # the results really differ (tokens moved with their positions all give the plain answer: left out)
    differ = [w.logits[0] for iv, w in zip(interventions, want) if not iv.move_positions]
    assert all((a - b).abs().max() > 1e-5 for i, a in enumerate(differ) for b in differ[:i])
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not any(isinstance(v, torch.Tensor) for v in vars(m).values())
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in m.modules())
