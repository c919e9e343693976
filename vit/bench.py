"""Benchmark this project's ViT against Hugging Face's on identical random weights.

    python -m vit.bench                      # every case, table + artifacts/bench.json
    python -m vit.bench --cases tiny --reps 50
    python -m vit.bench --smoke              # a few seconds, tiny sizes (used by the tests)
    python -m vit.bench --repeat 3           # each case 3 times: median ratio and its range across runs
    python -m vit.bench --interventions      # issue #13: an intervention's trace and a batched occlusion map

Two comparisons per case, both under ``torch.inference_mode()``:

* ``trace``   — ``model.trace(x)`` (explicit attention probabilities, every stage kept) against
  ``ViTForImageClassification`` with eager attention and ``output_attentions=True,
  output_hidden_states=True``: the same information, computed the same way.
* ``forward`` — ``model(x)`` (fused attention) against Hugging Face with sdpa attention, logits only.

Every case builds a random Hugging Face model from a transformers ``ViTConfig`` that matches ours,
converts it with ``vit.from_hf`` so the weights are identical, and checks that the outputs agree
(largest absolute difference, must be below 1e-4 in fp32) before anything is timed. Timings are
medians over at least ``--reps`` repetitions (more for fast cases, until ``--min-seconds``) after
``--warmup`` calls; ours and Hugging Face's alternate within every repetition (and swap who goes
first) so that background load hits both alike.

On CPU, page faults matter: outputs land on fresh pages whenever glibc has handed freed memory
back to the OS, and the trace returns more tensors than Hugging Face does (z'l, patches, ...).
Page faults per call are reported; ``--keep-freed-memory`` turns trimming off for both sides.

``--interventions`` times the "What if…?" library instead (no Hugging Face needed): for the bundled
models and random ``tiny-symbols`` models (64 px, and 96 px for a 12×12 grid), one image's full
trace under an intervention (target ≤ 0.25 s on 2 CPU cores) and its occlusion map, every patch
hidden in turn as one batched forward pass (target ≤ 0.5 s); the gradient map and the deletion
and insertion curves for reference. Written to artifacts/bench_interventions.json by default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .config import ViTConfig
from .device import choose_device, describe_device

TOLERANCE = 1e-4  # fp32 agreement required before timing
DEFAULT_JSON = Path("artifacts") / "bench.json"
DEFAULT_INTERVENTIONS_JSON = Path("artifacts") / "bench_interventions.json"
COLUMNS = ("case", "batch", "mode", "dtype", "ours_ms", "hf_ms", "ratio", "max_abs_diff")
HEADERS = ("case", "batch", "mode", "dtype", "ours ms", "HF ms", "ours/HF", "max |Δ|")

SMOKE_CONFIG = ViTConfig(image_size=16, patch_size=4, in_channels=3, dim=32, depth=2, heads=2, mlp_dim=64, num_classes=5)


@dataclass(frozen=True)
class Case:
    name: str
    config: ViTConfig
    batch: int

    @property
    def label(self) -> str:
        return f"{self.name} b{self.batch}"


# --- the cases --------------------------------------------------------------------------------


def bundled_configs(notes: list[str] | None = None) -> list[tuple[str, ViTConfig]]:
    """(name, config) of each loadable bundled model, one per distinct config."""
    from .loading import available_models, load_model  # loading pulls in PIL; only needed here

    found: list[tuple[str, ViTConfig]] = []
    for name in available_models():
        if name.endswith(".resume"):  # a training run's resume state (git-ignored), not a model
            continue
        try:
            cfg = load_model(name, device="cpu").config
        except Exception as e:  # a half-written or non-model file in assets/models
            if notes is not None:
                notes.append(f"skipped bundled {name!r}: {e}")
            continue
        if all(cfg != c for _, c in found):
            found.append((name, cfg))
    return found


def default_cases(smoke: bool = False, notes: list[str] | None = None) -> list[Case]:
    if smoke:
        return [Case("smoke", SMOKE_CONFIG, 1), Case("smoke", SMOKE_CONFIG, 4)]
    tiny = bundled_configs(notes)
    if not tiny:
        if notes is not None:
            notes.append("no bundled models could be loaded; using the tiny-fashion and tiny-shapes presets")
        tiny = [(name, ViTConfig.preset(name)) for name in ("tiny-fashion", "tiny-shapes")]
    cases = [Case(name, cfg, b) for name, cfg in tiny for b in (1, 64)]
    cases.append(Case("ViT-S/16", ViTConfig.preset("ViT-S/16"), 1))
    cases += [Case("ViT-B/16", ViTConfig.preset("ViT-B/16"), b) for b in (1, 8)]
    return cases


def select_cases(cases: list[Case], filters: str | None) -> list[Case]:
    """Keep cases whose label contains any of the comma-separated, case-insensitive substrings."""
    if not filters:
        return cases
    wanted = [f.strip().lower() for f in filters.split(",") if f.strip()]
    return [c for c in cases if any(w in c.label.lower() for w in wanted)]


# --- the models -------------------------------------------------------------------------------


def hf_config_for(cfg: ViTConfig, attn_implementation: str):
    """A transformers ``ViTConfig`` describing the same network as ``cfg``."""
    from transformers import ViTConfig as HFViTConfig

    unsupported = []
    if cfg.pool != "cls":
        unsupported.append(f"pool={cfg.pool!r}")
    if cfg.pos_embedding != "learned":
        unsupported.append(f"pos_embedding={cfg.pos_embedding!r}")
    if cfg.representation_size:
        unsupported.append("representation_size")
    if cfg.num_classes <= 0:
        unsupported.append("num_classes=0")
    if unsupported:
        raise ValueError("Hugging Face's ViTForImageClassification has no equivalent of " + ", ".join(unsupported))
    # attn_implementation is a ViTConfig keyword (the model constructor takes none); it must be
    # set before the model is built, and is checked on the built model below.
    return HFViTConfig(
        image_size=cfg.image_size, patch_size=cfg.patch_size, num_channels=cfg.in_channels,
        hidden_size=cfg.dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.heads,
        intermediate_size=cfg.mlp_dim, num_labels=cfg.num_classes, layer_norm_eps=cfg.norm_eps,
        qkv_bias=cfg.qkv_bias, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation=attn_implementation,
    )


def build_pair(cfg: ViTConfig, device: torch.device, seed: int = 0):
    """(ours, HF eager, HF sdpa): three models with the same random weights, in eval mode on ``device``."""
    from transformers import ViTForImageClassification

    from .weights import from_hf

    torch.manual_seed(seed)
    hf_eager = ViTForImageClassification(hf_config_for(cfg, "eager"))
    # HF initialises biases to zero and LayerNorms to identity; perturb them so every tensor matters.
    with torch.no_grad():
        for name, p in hf_eager.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                p.add_(torch.randn_like(p) * 0.1)
            elif name.endswith("bias") or "layernorm" in name:
                p.copy_(torch.randn_like(p) * 0.02)
    hf_sdpa = ViTForImageClassification(hf_config_for(cfg, "sdpa"))
    hf_sdpa.load_state_dict(hf_eager.state_dict())
    for model, impl in ((hf_eager, "eager"), (hf_sdpa, "sdpa")):
        if model.config._attn_implementation != impl:
            raise RuntimeError(f"asked for {impl} attention, got {model.config._attn_implementation}")
    ours = from_hf(hf_eager, cfg)
    models = tuple(m.eval().requires_grad_(False).to(device) for m in (ours, hf_eager, hf_sdpa))
    return models


def _max_diff(pairs) -> float:
    return max(float((a.float() - b.float()).abs().max()) for a, b in pairs)


def trace_diff(ours, hf, x) -> float:
    """Largest |Δ| over every hidden state, every attention map and the logits."""
    t = ours.trace(x)
    out = hf(pixel_values=x, output_attentions=True, output_hidden_states=True)
    if len(t.hidden_states) != len(out.hidden_states) or len(t.attentions) != len(out.attentions):
        raise RuntimeError("trace and Hugging Face disagree on the number of layers")
    pairs = [*zip(t.hidden_states, out.hidden_states), *zip(t.attentions, out.attentions), (t.logits, out.logits)]
    return _max_diff(pairs)


def forward_diff(ours, hf, x) -> float:
    return _max_diff([(ours(x), hf(pixel_values=x).logits)])


# --- timing -----------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _minor_faults() -> int:
    """Minor page faults of this process so far (0 where getrusage is unavailable)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0


