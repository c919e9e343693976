"""One shared model, many threads: each caller gets exactly the result for its own image.

A Streamlit server runs every session's script in its own thread, and the model is shared through
``st.cache_resource``. These tests run many traces at once (threads released together by a
barrier) and compare each with the same trace computed alone: a result that belongs to another
image, or that was disturbed by another thread, fails.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

import vit

WORKERS = 8
TASKS = 32
ATOL = 1e-6


def _model() -> vit.VisionTransformer:
    """The bundled shapes model when it exists, else a random model of the same size."""
    names = vit.available_models()
    if "vit-tiny-shapes" in names:
        return vit.load_model("vit-tiny-shapes", device="cpu")
    torch.manual_seed(0)
    model = vit.VisionTransformer(vit.ViTConfig.preset("tiny-shapes"))
    model.meta = {"name": "random", "mean": [0.5] * 3, "std": [0.5] * 3}
    model.class_names = [f"class {i}" for i in range(10)]
    return vit.weights.prepare_for_inference(model, "cpu")


@pytest.fixture(scope="module")
def model() -> vit.VisionTransformer:
    return _model()


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    """Distinct random images of different sizes and aspect ratios (so crop/resize paths differ)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(24, 96)), int(rng.integers(24, 96))
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return out


def _trace(model: vit.VisionTransformer, image: Image.Image, fit: str = "crop") -> dict[str, np.ndarray]:
    x = vit.preprocess(image, model, fit=fit)
    with torch.inference_mode():
        t = model.trace(x)
    return t.to_numpy()


def _run_together(fn, args: list, workers: int = WORKERS) -> list:
    """Call ``fn(*a)`` for every ``a`` in ``args`` on ``workers`` threads, started together."""
    barrier = threading.Barrier(min(workers, len(args)))

    def task(a):
        try:
            barrier.wait(timeout=10)  # each round of ``workers`` tasks starts at the same moment
        except threading.BrokenBarrierError:  # a last, smaller round: just run
            pass
        return fn(*a)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(task, args))


def _assert_same(got: dict, want: dict, where: str) -> None:
    assert set(got) == set(want), where
    for k in want:
        g, w = np.asarray(got[k]), np.asarray(want[k])
        assert g.shape == w.shape, (where, k, g.shape, w.shape)
        assert np.allclose(g, w, rtol=0, atol=ATOL), (where, k, float(np.abs(g - w).max()))


