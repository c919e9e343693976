"""Security of model loading and of what sessions share.

* A pickle never runs: every file whose unpickling would create a marker file is refused with a
  ``CheckpointError`` that says why, and the marker never appears.
* A damaged or hostile safetensors + JSON pair is refused with a clear ``CheckpointError``, never
  a crash deep inside torch.
* A model a student uploads stays in their session: it never reaches a cache shared with other
  sessions, and a bad upload is an error message, not an exception. Nobody types a server path: the
  app offers only the teacher's folder (tests/test_checkpoint_budgets.py) and uploads.
* Serving every page leaves the shared model exactly as loaded: eval mode, no gradients, no
  hooks, bit-identical weights.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import vit
from vit.weights import CheckpointError, read_safetensors

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
UPLOADED = "Your checkpoint…"  # ui.models.UPLOADED; kept literal so the pickle tests need no streamlit


# --- malicious pickles ----------------------------------------------------------------------------


class _Payload:
    """Unpickling this calls ``open(marker, 'w')``: the marker file appears if a pickle is ever loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_bytes(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": {"w": _Payload(marker)}})


def _write_evil(path: Path, marker: Path, torch_format: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if torch_format:  # torch.save's zip container, as a real .pt/.pth would be
        torch.save({"state_dict": {"w": _Payload(marker)}}, str(path))
    else:
        path.write_bytes(_evil_bytes(marker))
    return path


def test_payload_really_runs_when_unpickled(tmp_path):
    """Control: the payload is live, so 'the marker is absent' below means 'nothing unpickled it'."""
    marker = tmp_path / "control-marker"
    pickle.loads(_evil_bytes(marker))
    assert marker.exists()


@pytest.mark.parametrize("name", ["evil.pt", "evil.pth", "evil.bin", "evil.ckpt", "evil.pkl", "EVIL.PT", "model.tar"])
@pytest.mark.parametrize("torch_format", [False, True], ids=["pickle", "torch.save"])
def test_pickle_checkpoint_is_refused_and_never_run(tmp_path, name, torch_format):
    marker = tmp_path / "pwned"
    path = _write_evil(tmp_path / name, marker, torch_format)
    for load in (vit.load_model, vit.load_checkpoint, read_safetensors):
        with pytest.raises(CheckpointError, match="pickle"):
            load(path)
        with pytest.raises(CheckpointError, match="pickle"):
            load(str(path))
    assert not marker.exists()


def test_pickle_next_to_a_json_sidecar_is_refused(tmp_path):
    """A .json beside evil.pt must not make the loader look for weights under another name."""
    marker = tmp_path / "pwned"
    path = _write_evil(tmp_path / "evil.pt", marker)
    (tmp_path / "evil.json").write_text(json.dumps({"format": "vit-explorer/1", "config": _tiny_config().to_dict()}))
    with pytest.raises(CheckpointError, match="pickle"):
        vit.load_model(path)
    assert not marker.exists()


def test_huggingface_directory_with_only_a_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "vit-base-patch16-224"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 32, "image_size": 16, "patch_size": 4, "num_channels": 3}))
    _write_evil(d / "pytorch_model.bin", marker)
    for load in (vit.load_model, vit.load_hf_directory):
        with pytest.raises(CheckpointError, match="pickle") as e:
            load(d)
        assert "model.safetensors" in str(e.value)
    assert not marker.exists()


def test_directory_without_config_holding_a_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    _write_evil(tmp_path / "ckpt" / "weights.pt", marker)
    with pytest.raises(CheckpointError):
        vit.load_model(tmp_path / "ckpt")
    assert not marker.exists()