def time_interleaved(fns: list[Callable[[], Any]], reps: int, warmup: int, device: torch.device,
                     min_seconds: float = 0.0) -> tuple[list[float], list[float], int]:
    """(median milliseconds, mean minor page faults per call, repetitions) of each function.

    Every repetition runs them all, rotating which goes first. At least ``reps`` repetitions, more
    (up to 50×) while less than ``min_seconds`` has passed, so that fast cases get many samples.
    Page faults are counted outside the timed region: on CPU, fresh pages for the returned
    tensors are a large part of the cost.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    faults = [0] * len(fns)
    began, r = time.perf_counter(), 0
    while r < reps or (time.perf_counter() - began < min_seconds and r < 50 * reps):
        order = list(range(len(fns)))
        k = r % len(fns)
        order = order[k:] + order[:k]
        for i in order:
            _sync(device)
            f0 = _minor_faults()
            start = time.perf_counter()
            fns[i]()
            _sync(device)
            times[i].append((time.perf_counter() - start) * 1e3)
            faults[i] += _minor_faults() - f0
        r += 1
    return [statistics.median(t) for t in times], [f / max(r, 1) for f in faults], r


@contextmanager
def _native_stderr_silenced():
    """Hide what C++ code writes to file descriptor 2 (torch's profiler logs two lines on every use)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def allocated_mib(fn: Callable[[], Any], device: torch.device) -> float:
    """MiB that one call allocates on ``device`` (the sum of its allocations, whatever is freed later).

    Counted by torch's profiler, so it is exact and repeatable where timings are not: on CPU, fresh
    allocations are what turn into page faults. NaN where the profiler cannot count on this device.
    """
    if device.type not in ("cpu", "cuda"):
        return float("nan")
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with _native_stderr_silenced(), profile(activities=activities, profile_memory=True) as prof:
        fn()
    field = "self_device_memory_usage" if device.type == "cuda" else "self_cpu_memory_usage"
    return sum(max(0, getattr(e, field, 0) or 0) for e in prof.key_averages()) / 2**20


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the OS (``--keep-freed-memory``).

    By default glibc gives large freed blocks back, so the next call's outputs land on fresh pages
    and pay a page fault per 4 KiB. That cost is real, but it depends on allocation history and
    swamps compute differences for mid-sized batches on CPU. Returns False where not glibc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024) and libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


