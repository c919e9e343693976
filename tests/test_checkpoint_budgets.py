"""Checkpoint budgets, and models from the teacher's folder instead of typed server paths.

* A config is checked against budgets (parameters, tensors, the memory of a trace at the model's own
  resolution, JSON size and nesting, the safetensors header) before anything is allocated for it.
* Every failure is a ``CheckpointError`` that names the budget or the rule, never a value or a key
  name read from the file.
* The app lists the checkpoints of ``VIT_EXPLORER_MODELS_DIR`` by name, checks them once, logs each
  problem for the teacher and does not offer a broken one; nobody types a path.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import vit
from vit import weights
from vit.weights import CheckpointError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-XYZ"


def tiny_config(**changes) -> vit.ViTConfig:
    return vit.ViTConfig(image_size=16, patch_size=4, in_channels=3, dim=16, depth=1, heads=2, mlp_dim=32,
                         num_classes=3).replace(**changes)


def save_tiny(path: Path, **meta) -> Path:
    """A valid tiny project checkpoint: path.safetensors + path.json."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = vit.VisionTransformer(tiny_config())
    model.class_names = ["a", "b", "c"]
    return vit.save_model(model, path, mean=[0.5] * 3, std=[0.25] * 3, **meta)


def write_sidecar(path: Path, sidecar) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = sidecar if isinstance(sidecar, bytes) else (sidecar if isinstance(sidecar, str) else json.dumps(sidecar)).encode()
    path.with_suffix(".json").write_bytes(data)
    return path.with_suffix(".json")


def refused(load, *args, **kwargs) -> CheckpointError:
    """``load`` raises a CheckpointError, and nothing else; its message is returned for more checks."""
    try:
        load(*args, **kwargs)
    except CheckpointError as e:
        assert "Traceback" not in str(e)
        return e
    except BaseException as e:  # noqa: BLE001
        pytest.fail(f"{type(e).__name__} escaped instead of a CheckpointError: {e}")
    pytest.fail("the checkpoint was accepted")


def no_echo(e: CheckpointError) -> None:
    assert SECRET not in str(e) and SECRET not in repr(e.params), str(e)
    from vit.i18n import gettext, use_language

    with use_language("ko"):
        korean = gettext(e.template).format(**e.params)
    assert SECRET not in korean and any("\uac00" <= ch <= "\ud7a3" for ch in korean), korean


# --- budgets, before anything is allocated -----------------------------------------------------------


def test_deep_config_without_weights_is_refused_before_allocation(tmp_path, monkeypatch):
    """depth 20,000 once allocated 964 MB for 16 s while holding the model-building lock."""
    built = []
    real_init = vit.VisionTransformer.__init__

    def spy(self, *args, **kwargs):
        built.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(vit.VisionTransformer, "__init__", spy)
    side = write_sidecar(tmp_path / "deep", {"format": weights.SIDECAR_FORMAT,
                                              "config": {**tiny_config().to_dict(), "depth": 20_000}})
    for load in (vit.load_model, vit.load_checkpoint, weights.inspect_checkpoint):
        tracemalloc.start()
        start = time.perf_counter()
        e = refused(load, side)
        elapsed = time.perf_counter() - start
        _size, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 0.1, f"{load.__name__} took {elapsed:.3f} s to refuse"
        assert peak < 5_000_000, f"{load.__name__} allocated {peak / 1e6:.1f} MB before refusing"
        assert e.code == "too_many_tensors" and "budget" in str(e)
    assert not built, "a model was built"
    assert not weights.MODEL_INIT_LOCK._is_owned()


@pytest.mark.parametrize("depth", [20_000, 10**6, 10**9])
def test_huge_depths_are_refused_quickly(tmp_path, depth):
    write_sidecar(tmp_path / "deep", {"config": {**tiny_config().to_dict(), "depth": depth}})
    start = time.perf_counter()
    refused(vit.load_model, tmp_path / "deep.json")
    assert time.perf_counter() - start < 0.1


