"""The measurements behind the pages' claims, checked against answers worked out by hand."""

import numpy as np
import pytest
import torch

from vit.claims import (filter_claim, head_claim, neighbour_chance, position_claim, uniform_attention_distance)
from vit.model import sincos_2d


def test_neighbour_chance_by_hand():
    # 3×3: corners have 3 neighbours, edges 5, the centre 8; each picks one of 8 others at random
    assert neighbour_chance((3, 3)) == pytest.approx((4 * 3 + 4 * 5 + 8) / 9 / 8)
    # 4×4: 4 corners × 3, 8 edges × 5, 4 inner × 8, over 16 positions and 15 others
    assert neighbour_chance((4, 4)) == pytest.approx((12 + 40 + 32) / 16 / 15)
    assert neighbour_chance((1, 2)) == 1.0 and neighbour_chance((1, 1)) == 0.0


def test_neighbour_chance_is_what_random_embeddings_score():
    from vit.analysis import neighbour_score, position_similarity
    g = torch.Generator().manual_seed(0)
    scores = [neighbour_score(position_similarity(torch.randn(36, 64, generator=g)), (6, 6)) for _ in range(300)]
    assert np.mean(scores) == pytest.approx(neighbour_chance((6, 6)), abs=0.02)


def test_uniform_attention_distance_by_hand():
    assert uniform_attention_distance((2, 1), 1) == pytest.approx(0.5)          # distances 0, 1, 1, 0
    assert uniform_attention_distance((2, 2), 4) == pytest.approx(4 * (0 * 4 + 1 * 8 + np.sqrt(2) * 4) / 16)


def test_position_claim_verdicts():
    grid = (6, 6)
    structured = sincos_2d(6, 6, 64)                                          # the 2-D grid, by construction
    random = torch.randn(36, 64, generator=torch.Generator().manual_seed(1))
    assert position_claim(structured, grid).verdict == "clear"
    c = position_claim(random, grid)
    assert c.verdict == "none" and c.chance == pytest.approx(neighbour_chance(grid))
    assert position_claim(torch.cat([torch.zeros(1, 64), structured])[None], grid).neighbour_score == 1.0


def test_head_claim_by_hand():
    d = np.array([[5.0, 20.0, 10.0], [1, 1, 1]])
    c = head_claim(d, (4, 4), 8)
    assert (c.local_head, c.global_head, c.ratio) == (0, 1, 0.25)
    assert c.uniform_distance == pytest.approx(uniform_attention_distance((4, 4), 8))
    assert c.verdict == "clear"  # 20 px ≥ 0.75 × 17.3 px, and 5 ≤ 10
    assert head_claim(np.array([[15.0, 16.0, 17.0]]), (4, 4), 8).verdict == "none"
    assert head_claim(np.array([[12.0, 17.0]]), (4, 4), 8).verdict == "weak"
    assert head_claim(d, (4, 4), 8, layer=1).ratio == 1.0


def test_filter_claim_sees_structure_that_random_filters_lack():
    g = torch.Generator().manual_seed(0)
    random = torch.randn(64, 3, 8, 8, generator=g)
    basis = torch.randn(3, 3 * 8 * 8, generator=g)
    structured = (torch.randn(64, 3, generator=g) @ basis).reshape(64, 3, 8, 8) + 0.05 * random
    c = filter_claim(structured, random, k=8)
    assert c.verdict == "clear" and c.trained_share > 0.99 and c.untrained_share < 0.3
    assert filter_claim(random, torch.randn(64, 3, 8, 8, generator=g)).verdict == "none"