# --- the run ----------------------------------------------------------------------------------


def cpu_description() -> tuple[str, int | None]:
    """The CPU's model name (from /proc/cpuinfo where there is one) and the cores this process may use."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return cpu, usable


def machine_info(device: torch.device) -> dict[str, Any]:
    cpu, usable = cpu_description()
    try:
        import transformers

        tf_version = transformers.__version__
    except ImportError:
        tf_version = None
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "transformers": tf_version, "python": platform.python_version(),
        "device": describe_device(device), "load_average_1min": load,
    }


def run_case(case: Case, device: torch.device, reps: int, warmup: int, bf16: bool = False,
             min_seconds: float = 0.0) -> list[dict[str, Any]]:
    ours, hf_eager, hf_sdpa = build_pair(case.config, device)
    c = case.config
    x = torch.randn(case.batch, c.in_channels, c.image_size, c.image_size,
                    generator=torch.Generator().manual_seed(1)).to(device)
    precisions = [("fp32", nullcontext)]
    if bf16:
        precisions.append(("bf16", lambda: torch.autocast(device.type, dtype=torch.bfloat16)))
    rows = []
    for dtype, ctx in precisions:
        with torch.inference_mode(), ctx():
            d_trace = trace_diff(ours, hf_eager, x)
            d_fwd = forward_diff(ours, hf_sdpa, x)
            if dtype == "fp32" and max(d_trace, d_fwd) >= TOLERANCE:
                raise AssertionError(f"{case.label}: outputs differ from Hugging Face by {max(d_trace, d_fwd):.2e}")
            (t_ours, t_hf), (t_fo, t_fh), t_n = time_interleaved(
                [lambda: ours.trace(x), lambda: hf_eager(pixel_values=x, output_attentions=True, output_hidden_states=True)],
                reps, warmup, device, min_seconds)
            (f_ours, f_hf), (f_fo, f_fh), f_n = time_interleaved(
                [lambda: ours(x), lambda: hf_sdpa(pixel_values=x)], reps, warmup, device, min_seconds)
            mib = {("trace", "ours"): allocated_mib(lambda: ours.trace(x), device),
                   ("trace", "hf"): allocated_mib(lambda: hf_eager(pixel_values=x, output_attentions=True,
                                                                   output_hidden_states=True), device),
                   ("forward", "ours"): allocated_mib(lambda: ours(x), device),
                   ("forward", "hf"): allocated_mib(lambda: hf_sdpa(pixel_values=x), device)}
        for mode, o, h, d, fo, fh, n in (("trace", t_ours, t_hf, d_trace, t_fo, t_fh, t_n),
                                         ("forward", f_ours, f_hf, d_fwd, f_fo, f_fh, f_n)):
            rows.append({"case": case.name, "batch": case.batch, "mode": mode, "dtype": dtype, "reps": n,
                         "ours_page_faults": fo, "hf_page_faults": fh,
                         "ours_alloc_mib": mib[mode, "ours"], "hf_alloc_mib": mib[mode, "hf"],
                         "ours_ms": o, "hf_ms": h, "ratio": o / h, "max_abs_diff": d,
                         "hf": "eager+outputs" if mode == "trace" else "sdpa"})
    del ours, hf_eager, hf_sdpa
    return rows


def combine_runs(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (mode, dtype) from several runs of a case: median times, and the median of the
    per-run ratios with its range, so a reader sees how much a ratio moves between runs."""
    rows = []
    for same in zip(*runs):
        ratios = [r["ratio"] for r in same]
        row = dict(same[0])
        for key in ("ours_ms", "hf_ms", "ours_page_faults", "hf_page_faults", "ours_alloc_mib", "hf_alloc_mib"):
            if key in row:
                row[key] = statistics.median(r[key] for r in same)
        row.update(ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios), runs=len(same),
                   run_ratios=ratios, reps=sum(r["reps"] for r in same),
                   max_abs_diff=max(r["max_abs_diff"] for r in same))
        rows.append(row)
    return rows