def test_a_model_whose_trace_needs_5_gb_is_refused_with_the_budget_named(tmp_path):
    cfg = vit.ViTConfig(image_size=1024, patch_size=16, in_channels=3, dim=48, depth=5, heads=12, mlp_dim=96,
                        num_classes=3)  # 4096 patches: a few hundred thousand parameters, small weights
    assert weights.count_parameters(cfg) < 1_000_000
    assert 5e9 <= weights.trace_bytes(cfg) < 6e9
    write_sidecar(tmp_path / "wide", {"config": cfg.to_dict()})
    e = refused(vit.load_model, tmp_path / "wide.json")
    assert e.code == "trace_too_large" and "trace budget" in str(e) and "1,000 MB" in str(e), str(e)
    assert weights.check_config(cfg.to_dict(), max_trace_bytes=10**11) == cfg  # the budget is a keyword argument


def test_budgets_are_keyword_arguments(tmp_path):
    path = save_tiny(tmp_path / "tiny")
    assert vit.load_model(path).config == tiny_config()
    n = weights.count_parameters(tiny_config())
    assert "parameters" in str(refused(vit.load_model, path, max_parameters=n - 1))
    assert vit.load_model(path, max_parameters=n).config == tiny_config()
    assert "tensors" in str(refused(vit.load_checkpoint, path, max_tensors=10))
    assert "trace budget" in str(refused(vit.load_checkpoint, path, max_trace_bytes=1000))
    assert "JSON" in str(refused(vit.load_checkpoint, path, max_json_bytes=100))
    assert "header" in str(refused(vit.load_checkpoint, path, max_header_bytes=100))
    with pytest.raises(TypeError):  # a caller's typo is a caller's error, not the file's
        vit.load_model(path, max_paramters=10)


def test_the_arithmetic_matches_the_model():
    for cfg in (tiny_config(), tiny_config(qkv_bias=False, pos_embedding="sincos2d", num_classes=0, representation_size=8),
                vit.ViTConfig.preset("tiny-shapes")):
        model = vit.VisionTransformer(cfg)
        state = model.state_dict()
        assert weights.count_parameters(cfg) == model.num_parameters()
        assert weights.count_tensors(cfg) == len(state)
        assert weights.expected_shapes(cfg) == {k: tuple(v.shape) for k, v in state.items()}
    # The paper's models pass the default budgets; ViT-H/14 (632M parameters) does not.
    for name in ("ViT-B/16", "ViT-L/16", "DeiT-Ti"):
        weights.check_config(vit.ViTConfig.preset(name).to_dict())
    assert refused(weights.check_config, vit.ViTConfig.preset("ViT-H/14").to_dict()).code == "model_too_large"
    # A trace at 224 px is tens of MB; the attention maps are counted.
    b16 = vit.ViTConfig.preset("ViT-B/16")
    assert 12 * 12 * 197**2 * 4 < weights.trace_bytes(b16) < 100e6


def test_weights_that_do_not_match_the_config_are_refused_before_the_model_is_built(tmp_path, monkeypatch):
    """A small weights file whose sidecar describes a large model: refused from the header alone."""
    path = save_tiny(tmp_path / "tiny")
    data = json.loads(path.with_suffix(".json").read_text())
    data["config"].update(dim=1024, heads=16, mlp_dim=4096, depth=24)  # ViT-L's size; the file holds 10k parameters
    path.with_suffix(".json").write_text(json.dumps(data))
    monkeypatch.setattr(vit.VisionTransformer, "__init__", lambda *a, **k: pytest.fail("a model was built"))
    e = refused(vit.load_model, path)
    assert e.code in ("weights_mismatch", "wrong_shape")


# --- nothing from the file in a message; only CheckpointError out -----------------------------------------


SECRET_SIDECARS = {
    "value-of-a-number": lambda d: d["config"].__setitem__("dim", SECRET),
    "key-in-config": lambda d: d["config"].__setitem__(SECRET, 1),
    "pool": lambda d: d["config"].__setitem__("pool", SECRET),
    "pos-embedding": lambda d: d["config"].__setitem__("pos_embedding", SECRET),
    "qkv-bias": lambda d: d["config"].__setitem__("qkv_bias", SECRET),
    "config-is-text": lambda d: d.__setitem__("config", SECRET),
    "class-names": lambda d: d.__setitem__("class_names", [SECRET]),
    "mean": lambda d: d.__setitem__("mean", [SECRET] * 3),
    "dataset": lambda d: d.__setitem__("dataset", {SECRET: SECRET}),
    "resize": lambda d: d.__setitem__("resize", SECRET),
    "accuracy": lambda d: d.__setitem__("test_accuracy", SECRET),
    "known-rule": lambda d: d.__setitem__("known_rule", {"score": SECRET, "threshold": 0.5}),
    "api-key": lambda d: (d.__setitem__("api_key", SECRET), d["config"].__setitem__("api_key", SECRET)),
}


