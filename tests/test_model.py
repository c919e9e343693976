import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from einops import rearrange

import vit
from vit.model import sincos_2d


def small(**kw) -> vit.VisionTransformer:
    torch.manual_seed(0)
    cfg = vit.ViTConfig(image_size=32, patch_size=4, in_channels=3, dim=64, depth=2, heads=4, mlp_dim=128, num_classes=10)
    return vit.VisionTransformer(cfg.replace(**kw)).eval()


def test_issue_example_holds():
    m = vit.VisionTransformer(vit.ViTConfig(image_size=32, patch_size=4, in_channels=3, dim=64, depth=2, heads=4, mlp_dim=128, num_classes=10))
    t = m.trace(torch.randn(2, 3, 32, 32))
    assert t.attentions[0].shape == (2, 4, 65, 65) and len(t.hidden_states) == 3


def test_trace_shapes_and_invariants():
    m = small()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        t = m.trace(x, mlp_activations=True)
    B, N, D, L, H = 3, 64, 64, 2, 4
    assert t.grid == (8, 8)
    assert t.patches.shape == (B, N, 4 * 4 * 3)
    assert t.patch_embeddings.shape == (B, N, D)
    assert t.position_embeddings.shape == (1, N + 1, D)
    assert len(t.hidden_states) == L + 1 and all(h.shape == (B, N + 1, D) for h in t.hidden_states)
    assert len(t.attentions) == L and all(a.shape == (B, H, N + 1, N + 1) for a in t.attentions)
    for a in t.attentions:
        torch.testing.assert_close(a.sum(-1), torch.ones(B, H, N + 1))
        assert (a >= 0).all()
    assert t.logits.shape == (B, 10)
    assert len(t.mlp_activations) == L and t.mlp_activations[0].shape == (B, N + 1, 128)
    torch.testing.assert_close(t.logits, m(x), atol=1e-5, rtol=1e-5)
    # z0 is [class; patches·E] + E_pos
    z0 = torch.cat((m.cls_token.expand(B, -1, -1), t.patch_embeddings), 1) + t.position_embeddings
    torch.testing.assert_close(t.hidden_states[0], z0)
    arrays = t.to_numpy()
    assert arrays["attentions"].shape == (L, B, H, N + 1, N + 1)


def test_in_place_inference_path_equals_the_autograd_path():
    """Without autograd the residual sums and GELU reuse their buffers; every stage must stay bit-identical,
    no stored stage may be overwritten later, and with autograd gradients must still flow."""
    m = small()
    m.blocks[0].mlp.fc1.bias.data.normal_()  # non-zero everywhere, so a missed write would show
    x = torch.randn(2, 3, 32, 32)
    with torch.enable_grad():
        ref = m.trace(x, mlp_activations=True)
        ref_logits = m(x)
        ref_logits.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            t = m.trace(x, mlp_activations=True)
            logits = m(x)
        assert torch.equal(logits, ref_logits.detach())
        for name in ("hidden_states", "residual_mid", "attentions", "mlp_activations"):
            for a, b in zip(getattr(t, name), getattr(ref, name)):
                assert torch.equal(a, b.detach()), name
        # each stored stage is its own tensor: z'l and zl were not written over by the next step
        ptrs = [h.data_ptr() for h in t.hidden_states + t.residual_mid]
        assert len(set(ptrs)) == len(ptrs)
        with mode():
            again = t.residual_mid[0] + m.blocks[0].mlp(m.blocks[0].norm2(t.residual_mid[0]))[0]
        assert torch.equal(t.hidden_states[1], again)