def run_bench(cases: str | None = None, reps: int = 20, warmup: int = 3, device: str | torch.device | None = None,
              threads: int | None = None, smoke: bool = False, bf16: bool = False,
              json_path: str | Path | None = None, out: Callable[[str], Any] | None = print,
              keep_freed: bool = False, min_seconds: float = 2.0, repeat: int = 1) -> dict[str, Any]:
    """Run the benchmark; returns {"machine", "settings", "notes", "rows"} and writes it to ``json_path``."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run_bench(cases, reps, warmup, device, smoke, bf16, json_path, out or (lambda s: None), keep_freed,
                          min_seconds, repeat)
    finally:
        torch.set_num_threads(previous_threads)


def _run_bench(cases, reps, warmup, device, smoke, bf16, json_path, say, keep_freed, min_seconds, repeat) -> dict[str, Any]:
    if smoke:
        reps, warmup, min_seconds = min(reps, 2), min(warmup, 1), 0.0
    dev = choose_device(str(device) if device is not None else None)
    notes: list[str] = []
    if bf16 and dev.type != "cuda":
        notes.append(f"--bf16 runs on cuda only; ignored on {dev.type}")
        bf16 = False
    if keep_freed:
        keep_freed = keep_freed_memory()
        notes.append("glibc told to keep freed memory (no trimming): page faults mostly gone from the timings"
                     if keep_freed else "--keep-freed-memory needs glibc; ignored")
    chosen = select_cases(default_cases(smoke, notes), cases)
    if not chosen:
        raise ValueError(f"no case matches {cases!r}")
    machine = machine_info(dev)
    load, cores = machine.get("load_average_1min"), machine.get("usable_cores") or 1
    if dev.type == "cpu" and load is not None and load > 0.5 * cores:
        notes.append(f"1-minute load average {load:.1f} on {cores} cores: other work is running, timings will be noisy")
    if dev.type == "cuda":
        machine["device_name"] = torch.cuda.get_device_name(dev)
    say(format_machine(machine))
    for n in notes:
        say(f"note: {n}")
    rows: list[dict[str, Any]] = []
    for case in chosen:
        start = time.perf_counter()
        runs = [run_case(case, dev, reps, warmup, bf16, min_seconds) for _ in range(max(1, repeat))]
        case_rows = combine_runs(runs)
        rows += case_rows
        ratios = ", ".join(f"{r['mode']}{'' if r['dtype'] == 'fp32' else ' ' + r['dtype']} {r['ratio']:.2f}"
                           + (f" [{r['ratio_min']:.2f}–{r['ratio_max']:.2f}]" if r["runs"] > 1 else "")
                           + f" (allocated/call {r['ours_alloc_mib']:.1f} vs {r['hf_alloc_mib']:.1f} MiB,"
                           f" page faults/call {r['ours_page_faults']:.0f} vs {r['hf_page_faults']:.0f})" for r in case_rows)
        say(f"  {case.label}: ours/HF {ratios} ({time.perf_counter() - start:.1f} s)")
    say(format_table(rows))
    result = {
        "machine": machine,
        "settings": {"reps": reps, "min_seconds": min_seconds, "warmup": warmup, "device": str(dev),
                     "threads": torch.get_num_threads(),
                     "smoke": smoke, "bf16": bf16, "keep_freed_memory": keep_freed, "tolerance": TOLERANCE,
                     "cases": cases, "repeat": max(1, repeat)},
        "notes": notes,
        "rows": rows,
    }
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        say(f"wrote {path}")
    return result


def format_machine(m: dict[str, Any]) -> str:
    dev = m.get("device_name") or m["device"]
    load = f", load {m['load_average_1min']:.2f}" if m.get("load_average_1min") is not None else ""
    return (f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable{load}); torch {m['torch']} "
            f"with {m['torch_threads']} threads; transformers {m['transformers']}; python {m['python']}; device {dev}")


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table; with several runs per case (``--repeat``) the ratio's range across runs too."""
    spread = any(r.get("runs", 1) > 1 for r in rows)
    headers = HEADERS[:7] + (("range",) if spread else ()) + HEADERS[7:]
    cells = [headers]
    for r in rows:
        ratio_range = (f"{r['ratio_min']:.2f}–{r['ratio_max']:.2f}",) if spread else ()
        cells.append((r["case"], str(r["batch"]), r["mode"], r["dtype"], f"{r['ours_ms']:.2f}", f"{r['hf_ms']:.2f}",
                      f"{r['ratio']:.2f}", *ratio_range, f"{r['max_abs_diff']:.1e}"))
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = set(range(4, len(headers))) | {1}

    def line(row):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


