"""Analyses checked against answers worked out by hand on tiny cases."""

import math

import pytest
import torch

from vit import analysis as A


def test_rollout_one_and_two_layers_by_hand():
    attn = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])  # (B=1, H=1, 2, 2)
    # A + I = [[1.5, .5], [0, 2]] → rows normalised: [[.75, .25], [0, 1]]
    one = A.attention_rollout([attn])
    torch.testing.assert_close(one[0], torch.tensor([[0.75, 0.25], [0.0, 1.0]]))
    # Two identical layers: [[.75, .25], [0, 1]]² = [[.5625, .4375], [0, 1]]
    two = A.attention_rollout([attn, attn])
    torch.testing.assert_close(two[0], torch.tensor([[0.5625, 0.4375], [0.0, 1.0]]))


def test_rollout_order_is_last_layer_leftmost():
    a1 = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    a2 = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # layer matrices: R1 = [[1,0],[.5,.5]], R2 = [[.5,.5],[0,1]]; rollout = R2 @ R1
    got = A.attention_rollout([a1, a2])[0]
    torch.testing.assert_close(got, torch.tensor([[0.75, 0.25], [0.5, 0.5]]))


def test_rollout_head_fusion_max_and_min():
    heads = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    # max fusion = all ones; + I = [[2,1],[1,2]]; rows / 3
    torch.testing.assert_close(A.attention_rollout([heads], "max")[0], torch.tensor([[2 / 3, 1 / 3], [1 / 3, 2 / 3]]))
    # min fusion = zeros; + I = I
    torch.testing.assert_close(A.attention_rollout([heads], "min")[0], torch.eye(2))
    torch.testing.assert_close(A.attention_rollout([heads], "mean")[0], torch.tensor([[0.75, 0.25], [0.25, 0.75]]))
    with pytest.raises(ValueError):
        A.attention_rollout([heads], "median")


def test_rollout_discard_ratio_by_hand():
    attn = torch.tensor([[[[0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.05, 0.15, 0.8]]]])
    # discard 2/9 of 9 weights → the two smallest that are not in the [class] column:
    # candidates outside column 0: .3 .5 .6 .3 .15 .8 → drop .15 and one .3 (topk picks lowest); use a ratio
    # that drops exactly the smallest one (.15) to keep the answer unique: k = int(9 * 0.12) = 1.
    # The smallest overall is .05, in the [class] column, so it is kept; nothing else dropped.
    got = A.attention_rollout([attn], discard_ratio=0.12)[0]
    fused = attn[0, 0].clone()
    expected = fused + torch.eye(3)
    expected = expected / expected.sum(-1, keepdim=True)
    torch.testing.assert_close(got, expected)
    # k = int(9 * 0.23) = 2: smallest two are .05 (class column, kept) and .1 (class column, kept) → unchanged
    torch.testing.assert_close(A.attention_rollout([attn], discard_ratio=0.23)[0], expected)
    # k = 3: .05, .1, .15 → only .15 (row 2, col 1) is dropped
    dropped = fused.clone()
    dropped[2, 1] = 0
    expected3 = dropped + torch.eye(3)
    expected3 = expected3 / expected3.sum(-1, keepdim=True)
    torch.testing.assert_close(A.attention_rollout([attn], discard_ratio=0.34)[0], expected3)


def test_rollout_rows_sum_to_one():
    attn = [torch.rand(2, 3, 5, 5).softmax(-1) for _ in range(4)]
    out = A.attention_rollout(attn, "max", 0.5)
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 5))


def test_mean_attention_distance_by_hand():
    # grid 1×2, patch 16 px: patch centres 16 px apart.
    attn = torch.zeros(1, 1, 3, 3)
    attn[0, 0, 1] = torch.tensor([0.5, 0.25, 0.25])  # patch 0: renormalised .5/.5 → 8 px
    attn[0, 0, 2] = torch.tensor([0.2, 0.6, 0.2])  # patch 1: renormalised .75 to patch 0 → 12 px
    attn[0, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # [class] query is ignored
    got = A.mean_attention_distance(attn, (1, 2), 16)
    torch.testing.assert_close(got, torch.tensor([[10.0]]))


def test_mean_attention_distance_diagonal_grid():
    # 2×2 grid, every patch attends only to the diagonally opposite patch: √2·P each.
    attn = torch.zeros(1, 2, 5, 5)
    opposite = {1: 4, 2: 3, 3: 2, 4: 1}
    for q, k in opposite.items():
        attn[0, 0, q, k] = 1.0
        attn[0, 1, q, q] = 1.0  # head 1 attends to itself: distance 0
    got = A.mean_attention_distance(attn, (2, 2), 4)
    torch.testing.assert_close(got, torch.tensor([[4 * math.sqrt(2), 0.0]]))


def test_position_similarity_by_hand():
    pos = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]])  # (1, N+1=4, 2); row 0 is [class]
    sim = A.position_similarity(pos)
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(sim, torch.tensor([[1.0, 0.0, s], [0.0, 1.0, s], [s, s, 1.0]]))


def test_neighbour_score_and_spearman():
    grid = (3, 3)
    d = A.patch_distances(grid)
    perfect = -d  # most similar = nearest: every position's best match is a neighbour
    assert A.neighbour_score(perfect, grid) == 1.0
    assert A.similarity_distance_spearman(perfect, grid) == pytest.approx(-1.0)
    far = d.clone()  # most similar = farthest: for 8 of 9 positions that is ≥2 cells away;
    # only the centre's farthest positions (the corners, √2 away) are also its neighbours → 1/9
    assert A.neighbour_score(far, grid) == pytest.approx(1 / 9)
    assert A.similarity_distance_spearman(far, grid) == pytest.approx(1.0)


def test_spearman_with_ties_by_hand():
    # a = [1, 2, 2, 3] → ranks [0, 1.5, 1.5, 3]; b = [1, 2, 3, 4] → ranks [0, 1, 2, 3]
    got = A.spearman(torch.tensor([1.0, 2.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    ra = torch.tensor([0, 1.5, 1.5, 3]) - 1.5
    rb = torch.tensor([0, 1, 2, 3.0]) - 1.5
    assert got == pytest.approx(float((ra @ rb) / (ra.norm() * rb.norm())))


def test_embedding_filter_pca_recovers_a_single_direction():
    direction = torch.randn(3, 2, 2)
    direction = direction / direction.norm()
    weight = torch.stack([c * direction for c in torch.linspace(-2, 2, 8)])  # (D=8, C=3, P=2, P=2)
    comps, ratio = A.embedding_filter_pca(weight, k=3)
    assert comps.shape == (3, 3, 2, 2)
    assert ratio[0] == pytest.approx(1.0, abs=1e-5)
    assert abs(float((comps[0] * direction).sum())) == pytest.approx(1.0, abs=1e-5)


def test_token_norms_and_top_k():
    h = [torch.tensor([[[3.0, 4.0], [0.0, 1.0]]])]
    torch.testing.assert_close(A.token_norms(h), torch.tensor([[[5.0, 1.0]]]))
    p, idx = A.top_k(torch.tensor([[0.0, 2.0, 1.0]]), k=2)
    assert idx.tolist() == [[1, 2]]
    assert p.sum() < 1.0
