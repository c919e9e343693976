"""The from-scratch model must equal Hugging Face's ViT on the same (random) weights."""

import pytest
import torch

import vit

transformers = pytest.importorskip("transformers")
from transformers import ViTConfig as HFConfig  # noqa: E402
from transformers import ViTForImageClassification, ViTModel  # noqa: E402

CONFIGS = {
    "rgb-small": dict(image_size=32, patch_size=4, num_channels=3, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=10),
    "gray-1ch": dict(image_size=28, patch_size=4, num_channels=1, hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=96, num_labels=7),
    "no-qkv-bias": dict(image_size=24, patch_size=6, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=5, qkv_bias=False),
}


def _hf(cls, **kw):
    torch.manual_seed(0)
    config = HFConfig(**kw)
    config._attn_implementation = "eager"  # explicit attention probabilities
    model = cls(config).eval()
    # Random, non-trivial values everywhere (HF initialises some tensors to zeros).
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
    return model


def _compare(hf_out, trace, hf_logits=None, tol=1e-4):
    assert len(trace.hidden_states) == len(hf_out.hidden_states)
    for ours, theirs in zip(trace.hidden_states, hf_out.hidden_states):
        torch.testing.assert_close(ours, theirs, atol=tol, rtol=tol)
    assert len(trace.attentions) == len(hf_out.attentions)
    for ours, theirs in zip(trace.attentions, hf_out.attentions):
        torch.testing.assert_close(ours, theirs, atol=tol, rtol=tol)
    if hf_logits is not None:
        torch.testing.assert_close(trace.logits, hf_logits, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("scale", [1, 2])
def test_classifier_matches_hf(name, scale):
    kw = CONFIGS[name]
    hf = _hf(ViTForImageClassification, **kw)
    ours = vit.from_hf(hf)
    size = kw["image_size"] * scale
    x = torch.randn(2, kw["num_channels"], size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = hf(x, output_attentions=True, output_hidden_states=True, interpolate_pos_encoding=scale != 1)
        trace = ours.trace(x)
        fast = ours(x)
    _compare(out, trace, out.logits)
    torch.testing.assert_close(fast, out.logits, atol=1e-4, rtol=1e-4)
    assert trace.position_embeddings.shape[1] == (size // kw["patch_size"]) ** 2 + 1


def test_non_square_input_matches_hf():
    kw = CONFIGS["rgb-small"]
    hf = _hf(ViTForImageClassification, **kw)
    ours = vit.from_hf(hf)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        out = hf(x, output_attentions=True, output_hidden_states=True, interpolate_pos_encoding=True)
        _compare(out, ours.trace(x), out.logits)


def test_headless_vitmodel_converts():
    kw = dict(CONFIGS["rgb-small"])
    kw.pop("num_labels")
    hf = _hf(ViTModel, **kw)
    ours = vit.from_hf(hf)
    assert ours.config.num_classes == 0 and ours.head is None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = hf(x, output_attentions=True, output_hidden_states=True)
        trace = ours.trace(x)
        _compare(out, trace)
        assert trace.logits is None
        torch.testing.assert_close(trace.final_tokens, out.last_hidden_state, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours(x), out.pooler_output, atol=1e-4, rtol=1e-4)


def test_hub_key_layout_converts():
    """Checkpoint files on the hub use encoder.layer.N.attention.attention.query names."""
    kw = CONFIGS["rgb-small"]
    hf = _hf(ViTForImageClassification, **kw)
    renames = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
               "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense",
               "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense", ".layers.": ".encoder.layer."}
    hub_state = {}
    for k, v in hf.state_dict().items():
        for a, b in renames.items():
            k = k.replace(a, b)
        hub_state[k] = v
    assert any("encoder.layer.0.attention.attention.query.weight" in k for k in hub_state)
    ours = vit.from_hf(hub_state, hf.config)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, atol=1e-4, rtol=1e-4)


def test_save_pretrained_directory_loads_offline(tmp_path):
    kw = CONFIGS["gray-1ch"]
    hf = _hf(ViTForImageClassification, **kw)
    hf.config.id2label = {i: f"label{i}" for i in range(7)}
    hf.config.label2id = {v: k for k, v in hf.config.id2label.items()}
    hf.save_pretrained(tmp_path / "ckpt", safe_serialization=True)
    model = vit.load_model(tmp_path / "ckpt", device="cpu")
    assert model.class_names == [f"label{i}" for i in range(7)]
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf(x).logits, atol=1e-4, rtol=1e-4)


def test_bare_state_dict_without_config_is_a_clear_error():
    hf = _hf(ViTForImageClassification, **CONFIGS["rgb-small"])
    with pytest.raises(vit.CheckpointError, match="config"):
        vit.from_hf(hf.state_dict())