# --- interventions and explanations (issue #13) -----------------------------------------------

INTERVENTION_TARGETS_MS = {"trace+intervention": 250.0, "occlusion": 500.0}  # on 2 CPU cores


def intervention_models(smoke: bool = False, notes: list[str] | None = None) -> list[tuple[str, Any]]:
    """(label, model) to time: the bundled models, else random ones of their presets, and random
    ``tiny-symbols`` models at 64 px (its preset) and 96 px (a 12×12 grid of 8-px patches)."""
    from .model import VisionTransformer

    def random(cfg: ViTConfig) -> VisionTransformer:
        torch.manual_seed(0)
        return VisionTransformer(cfg).eval().requires_grad_(False)

    if smoke:
        return [("smoke", random(SMOKE_CONFIG))]
    from .loading import available_models, load_model

    found = []
    for name in available_models():
        try:
            found.append((name, load_model(name, device="cpu")))
        except Exception as e:  # a half-written or non-model file in assets/models
            if notes is not None:
                notes.append(f"skipped bundled {name!r}: {e}")
    if not any("shapes" in name for name, _ in found):
        found.append(("tiny-shapes (random)", random(ViTConfig.preset("tiny-shapes"))))
    symbols = ViTConfig.preset("tiny-symbols")
    found.append((f"tiny-symbols {symbols.image_size}px (random)", random(symbols)))
    found.append(("tiny-symbols 96px (random)", random(symbols.replace(image_size=96))))
    return found


def intervention_rows(label: str, model, device: torch.device, reps: int, warmup: int,
                      min_seconds: float) -> list[dict[str, Any]]:
    """Median milliseconds of each intervention / explanation call on one image for one model."""
    from . import explain
    from .intervention import Intervention

    model = model.to(device)
    cfg = model.config
    n = cfg.num_patches
    x = torch.randn(1, cfg.in_channels, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(1)).to(device)
    # A typical "what if": a quarter of the patches hidden by the mean, a head off, an MLP skipped.
    iv = Intervention(hide=tuple(range(0, n, 4)), hide_with="mean", heads_off=((0, 0),), skip_mlp=(cfg.depth - 1,))
    saliency = torch.rand(n, generator=torch.Generator().manual_seed(2))
    calls = {
        "trace": lambda: model.trace(x),
        "trace+intervention": lambda: model.trace(x, intervention=iv),
        "occlusion": lambda: explain.occlusion_map(model, x),
        "gradient": lambda: explain.gradient_map(model, x),
        "deletion+insertion": lambda: explain.deletion_insertion(model, x, saliency),
    }
    items = {"occlusion": n + 1, "deletion+insertion": 2 * (n + 1)}
    rows = []
    for what, fn in calls.items():
        with torch.inference_mode():
            (ms,), _, r = time_interleaved([fn], reps, warmup, device, min_seconds)
        target = INTERVENTION_TARGETS_MS.get(what)
        rows.append({"model": label, "patches": n, "call": what, "batch": items.get(what, 1), "ms": ms, "reps": r,
                     "target_ms": target, "within_target": None if target is None else ms <= target})
    return rows