def _assert_results_tell_images_apart(results: list[dict]) -> None:
    """The images really differ, so a mix-up between two of them would be visible."""
    logits = np.stack([r["logits"].ravel() for r in results])
    for i in range(len(results)):
        others = np.delete(logits, i, axis=0)
        assert np.abs(others - logits[i]).max(axis=1).min() > 100 * ATOL


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_untouched(model, before) -> None:
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_threads_trace_their_own_images(model):
    images = _images(TASKS)
    fits = ["crop", "pad", "squash", "crop"] * (TASKS // 4)
    before = _snapshot(model)
    sequential = [_trace(model, im, fit) for im, fit in zip(images, fits)]
    _assert_results_tell_images_apart(sequential)

    order = list(range(TASKS))
    np.random.default_rng(1).shuffle(order)  # not the sequential order
    got = _run_together(lambda i: (i, _trace(model, images[i], fits[i])), [(i,) for i in order])
    for i, result in got:
        _assert_same(result, sequential[i], f"image {i}")
    _assert_untouched(model, before)


def test_threads_with_fused_forward_and_trace_mixed(model):
    """``model(x)`` (fused attention) and ``model.trace(x)`` interleaved on one model agree."""
    images = _images(TASKS, seed=2)
    xs = [vit.preprocess(im, model) for im in images]
    with torch.inference_mode():
        want = [model(x).numpy() for x in xs]

    def task(i):
        with torch.inference_mode():
            out = model(xs[i]) if i % 2 else model.trace(xs[i]).logits
        return i, out.numpy()

    for i, logits in _run_together(task, [(i,) for i in range(TASKS)]):
        assert np.allclose(logits, want[i], rtol=0, atol=1e-5), i


def test_load_image_from_many_threads():
    images = _images(TASKS, seed=3)
    files = []
    for i, im in enumerate(images):
        buf = io.BytesIO()
        fmt = ["PNG", "JPEG", "WEBP", "BMP"][i % 4]
        (im.convert("RGBA") if fmt == "PNG" and i % 8 == 0 else im).save(buf, format=fmt)
        files.append(buf.getvalue())
    files += [files[1][: len(files[1]) // 2], b"not an image at all", b"", b"%PDF-1.4 fake"]  # bad ones too

    def load(data):
        try:
            return np.asarray(vit.load_image(data))
        except vit.ImageError as e:
            return str(e)

    sequential = [load(d) for d in files]
    assert sum(isinstance(r, str) for r in sequential) == 4
    got = _run_together(lambda i: (i, load(files[i])), [(i,) for i in list(range(len(files))) * 2])
    for i, result in got:
        want = sequential[i]
        if isinstance(want, str):
            assert result == want, i
        else:
            assert isinstance(result, np.ndarray) and result.shape == want.shape and np.array_equal(result, want), i


# --- the app's own trace function, without a Streamlit server ----------------------------------


@pytest.fixture(scope="module")
def common():
    """The app's trace, its cache and its limits, from the UI layer (ui.compute, ui.models, ui.state)."""
    pytest.importorskip("streamlit")
    from types import SimpleNamespace

    from ui import compute, models, state

    return SimpleNamespace(compute_trace=compute.compute_trace, shared_trace=compute._shared_trace,
                           image_hash=state.image_hash, MAX_CONCURRENT=models.MAX_CONCURRENT)


def _assert_same_trace(got: dict, want: dict, where: str) -> None:
    assert set(got) == set(want), where
    for k in want:
        g, w = got[k], want[k]
        if isinstance(w, np.ndarray):
            assert g.shape == w.shape, (where, k)
            assert np.allclose(g, w, rtol=0, atol=ATOL, equal_nan=True), (where, k, float(np.nanmax(np.abs(g - w))))
        else:
            assert g == w, (where, k)


def test_compute_trace_from_many_threads(common, model, monkeypatch):
    images = _images(TASKS, seed=4)
    before = _snapshot(model)
    sequential = [common.compute_trace(model, im, "crop") for im in images]
    _assert_results_tell_images_apart(sequential)

    # Count model calls in flight: the app allows at most MAX_CONCURRENT at once.
    lock, inside, peak = threading.Lock(), [0], [0]
    real_trace = model.trace

    def counting_trace(*args, **kwargs):
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        try:
            return real_trace(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(model, "trace", counting_trace)
    got = _run_together(lambda i: (i, common.compute_trace(model, images[i], "crop")), [(i,) for i in range(TASKS)][::-1])
    monkeypatch.undo()
    for i, result in got:
        _assert_same_trace(result, sequential[i], f"image {i}")
    assert 1 <= peak[0] <= common.MAX_CONCURRENT
    _assert_untouched(model, before)


def test_shared_trace_cache_from_many_threads(common, model):
    """Through the process-wide trace cache: repeated images hit it concurrently, each gets its own."""
    images = _images(TASKS // 2, seed=5)
    hashes = [common.image_hash(im) for im in images]
    assert len(set(hashes)) == len(hashes)
    sequential = [common.compute_trace(model, im, "crop") for im in images]
    key = f"test-concurrency-{id(model)}"

    def task(i):
        return i, common.shared_trace(key, hashes[i], "crop", model, images[i])

    jobs = [(i,) for i in range(len(images))] * 2  # each image twice: computed once, then a cache hit
    np.random.default_rng(6).shuffle(jobs)
    for i, result in _run_together(task, jobs):
        _assert_same_trace(result, sequential[i], f"image {i}")
    # A cached result is a copy: changing it cannot reach the next caller.
    first = common.shared_trace(key, hashes[0], "crop", model, images[0])
    first["logits"][...] = 123.0
    again = common.shared_trace(key, hashes[0], "crop", model, images[0])
    _assert_same_trace(again, sequential[0], "after a caller modified its copy")


def test_untrained_twin_is_the_same_whoever_builds_it_and_whenever(model):
    """``untrained_like`` is seeded: built from many threads at once it must still give one set of
    weights, and it must not reset the caller's global random state."""
    want = vit.untrained_like(model).state_dict()
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    vit.untrained_like(model)
    assert torch.equal(torch.rand(3), expected_next), "untrained_like changed the global random state"

    got = _run_together(lambda i: vit.untrained_like(model).state_dict(), [(i,) for i in range(TASKS)])
    for state in got:
        for k, v in want.items():
            assert torch.equal(state[k], v), k