@pytest.mark.parametrize("case", list(SECRET_SIDECARS))
def test_messages_never_echo_the_files_values_or_key_names(tmp_path, case):
    path = save_tiny(tmp_path / "tiny")
    data = json.loads(path.with_suffix(".json").read_text())
    SECRET_SIDECARS[case](data)
    write_sidecar(path, data)
    e = refused(vit.load_model, path)
    no_echo(e)
    assert "tiny.json" in str(e)


@pytest.mark.parametrize("text", [f'"{SECRET}"', f'{{"config": {{"dim": 16 {SECRET}', f'["{SECRET}"]', f"{SECRET}",
                                  f'{{"config": {{"{SECRET}": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}}}'])
def test_broken_json_is_not_echoed(tmp_path, text):
    save_tiny(tmp_path / "tiny")
    write_sidecar(tmp_path / "tiny", text)
    no_echo(refused(vit.load_model, tmp_path / "tiny.json"))


def test_safetensors_names_only_the_files_own_tensor_names_are_counted(tmp_path):
    path = save_tiny(tmp_path / "tiny")
    from safetensors.torch import load_file

    state = load_file(str(path))
    state[SECRET] = torch.zeros(1)
    save_file(state, str(path), metadata={SECRET: SECRET})
    e = refused(vit.load_model, path)
    assert e.code == "weights_mismatch" and "1 unexpected" in str(e)
    no_echo(e)