def format_intervention_table(rows: list[dict[str, Any]]) -> str:
    headers = ("model", "patches", "call", "batch", "ms", "target")
    cells = [headers]
    for r in rows:
        target = "" if r["target_ms"] is None else f"≤{r['target_ms']:.0f} {'ok' if r['within_target'] else 'OVER'}"
        cells.append((r["model"], str(r["patches"]), r["call"], str(r["batch"]), f"{r['ms']:.1f}", target))
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.rjust(w) if i in (1, 3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def run_interventions_bench(reps: int = 10, warmup: int = 2, device: str | torch.device | None = None,
                            threads: int | None = None, smoke: bool = False, json_path: str | Path | None = None,
                            out: Callable[[str], Any] | None = print, min_seconds: float = 1.0) -> dict[str, Any]:
    """Time interventions and explanations; returns {"machine", "settings", "notes", "rows"}."""
    say = out or (lambda s: None)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        if smoke:
            reps, warmup, min_seconds = min(reps, 2), min(warmup, 1), 0.0
        dev = choose_device(str(device) if device is not None else None)
        notes: list[str] = []
        machine = machine_info(dev)
        load, cores = machine.get("load_average_1min"), machine.get("usable_cores") or 1
        if dev.type == "cpu" and load is not None and load > 0.5 * cores:
            notes.append(f"1-minute load average {load:.1f} on {cores} cores: other work is running, timings will be noisy")
        models = intervention_models(smoke, notes)
        say(format_machine(machine))
        for n in notes:
            say(f"note: {n}")
        rows: list[dict[str, Any]] = []
        for label, model in models:
            rows += intervention_rows(label, model, dev, reps, warmup, min_seconds)
        say(format_intervention_table(rows))
        result = {"machine": machine, "settings": {"reps": reps, "warmup": warmup, "min_seconds": min_seconds,
                                                   "device": str(dev), "threads": torch.get_num_threads(), "smoke": smoke},
                  "notes": notes, "rows": rows}
        if json_path:
            path = Path(json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=2) + "\n")
            say(f"wrote {path}")
        return result
    finally:
        torch.set_num_threads(previous_threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vit.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=20, help="timed repetitions per case, at least (median reported)")
    p.add_argument("--min-seconds", type=float, default=2.0,
                   help="keep repeating (up to 50x --reps) until each comparison has run this long")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    p.add_argument("--repeat", type=int, default=1,
                   help="run every case this many times, with freshly built models, and report the median ratio "
                        "and its range: on a shared machine one run's ratio can move by several percent")
    p.add_argument("--cases", help="comma-separated substrings of case labels to keep, e.g. 'tiny,ViT-B/16 b1'")
    p.add_argument("--device", help="cpu, cuda, mps... (default: vit.choose_device())")
    p.add_argument("--threads", type=int, help="torch.set_num_threads before timing")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 2 repetitions: a few seconds")
    p.add_argument("--bf16", action="store_true", help="on cuda, also time both under bf16 autocast")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="glibc: keep freed memory (mallopt) so page faults do not swamp CPU timings")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the results (default {DEFAULT_JSON})")
    p.add_argument("--list", action="store_true", help="print the case labels and exit")
    p.add_argument("--interventions", action="store_true",
                   help="time an intervention's trace and the batched occlusion map instead (issue #13; "
                        f"default --json {DEFAULT_INTERVENTIONS_JSON})")
    args = p.parse_args(argv)
    if args.interventions:
        json_path = DEFAULT_INTERVENTIONS_JSON if args.json == str(DEFAULT_JSON) else args.json
        run_interventions_bench(reps=args.reps, warmup=args.warmup, device=args.device, threads=args.threads,
                                smoke=args.smoke, json_path=json_path, min_seconds=args.min_seconds)
        return 0
    if args.list:
        for c in select_cases(default_cases(args.smoke), args.cases):
            print(c.label)
        return 0
    run_bench(cases=args.cases, reps=args.reps, warmup=args.warmup, device=args.device, threads=args.threads,
              smoke=args.smoke, bf16=args.bf16, json_path=args.json, keep_freed=args.keep_freed_memory,
              min_seconds=args.min_seconds, repeat=args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