def test_conv_patch_embedding_equals_linear_on_flattened_patches():
    m = small()
    x = torch.randn(2, 3, 32, 32)
    conv = m.patch_embed
    patches = rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=4, p2=4)
    weight = rearrange(conv.weight, "d c p1 p2 -> d (p1 p2 c)")
    linear = patches @ weight.T + conv.bias
    with torch.no_grad():
        torch.testing.assert_close(m.trace(x).patch_embeddings, linear, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(m.trace(x).patches, patches)


def test_any_multiple_of_patch_size_and_position_interpolation():
    m = small()
    with torch.no_grad():
        t = m.trace(torch.randn(1, 3, 48, 64))
    assert t.grid == (12, 16) and t.attentions[0].shape[-1] == 12 * 16 + 1
    assert t.position_embeddings.shape == (1, 12 * 16 + 1, 64)
    torch.testing.assert_close(t.position_embeddings[:, 0], m.pos_embed[:, 0])
    with pytest.raises(ValueError, match="multiple of the patch size"):
        m(torch.randn(1, 3, 30, 32))


def test_interpolation_to_same_grid_is_identity_and_smooth_upsampling():
    pos = torch.randn(1, 1 + 16, 8)
    assert vit.interpolate_position_embeddings(pos, (4, 4)) is pos
    const = torch.ones(1, 17, 8)
    torch.testing.assert_close(vit.interpolate_position_embeddings(const, (8, 8)), torch.ones(1, 65, 8))


@pytest.mark.parametrize("kw", [dict(pool="mean"), dict(pos_embedding="sincos2d"), dict(pos_embedding="none"),
                                dict(representation_size=32), dict(num_classes=0)])
def test_config_variants_run(kw):
    m = small(**kw)
    with torch.no_grad():
        t = m.trace(torch.randn(2, 3, 32, 32))
        y = m(torch.randn(2, 3, 32, 32))
    if kw.get("num_classes") == 0:
        assert t.logits is None and y.shape == (2, 64)
    else:
        assert t.logits.shape == (2, 10)
    if kw.get("pos_embedding") == "none":
        assert (t.position_embeddings == 0).all()


def test_sincos_is_deterministic_and_distinct():
    pe = sincos_2d(4, 4, 16)
    assert pe.shape == (16, 16)
    assert torch.unique(pe, dim=0).shape[0] == 16


@pytest.mark.parametrize("name,millions", [("ViT-B/16", 86), ("ViT-L/16", 307), ("ViT-H/14", 632)])
def test_preset_parameter_counts_match_paper(name, millions):
    with torch.device("meta"):
        m = vit.VisionTransformer(vit.ViTConfig.preset(name))
    count = m.num_parameters() / 1e6
    assert abs(count - millions) / millions < 0.01, f"{name}: {count:.1f}M vs paper {millions}M"


def test_presets_exist():
    for name in ["ViT-B/16", "ViT-B/32", "ViT-L/16", "ViT-L/32", "ViT-H/14", "DeiT-Ti", "DeiT-S", "tiny-fashion", "tiny-shapes"]:
        assert name in vit.PRESETS
    with pytest.raises(KeyError):
        vit.ViTConfig.preset("ViT-Z/99")


def test_invalid_config_is_refused():
    with pytest.raises(ValueError):
        vit.ViTConfig(image_size=30, patch_size=4)
    with pytest.raises(ValueError):
        vit.ViTConfig(dim=10, heads=3)


def test_threads_share_one_model_and_get_their_own_trace():
    m = small(depth=3)
    xs = [torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(16)]
    with torch.no_grad():
        expected = [m.trace(x) for x in xs]
    barrier = threading.Barrier(8)

    def run(i):
        if i < 8:
            barrier.wait()
        with torch.no_grad():
            return m.trace(xs[i])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(16)))
    for got, want in zip(results, expected):
        torch.testing.assert_close(got.logits, want.logits)
        for a, b in zip(got.attentions, want.attentions):
            torch.testing.assert_close(a, b)
    assert not any(isinstance(v, torch.Tensor) for v in vars(m).values() if not isinstance(v, torch.nn.Module))


def test_save_load_round_trip(tmp_path):
    m = small(in_channels=1)
    m.class_names = [f"c{i}" for i in range(10)]
    path = vit.save_model(m, tmp_path / "tiny", mean=[0.3], std=[0.2], dataset="fixture", metrics={"test_acc": 0.5})
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded = vit.load_model(tmp_path / "tiny.safetensors", device="cpu")
    assert loaded.config == m.config and loaded.class_names == m.class_names
    assert loaded.meta["mean"] == [0.3] and loaded.meta["metrics"]["test_acc"] == 0.5
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), m(x))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_choose_device(monkeypatch):
    monkeypatch.setenv("VIT_DEVICE", "cpu")
    assert vit.choose_device().type == "cpu"
    monkeypatch.delenv("VIT_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert vit.choose_device().type == expected
    if not torch.cuda.is_available():
        monkeypatch.setenv("VIT_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="cuda"):
            vit.choose_device()