@pytest.mark.parametrize("via", ["renamed", "symlink"])
def test_pickle_disguised_as_safetensors_is_refused(tmp_path, via):
    marker = tmp_path / "pwned"
    evil = _write_evil(tmp_path / "src" / "evil.pt", marker)
    path = tmp_path / "evil.safetensors"
    if via == "renamed":
        path.write_bytes(evil.read_bytes())
    else:
        path.symlink_to(evil)
    (tmp_path / "evil.json").write_text(json.dumps({"format": "vit-explorer/1", "config": _tiny_config().to_dict()}))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_safetensors(path)
    with pytest.raises(CheckpointError, match="safetensors"):
        vit.load_model(path)
    with pytest.raises(CheckpointError, match="safetensors"):
        vit.load_model(tmp_path / "evil.json")
    assert not marker.exists()


def test_pickle_disguised_as_hf_model_safetensors_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "hf"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "vit"}))
    (d / "model.safetensors").write_bytes(_evil_bytes(marker))
    with pytest.raises(CheckpointError, match="safetensors"):
        vit.load_model(d)
    assert not marker.exists()


# --- checkpoint validation ------------------------------------------------------------------------


def _tiny_config() -> vit.ViTConfig:
    return vit.ViTConfig(image_size=16, patch_size=4, in_channels=3, dim=16, depth=1, heads=2, mlp_dim=32, num_classes=3)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A valid tiny project checkpoint: tiny.safetensors + tiny.json."""
    torch.manual_seed(0)
    model = vit.VisionTransformer(_tiny_config())
    model.class_names = ["a", "b", "c"]
    path = vit.save_model(model, tmp_path / "tiny", mean=[0.5] * 3, std=[0.25] * 3)
    vit.load_model(path)  # sanity: the unmodified pair loads
    return path


def _rewrite_tensors(path: Path, change) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


def _rewrite_sidecar(path: Path, change) -> None:
    side = path.with_suffix(".json")
    data = json.loads(side.read_text())
    change(data)
    side.write_text(json.dumps(data))


def _refused(path: Path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as e:
        vit.load_model(path)
    message = str(e.value)
    for f in fragments:
        assert f.lower() in message.lower(), message
    _check_translatable(e.value)
    return message


def _korean(e: CheckpointError) -> str:
    from vit.i18n import gettext, use_language

    with use_language("ko"):
        return gettext(e.template).format(**e.params)


def _check_translatable(e: CheckpointError) -> str:
    """A stable code, the English text rebuilt from template and params, and Korean with the same numbers."""
    assert isinstance(e.code, str) and e.code and e.code != "error", e.code
    assert isinstance(e.params, dict) and e.template.format(**e.params) == str(e)
    ko = _korean(e)
    assert any("\uac00" <= ch <= "\ud7a3" for ch in ko), ko
    for number in re.findall(r"\d+", str(e)):
        assert number in ko, (number, str(e), ko)
    return ko


def test_missing_tensor(checkpoint):
    _rewrite_tensors(checkpoint, lambda s: s.pop("head.bias"))
    _refused(checkpoint, "missing", "head.bias")


def test_extra_tensor(checkpoint):
    _rewrite_tensors(checkpoint, lambda s: s.__setitem__("backdoor.weight", torch.zeros(2)))
    message = _refused(checkpoint, "1 unexpected tensor")
    assert "backdoor" not in message, "a name only the file has is counted, not echoed"


def test_wrong_shape(checkpoint):
    _rewrite_tensors(checkpoint, lambda s: s.__setitem__("head.weight", torch.zeros(5, 16)))
    _refused(checkpoint, "head.weight", "shape", "(5, 16)", "(3, 16)")


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
def test_integer_dtype(checkpoint, dtype):
    _rewrite_tensors(checkpoint, lambda s: s.__setitem__("head.weight", torch.ones(3, 16, dtype=dtype)))
    _refused(checkpoint, "head.weight", "dtype", "floating point")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values(checkpoint, bad):
    def poison(s):
        s["blocks.0.attn.qkv.weight"][0, 0] = bad
    _rewrite_tensors(checkpoint, poison)
    _refused(checkpoint, "blocks.0.attn.qkv.weight", "nan or infinite")


@pytest.mark.parametrize("how", ["random", "truncated", "huge_header_length", "header_not_json", "empty"])
def test_corrupt_safetensors(checkpoint, how):
    data = checkpoint.read_bytes()
    if how == "random":
        data = os.urandom(4096)
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "huge_header_length":
        data = (2**62).to_bytes(8, "little") + data[8:]
    elif how == "header_not_json":
        data = (16).to_bytes(8, "little") + b"{not json at all" + data[24:]
    else:
        data = b""
    checkpoint.write_bytes(data)
    _refused(checkpoint, "not a valid safetensors")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_safetensors(checkpoint)


def test_size_cap(checkpoint):
    size = checkpoint.stat().st_size
    with pytest.raises(CheckpointError, match="limit") as e:
        read_safetensors(checkpoint, max_bytes=size // 2)
    assert checkpoint.name in str(e.value)
    assert read_safetensors(checkpoint, max_bytes=size)  # exactly at the cap is fine
    with pytest.raises(CheckpointError, match="limit"):
        vit.load_checkpoint(checkpoint, max_bytes=1000)


def test_missing_weights_or_sidecar(checkpoint):
    checkpoint.with_suffix(".json").unlink()
    _refused(checkpoint, "sidecar", "missing")
    checkpoint.unlink()
    with pytest.raises(CheckpointError):
        vit.load_model(checkpoint)


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d["config"].__setitem__("flux_capacitor", 1), "unknown field"),
    (lambda d: d["config"].__setitem__("dim", 0), "dim"),
    (lambda d: d["config"].__setitem__("dim", -16), "dim"),
    (lambda d: d["config"].__setitem__("depth", -1), "depth"),
    (lambda d: d["config"].__setitem__("heads", 0), "heads"),
    (lambda d: d["config"].__setitem__("patch_size", 0), "patch_size"),
    (lambda d: d["config"].__setitem__("image_size", -16), "image_size"),
    (lambda d: d["config"].__setitem__("mlp_dim", -1), "mlp_dim"),
    (lambda d: d["config"].__setitem__("in_channels", 0), "in_channels"),
    (lambda d: d["config"].__setitem__("num_classes", -3), "num_classes"),
    (lambda d: d["config"].__setitem__("dim", "16"), "dim"),
    (lambda d: d["config"].__setitem__("depth", 2.5), "depth"),
    (lambda d: d["config"].__setitem__("dropout", 2.0), "dropout"),
    (lambda d: d["config"].__setitem__("norm_eps", -1.0), "norm_eps"),
    (lambda d: d["config"].__setitem__("heads", 3), "divisible"),
    (lambda d: d["config"].__setitem__("pool", "max"), "pool"),
    (lambda d: d["config"].update(depth=10**9), "parameters"),  # would allocate without bound
    (lambda d: d["config"].update(dim=10**6, heads=1), "parameters"),
    (lambda d: d["config"].update(image_size=10**6, patch_size=1), "patches"),
    (lambda d: d.__setitem__("config", [1, 2, 3]), "config"),
    (lambda d: d.pop("config"), "config"),
    (lambda d: d.__setitem__("class_names", ["only one"]), "class_names"),
    (lambda d: d.__setitem__("class_names", 42), "class_names"),
    (lambda d: d.__setitem__("std", [0.0, 0.5, 0.5]), "std"),
    (lambda d: d.__setitem__("mean", [0.5]), "mean"),
    (lambda d: d.__setitem__("mean", ["x", 0.5, 0.5]), "mean"),
], ids=["unknown-field", "dim-0", "dim-negative", "depth-negative", "heads-0", "patch-0", "image-negative",
        "mlp-negative", "channels-0", "classes-negative", "dim-string", "depth-float", "dropout", "eps",
        "indivisible", "pool", "depth-huge", "dim-huge", "image-huge", "config-list", "config-missing",
        "class-names-length", "class-names-type", "std-zero", "mean-length", "mean-type"])
def test_absurd_sidecar_is_refused_cleanly(checkpoint, change, fragment):
    _rewrite_sidecar(checkpoint, change)
    message = _refused(checkpoint, fragment)
    assert "tiny.json" in message


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "42", '"config"'])
def test_sidecar_not_an_object(checkpoint, text):
    checkpoint.with_suffix(".json").write_text(text)
    _refused(checkpoint, "tiny.json")


@pytest.mark.parametrize("field, value", [("num_attention_heads", 0), ("hidden_size", -8), ("num_hidden_layers", -1),
                                          ("patch_size", 0), ("hidden_size", "wide"), ("num_hidden_layers", 10**9)])
def test_absurd_huggingface_config_is_refused_cleanly(tmp_path, field, value):
    d = tmp_path / "hf"
    d.mkdir()
    config = {"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 32, "image_size": 16, "patch_size": 4, "num_channels": 3, field: value}
    (d / "config.json").write_text(json.dumps(config))
    save_file({"vit.layernorm.weight": torch.ones(16)}, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match="config"):
        vit.load_model(d)


@pytest.fixture
def hf_directory(tmp_path) -> Path:
    """A small, valid save_pretrained directory (random weights; needs transformers, no download)."""
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, num_labels=3)
    torch.manual_seed(0)
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "hf", safe_serialization=True)
    d = tmp_path / "hf"
    (d / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.3, 0.4]}))
    model = vit.load_model(d)  # sanity: it loads as it is
    assert model.meta["mean"] == [0.4, 0.5, 0.6]
    return d


@pytest.mark.parametrize("pre", ['{"image_mean": [0.5], "image_std": [0.5, 0.5, 0.5]}',
                                 '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0, 0.5]}',
                                 '{"image_mean": 0.5}', '{"image_std": ["a", "b", "c"]}', "[1, 2]", "{not json"],
                         ids=["mean-length", "std-zero", "mean-number", "std-strings", "not-object", "not-json"])
def test_huggingface_preprocessor_config_is_checked(hf_directory, pre):
    """Normalisation values the app would only trip over later, mid-trace, are refused at loading."""
    (hf_directory / "preprocessor_config.json").write_text(pre)
    with pytest.raises(CheckpointError, match="preprocessor_config.json"):
        vit.load_model(hf_directory)


def test_huggingface_weights_checked_like_ours(hf_directory):
    from safetensors.torch import load_file

    path = hf_directory / "model.safetensors"
    state = load_file(str(path))
    key = next(k for k in state if k.endswith("classifier.weight"))
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="NaN"):
        vit.load_model(hf_directory)


@pytest.mark.parametrize("change", [{"dim": 0}, {"depth": -1}, {"heads": 0}, {"patch_size": 0}, {"mlp_dim": -1}])
def test_vitconfig_itself_rejects_non_positive_sizes(change):
    with pytest.raises(ValueError):
        vit.ViTConfig(**{**_tiny_config().to_dict(), **change})


def test_valid_checkpoint_still_loads_after_all_checks(checkpoint):
    model = vit.load_model(checkpoint)
    assert model.class_names == ["a", "b", "c"]
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_errors_carry_code_template_and_params(tmp_path, checkpoint):
    """The user-facing checkpoint errors are translatable: code, English template, params."""
    marker = tmp_path / "pwned"
    evil = _write_evil(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError) as e:
        vit.load_model(evil)
    assert e.value.code == "pickle_refused" and e.value.params == {"file": "evil.pt"}
    assert "evil.pt" not in e.value.template and "evil.pt" in _check_translatable(e.value)
    assert not marker.exists()

    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(CheckpointError) as e:
        read_safetensors(missing)
    assert e.value.code == "weights_missing" and "nowhere.safetensors" in _check_translatable(e.value)
    with pytest.raises(CheckpointError) as e:
        vit.load_model(tmp_path / "no-such-model")
    assert e.value.code == "model_not_found" and "no-such-model'" in _check_translatable(e.value)

    size = checkpoint.stat().st_size
    with pytest.raises(CheckpointError) as e:
        read_safetensors(checkpoint, max_bytes=size // 2)
    assert e.value.code == "checkpoint_too_large"
    _check_translatable(e.value)


def test_nested_problems_are_translated_too(checkpoint):
    """A sidecar's config problems are said of the file, and every part of the sentence is Korean."""
    _rewrite_sidecar(checkpoint, lambda d: d["config"].update(dim=0, dropout=2.0))
    with pytest.raises(CheckpointError) as e:
        vit.load_model(checkpoint)
    assert e.value.code == "invalid_config"
    assert str(e.value) == ("tiny.json: The model config is not valid: dim must be a whole number ≥ 1; "
                            "dropout must be a number in [0, 1).")  # the rules, not the file's values
    ko = _check_translatable(e.value)
    assert ko.startswith("tiny.json") and "must" not in ko and "dim" in ko and "2.0" not in ko, ko

    _rewrite_sidecar(checkpoint, lambda d: d["config"].update(dim=16, dropout=0.0))
    _rewrite_tensors(checkpoint, lambda s: (s.pop("head.bias"), s.__setitem__("backdoor.weight", torch.zeros(2))))
    with pytest.raises(CheckpointError) as e:
        vit.load_model(checkpoint)
    assert e.value.code == "weights_mismatch"
    ko = _check_translatable(e.value)
    assert "head.bias" in ko and "backdoor" not in ko and "missing" not in ko, ko