def test_huggingface_config_values_are_not_echoed(tmp_path):
    d = tmp_path / "hf"
    d.mkdir()
    base = {"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32, "image_size": 16, "patch_size": 4, "num_channels": 3}
    save_file({"vit.layernorm.weight": torch.ones(16)}, str(d / "model.safetensors"))
    for change in ({"hidden_size": SECRET}, {"model_type": SECRET}, {"hidden_act": SECRET},
                   {"id2label": {SECRET: SECRET}}, {"qkv_bias": SECRET}):
        (d / "config.json").write_text(json.dumps({**base, **change}))
        no_echo(refused(vit.load_model, d))


def odd_inputs(tmp_path: Path) -> dict[str, Path | str]:
    """Paths and files that once let TypeError, RuntimeError, OSError, RecursionError... escape."""
    good = save_tiny(tmp_path / "good")
    cases: dict[str, Path | str] = {"no-such-user": "~nosuchuser-vit-explorer/x", "long-path": "x" * 5000,
                                    "long-component": str(tmp_path / ("y" * 300 + ".safetensors")),
                                    "nul-byte": str(tmp_path / "a\0b.safetensors")}

    def sidecar(name: str, content) -> None:
        target = tmp_path / name
        save_file({"x": torch.zeros(1)}, str(target.with_suffix(".safetensors")))
        write_sidecar(target, content)
        cases[name] = target.with_suffix(".json")

    sidecar("deep-json", "[" * 100_000 + "]" * 100_000)
    sidecar("deep-object", '{"config": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001)
    sidecar("config-list", {"config": [1, 2, 3]})
    sidecar("whole-list", [tiny_config().to_dict()])
    sidecar("accuracy-high", {"config": tiny_config().to_dict(), "class_names": ["a", "b", "c"], "test_accuracy": "high"})
    sidecar("huge-number", '{"config": {"dim": ' + "9" * 5000 + "}}")
    sidecar("nan", '{"config": {"dropout": NaN}}')
    sidecar("not-utf8", b"\xff\xfe{")
    sidecar("big-json", '{"config": {}, "pad": "' + "x" * 1_100_000 + '"}')
    sidecar("known-rule-list", {"config": tiny_config().to_dict(), "known_rule": [1]})
    sidecar("image-size-float", {"config": {**tiny_config().to_dict(), "image_size": 16.5}})
    sidecar("dim-bool", {"config": {**tiny_config().to_dict(), "dim": True}})
    sidecar("sincos-odd-dim", {"config": {**tiny_config().to_dict(), "dim": 18, "heads": 2, "pos_embedding": "sincos2d"}})
    if os.geteuid() != 0:  # root reads anything; test_unreadable_files covers it there
        unreadable = tmp_path / "unreadable"
        save_tiny(unreadable)
        unreadable.with_suffix(".json").chmod(0)
        cases["unreadable"] = unreadable.with_suffix(".json")
    header = tmp_path / "huge-header"
    save_tiny(header)
    header.with_suffix(".safetensors").write_bytes((2_000_000).to_bytes(8, "little") + b"{" + b" " * 2_000_000)
    cases["huge-header"] = header.with_suffix(".safetensors")
    many = tmp_path / "many-tensors"
    save_tiny(many)
    save_file({f"t{i}": torch.zeros(1) for i in range(10_001)}, str(many.with_suffix(".safetensors")))
    cases["many-tensors"] = many.with_suffix(".safetensors")
    offsets = tmp_path / "bad-offsets"
    save_tiny(offsets)
    head = json.dumps({"head.bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 10**12]}}).encode()
    offsets.with_suffix(".safetensors").write_bytes(len(head).to_bytes(8, "little") + head + b"\0" * 12)
    cases["bad-offsets"] = offsets.with_suffix(".safetensors")
    folder = tmp_path / "a-folder.json"
    folder.mkdir()
    cases["folder-named-json"] = folder
    assert good.is_file()
    return cases


def test_odd_inputs_raise_checkpoint_error_only(tmp_path):
    cases = odd_inputs(tmp_path)
    for name, path in cases.items():
        e = refused(vit.load_model, path)
        assert e.code and e.code != "error", (name, e)
        if isinstance(path, Path) and path.suffix in (".json", ".safetensors") and name != "folder-named-json":
            refused(vit.load_checkpoint, path)
            refused(weights.inspect_checkpoint, path)
    assert "JSON budget" in str(refused(vit.load_model, cases["deep-json"]))
    assert "test_accuracy" in str(refused(vit.load_model, cases["accuracy-high"]))
    assert "header" in str(refused(vit.load_model, cases["huge-header"]))
    assert "tensors" in str(refused(vit.load_model, cases["many-tensors"]))


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), IsADirectoryError(21, "Is a directory"),
                                   MemoryError(), SystemError("error return without exception set"),
                                   RecursionError("maximum recursion depth exceeded")])
def test_unreadable_files_raise_checkpoint_error_only(tmp_path, monkeypatch, error):
    path = save_tiny(tmp_path / "tiny")

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(weights, "open", fail, raising=False)  # every file vit.weights reads
    e = refused(vit.load_model, path)
    assert str(tmp_path) not in str(e)


def test_checkpoint_bytes_are_checked_the_same_way(tmp_path):
    path = save_tiny(tmp_path / "tiny")
    data, side = path.read_bytes(), path.with_suffix(".json").read_bytes()
    model = weights.load_checkpoint_bytes(data, side, name="tiny")
    assert model.class_names == ["a", "b", "c"]
    assert refused(weights.load_checkpoint_bytes, data, side, max_bytes=len(data) - 1).code == "checkpoint_too_large"
    assert refused(weights.load_checkpoint_bytes, data, b"[" * 50_000).code == "json_too_deep"
    assert refused(weights.load_checkpoint_bytes, b"\x00" * 7, side).code == "invalid_safetensors"
    deep = json.dumps({"config": {**tiny_config().to_dict(), "depth": 20_000}}).encode()
    start = time.perf_counter()
    assert refused(weights.load_checkpoint_bytes, data, deep).code == "too_many_tensors"
    assert time.perf_counter() - start < 0.1


# --- the teacher's folder --------------------------------------------------------------------------------


@pytest.fixture
def models_folder(tmp_path) -> Path:
    """A project checkpoint, a Hugging Face directory, and broken things a teacher might leave there."""
    folder = tmp_path / "models"
    save_tiny(folder / "tiny-project")
    hf = folder / "tiny-hf"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text(json.dumps({
        "model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "image_size": 16, "patch_size": 4, "num_channels": 3,
        "id2label": {"0": "a", "1": "b", "2": "c"}}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        ours = vit.VisionTransformer(tiny_config()).state_dict()
    hf_state = {"vit.embeddings.cls_token": ours["cls_token"], "vit.embeddings.position_embeddings": ours["pos_embed"],
                "vit.embeddings.patch_embeddings.projection.weight": ours["patch_embed.weight"],
                "vit.embeddings.patch_embeddings.projection.bias": ours["patch_embed.bias"],
                "vit.layernorm.weight": ours["norm.weight"], "vit.layernorm.bias": ours["norm.bias"],
                "classifier.weight": ours["head.weight"], "classifier.bias": ours["head.bias"]}
    b = "vit.encoder.layer.0."
    q, k, v = ours["blocks.0.attn.qkv.weight"].chunk(3)
    qb, kb, vb = ours["blocks.0.attn.qkv.bias"].chunk(3)
    hf_state.update({b + "layernorm_before.weight": ours["blocks.0.norm1.weight"],
                     b + "layernorm_before.bias": ours["blocks.0.norm1.bias"],
                     b + "attention.attention.query.weight": q, b + "attention.attention.key.weight": k,
                     b + "attention.attention.value.weight": v, b + "attention.attention.query.bias": qb,
                     b + "attention.attention.key.bias": kb, b + "attention.attention.value.bias": vb,
                     b + "attention.output.dense.weight": ours["blocks.0.attn.proj.weight"],
                     b + "attention.output.dense.bias": ours["blocks.0.attn.proj.bias"],
                     b + "layernorm_after.weight": ours["blocks.0.norm2.weight"],
                     b + "layernorm_after.bias": ours["blocks.0.norm2.bias"],
                     b + "intermediate.dense.weight": ours["blocks.0.mlp.fc1.weight"],
                     b + "intermediate.dense.bias": ours["blocks.0.mlp.fc1.bias"],
                     b + "output.dense.weight": ours["blocks.0.mlp.fc2.weight"],
                     b + "output.dense.bias": ours["blocks.0.mlp.fc2.bias"]})
    save_file({k: v.contiguous() for k, v in hf_state.items()}, str(hf / "model.safetensors"))
    # Broken: a sidecar that asks for 20,000 blocks and plants a secret; a pickle; a half pair; an empty folder.
    write_sidecar(folder / "broken", {"config": {**tiny_config().to_dict(), "depth": 20_000}, "api_key": SECRET})
    save_file({"x": torch.zeros(1)}, str(folder / "broken.safetensors"))
    (folder / "evil.pt").write_bytes(b"\x80\x04N.")
    save_file({"x": torch.zeros(1)}, str(folder / "lonely.safetensors"))
    (folder / "not-a-model").mkdir()
    (folder / "README.txt").write_text("models for class 3B")
    (folder / ".hidden.safetensors").write_bytes(b"")
    return folder


def test_the_folder_listing_finds_checkpoints_and_logs_each_problem(models_folder, caplog):
    found, problems = vit.loading.scan_checkpoints(models_folder)
    assert found == {"tiny-hf": models_folder / "tiny-hf", "tiny-project": models_folder / "tiny-project.safetensors"}
    assert sorted(n for n, _e in problems) == ["broken", "evil.pt", "lonely", "not-a-model"]
    assert all(isinstance(e, CheckpointError) for _n, e in problems)
    for name, path in found.items():
        model = vit.load_model(path, device="cpu")
        assert model.class_names == ["a", "b", "c"], name

    from ui import models

    with caplog.at_level(logging.INFO, logger="vit_explorer"):
        offered = models.scan_models_dir(str(models_folder))
    assert list(offered) == ["tiny-hf", "tiny-project"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4, warnings  # one clear line per problem
    for name in ("broken", "evil.pt", "lonely", "not-a-model"):
        line = next(w for w in warnings if f": {name} is not offered" in w)
        assert "\n" not in line and models.MODELS_DIR_ENV in line
    assert any("budget" in w for w in warnings) and not any(SECRET in w for w in warnings)
    assert any("offering 2" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_a_folder_that_is_missing_is_a_logged_problem(tmp_path, caplog):
    from ui import models

    with caplog.at_level(logging.WARNING, logger="vit_explorer"):
        assert models.scan_models_dir(str(tmp_path / "nowhere")) == {}
    assert len(caplog.records) == 1


def test_folder_names_that_clash_with_bundled_models_are_not_offered(tmp_path, caplog):
    from ui import models

    bundled = vit.available_models()
    if not bundled:
        pytest.skip("no bundled models")
    save_tiny(tmp_path / bundled[0])
    save_tiny(tmp_path / "x (untrained)")
    with caplog.at_level(logging.WARNING, logger="vit_explorer"):
        assert models.scan_models_dir(str(tmp_path)) == {}
    assert len(caplog.records) == 2


# --- the app ----------------------------------------------------------------------------------------------


def app_test():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)


def no_exceptions(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def all_text(at) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "text"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(e.value) for e in at.sidebar.markdown]
    parts += [o for sb in at.selectbox for o in sb.options]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def test_the_app_offers_the_folders_models_by_name(models_folder, monkeypatch):
    from ui import models

    monkeypatch.setenv(models.MODELS_DIR_ENV, str(models_folder))
    monkeypatch.delenv(models.UPLOADS_ENV, raising=False)
    at = app_test().run()
    no_exceptions(at)
    options = at.selectbox(key="model_name").options
    assert "tiny-project" in options and "tiny-hf" in options
    assert not {"broken", "evil", "evil.pt", "lonely", "not-a-model"} & set(options)
    assert models.UPLOADED not in options, "uploads are off by default"
    assert not at.text_input and not any(u.key == "checkpoint_upload" for u in at.get("file_uploader")), \
        "with uploads off, there is nothing to type a path into or upload a checkpoint with"
    text = all_text(at)
    assert str(models_folder) not in text and SECRET not in text, "the folder's path and contents stay on the server"
    for name in ("tiny-project", "tiny-hf"):
        at.selectbox(key="model_name").set_value(name).run()
        no_exceptions(at)
        assert not at.error, [e.value for e in at.error]
        assert f"**Model:** {name}" in re.sub(r"\\(.)", r"\1", at.sidebar.markdown[0].value)
        at.switch_page("app_pages/encoder.py").run()  # (not attention: its layer slider needs 2+ blocks)
        no_exceptions(at)
        at.switch_page("app_pages/start.py").run()
    # A deep link can name a folder model too.
    at = app_test()
    at.query_params["model"] = "tiny-hf"
    at.run()
    no_exceptions(at)
    assert at.selectbox(key="model_name").value == "tiny-hf"


def test_a_folder_model_that_fails_to_load_falls_back_with_a_short_message(models_folder, monkeypatch, caplog):
    """Values are only read when a model is chosen: NaN weights fail then, are logged, and are not offered again."""
    from safetensors.torch import load_file

    from ui import models

    path = models_folder / "tiny-project.safetensors"
    state = load_file(str(path))
    state["head.bias"] = torch.full_like(state["head.bias"], float("nan"))
    save_file(state, str(path))
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(models_folder))
    at = app_test().run()
    with caplog.at_level(logging.WARNING, logger="vit_explorer"):
        at.selectbox(key="model_name").set_value("tiny-project").run()
    no_exceptions(at)
    assert at.warning and "server log" in at.warning[0].value
    assert "NaN" not in all_text(at) and str(models_folder) not in all_text(at)
    assert any("tiny-project" in r.getMessage() and "NaN" in r.getMessage() for r in caplog.records)
    assert "tiny-project" not in at.selectbox(key="model_name").options
    assert at.selectbox(key="model_name").value == models.default_model_name()
    assert "tiny-project" not in app_test().run().selectbox(key="model_name").options


def test_uploads_are_offered_only_when_switched_on(monkeypatch):
    from ui import models

    monkeypatch.setenv(models.UPLOADS_ENV, "1")
    monkeypatch.delenv(models.MODELS_DIR_ENV, raising=False)
    at = app_test().run()
    assert models.UPLOADED in at.selectbox(key="model_name").options
    at.selectbox(key="model_name").set_value(models.UPLOADED).run()
    no_exceptions(at)
    uploader = next(u for u in at.get("file_uploader") if u.key == "checkpoint_upload")
    assert set(uploader.proto.type) == {".safetensors", ".json"}
    assert not at.text_input