def test_checkpoint_error_survives_pickling(tmp_path):
    with pytest.raises(CheckpointError) as e:
        read_safetensors(tmp_path / "evil.pkl")
    copy = pickle.loads(pickle.dumps(e.value))
    assert (type(copy), copy.code, copy.params, str(copy)) == (CheckpointError, "pickle_refused", {"file": "evil.pkl"},
                                                             str(e.value))


# --- sessions and shared caches (AppTest) ---------------------------------------------------------


def _app_test():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=180)


def _sidebar_text(at) -> str:
    """The sidebar's markdown as a reader sees it (the app backslash-escapes user text such as file names)."""
    return re.sub(r"\\(.)", r"\1", "\n".join(str(m.value) for m in at.sidebar.markdown))


def _no_exceptions(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


FINGERPRINT = 7.25  # every weight of the user's model has this value: easy to recognise anywhere


@pytest.fixture
def user_checkpoint(tmp_path) -> Path:
    """A user's own checkpoint, recognisable by its weights and by its name."""
    model = vit.VisionTransformer(vit.ViTConfig.preset("tiny-shapes"))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(FINGERPRINT)
    model.class_names = [f"secret {i}" for i in range(10)]
    return vit.save_model(model, tmp_path / "students-private-model", mean=[0.5] * 3, std=[0.5] * 3)


def _is_user_model(obj) -> bool:
    return isinstance(obj, vit.VisionTransformer) and bool(torch.all(obj.cls_token == FINGERPRINT))


def _mentions_fingerprint(obj) -> bool:
    if _is_user_model(obj):
        return True
    if isinstance(obj, dict):
        arr = obj.get("class_token")
        return arr is not None and bool((abs(arr - FINGERPRINT) < 1e-6).all())
    return False


def _caches(registry) -> list:
    """The cache objects in a registry of Streamlit caches, however its dicts are nested."""
    found, todo = [], [registry._function_caches]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            todo += list(x.values())
        else:
            found.append(x)
    return found


def _shared_cache_values() -> list:
    """Everything in Streamlit's process-wide caches (private API: skips if it has moved)."""
    try:
        from streamlit.runtime.caching import cache_data_api, cache_resource_api
        resource = _caches(cache_resource_api._resource_caches)
        data = _caches(cache_data_api._data_caches)
        resource_entries = [list(c._mem_cache.values()) for c in resource]
        data_entries = [list(c.storage._mem_cache.values()) for c in data]
    except (ImportError, AttributeError):
        pytest.skip("Streamlit's cache internals have changed; the spies in this test still ran")
    values = [getattr(r, "value", r) for entries in resource_entries for r in entries]
    for entries in data_entries:
        for raw in entries:
            raw = getattr(raw, "value", raw)
            try:
                result = pickle.loads(raw) if isinstance(raw, (bytes, bytearray)) else raw
            except Exception:  # our own in-process cache entries; anything else is not a trace
                continue
            values.append(getattr(result, "value", result))
    assert values, "found no cached values at all: the scan is looking in the wrong place"
    return values


def _upload_files(path: Path) -> list[tuple[str, bytes, str]]:
    """A checkpoint pair as the browser uploads it."""
    return [(path.with_suffix(".safetensors").name, path.with_suffix(".safetensors").read_bytes(), "application/octet-stream"),
            (path.with_suffix(".json").name, path.with_suffix(".json").read_bytes(), "application/json")]


def _upload(at, files):
    at.selectbox(key="model_name").set_value(UPLOADED).run()
    return at.file_uploader(key="checkpoint_upload").set_value(files).run()


def test_user_model_stays_in_its_session(user_checkpoint, monkeypatch):
    from ui import compute, models

    monkeypatch.setenv("VIT_EXPLORER_CHECKPOINT_UPLOADS", "1")

    seen_models, seen_names = [], []
    real_trace, real_shared = compute._shared_trace, models.shared_model

    def spy_trace(model_key, image_key, fit, _model, _image):
        seen_models.append((model_key, _model))
        return real_trace(model_key, image_key, fit, _model, _image)

    def spy_shared(name):
        seen_names.append(name)
        return real_shared(name)

    monkeypatch.setattr(compute, "_shared_trace", spy_trace)
    monkeypatch.setattr(models, "shared_model", spy_shared)

    alice = _app_test().run()
    _no_exceptions(alice)
    default_label = _sidebar_text(alice)
    _upload(alice, _upload_files(user_checkpoint))
    _no_exceptions(alice)
    assert not alice.error, [e.value for e in alice.error]
    name = user_checkpoint.stem  # "students-private-model"
    assert name in _sidebar_text(alice)
    for page in ("app_pages/attention.py", "app_pages/encoder.py"):  # pages that run the model on her image
        alice.switch_page(page).run()
        _no_exceptions(alice)
        assert name in _sidebar_text(alice)

    bob = _app_test().run()
    _no_exceptions(bob)
    assert name not in _sidebar_text(bob)
    assert _sidebar_text(bob) == default_label
    assert all(name not in o for o in bob.selectbox(key="model_name").options)
    bob.selectbox(key="model_name").set_value(UPLOADED).run()  # Bob's own (empty) upload slot: the default model
    _no_exceptions(bob)
    assert name not in _sidebar_text(bob)
    bob.switch_page("app_pages/attention.py").run()
    _no_exceptions(bob)
    assert name not in _sidebar_text(bob)

    # Nothing shared ever saw her model, by name or by object.
    assert not any(_is_user_model(m) for _, m in seen_models), [k for k, _ in seen_models]
    assert all(name not in n for n in seen_names), seen_names
    # And nothing in Streamlit's process-wide caches holds it or a trace made with it; the scan
    # does see the shared model and the shared traces (of Bob's and the default image), so it looks
    # in the right place.
    values = _shared_cache_values()
    assert any(isinstance(v, vit.VisionTransformer) for v in values)
    assert any(isinstance(v, dict) and "class_token" in v for v in values)
    assert not any(_mentions_fingerprint(v) for v in values)


SECRET = "s3cr3t-XYZ"


@pytest.mark.parametrize("kind", ["one-file", "three-files", "pickle", "absurd-config", "corrupt", "secret",
                                  "deep-json", "too-large"])
def test_bad_upload_is_an_error_message(tmp_path, monkeypatch, kind):
    from ui import models

    monkeypatch.setenv("VIT_EXPLORER_CHECKPOINT_UPLOADS", "1")
    marker = tmp_path / "pwned"
    torch.manual_seed(0)
    config = vit.ViTConfig.preset("tiny-fashion") if kind == "too-large" else _tiny_config()  # 3 MB of weights
    ckpt = vit.save_model(vit.VisionTransformer(config), tmp_path / "bad")
    if kind == "absurd-config":
        _rewrite_sidecar(ckpt, lambda d: d["config"].update(dim=0, depth=-1))
    elif kind == "corrupt":
        ckpt.write_bytes(os.urandom(256))
    elif kind == "pickle":  # a pickle named .safetensors: never unpickled
        ckpt.write_bytes(_evil_bytes(marker))
    elif kind == "secret":  # a secret as a value and as a key name: never echoed
        _rewrite_sidecar(ckpt, lambda d: (d["config"].update(dim=SECRET), d.__setitem__(SECRET, 1),
                                          d["config"].__setitem__(SECRET, 2), d.__setitem__("dataset", [SECRET])))
    elif kind == "deep-json":
        ckpt.with_suffix(".json").write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "too-large":
        monkeypatch.setattr(models, "UPLOAD_LIMIT_MB", 1)
    files = _upload_files(ckpt)
    if kind == "one-file":
        files = files[:1]
    elif kind == "three-files":
        files = files + [("extra.json", b"{}", "application/json")]

    at = _app_test().run()
    default_label = _sidebar_text(at)
    _upload(at, files)
    _no_exceptions(at)
    if kind == "one-file":
        assert not at.error and any(".json" in i.value for i in at.info), [i.value for i in at.info]
    else:
        assert at.error, "a bad upload must show an error"
        message = at.error[0].value
        assert SECRET not in message and "Traceback" not in message, message
    assert not marker.exists()
    assert not at.text_input, "no path is ever typed"
    # The session goes on with the shared default model, on every page.
    assert _sidebar_text(at) == default_label
    at.switch_page("app_pages/attention.py").run()
    _no_exceptions(at)
    assert _sidebar_text(at) == default_label
    # Others are unaffected.
    other = _app_test().run()
    _no_exceptions(other)
    assert _sidebar_text(other) == default_label


def _assert_pristine(model: vit.VisionTransformer) -> None:
    assert model.training is False
    assert all(not m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    for m in model.modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                      "_state_dict_hooks", "_load_state_dict_pre_hooks"):
            assert not getattr(m, hooks, {}), f"{type(m).__name__}.{hooks} is not empty"
    for p in model.parameters():
        assert p.grad is None
        assert not getattr(p, "_backward_hooks", None)
    assert not getattr(torch.nn.modules.module, "_global_forward_hooks", {})
    assert not getattr(torch.nn.modules.module, "_global_forward_pre_hooks", {})


def _same_weights(a: vit.VisionTransformer, b: vit.VisionTransformer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def test_shared_model_is_not_mutated_by_any_page(tmp_path):
    import numpy as np
    from PIL import Image

    from ui import frame, models

    names = models.model_options()
    names = [n for n in names if n != UPLOADED]
    snapshots = {n: {k: v.clone() for k, v in models.shared_model(n).state_dict().items()} for n in names}

    buf = tmp_path / "upload.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(buf)

    for name in names:
        at = _app_test().run()
        _no_exceptions(at)
        at.selectbox(key="model_name").set_value(name).run()
        at.file_uploader(key="upload").set_value(("upload.png", buf.read_bytes(), "image/png")).run()
        _no_exceptions(at)
        for key, (page, *_rest) in frame.STAGES.items():
            at.switch_page(f"{frame.PAGES_DIR.name}/{page}").run()
            _no_exceptions(at)
            assert name in _sidebar_text(at), (key, _sidebar_text(at))

    for name in names:
        shared = models.shared_model(name)
        _assert_pristine(shared)
        now = shared.state_dict()
        for k, v in snapshots[name].items():
            assert torch.equal(now[k], v), f"{name}: {k} changed while serving pages"
        base = name[: -len(models.UNTRAINED)] if name.endswith(models.UNTRAINED) else name
        if base in vit.available_models():
            fresh = vit.load_model(base, device=next(shared.parameters()).device)
            if name.endswith(models.UNTRAINED):
                fresh = vit.untrained_like(fresh)
            _same_weights(shared, fresh)
