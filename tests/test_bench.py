"""The benchmark runs end to end at smoke size and reports agreement with Hugging Face.

Timings are never asserted: they depend on the machine and on whatever else it is doing.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from vit import bench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_ROWS = {("smoke", 1, "trace"), ("smoke", 1, "forward"), ("smoke", 4, "trace"), ("smoke", 4, "forward")}


def _check_rows(rows):
    assert {(r["case"], r["batch"], r["mode"]) for r in rows} == EXPECTED_ROWS
    assert len(rows) == len(EXPECTED_ROWS)
    for r in rows:
        assert set(bench.COLUMNS) <= set(r)
        assert r["dtype"] == "fp32"
        assert r["max_abs_diff"] < 1e-4
        assert r["ours_ms"] > 0 and r["hf_ms"] > 0
        assert math.isclose(r["ratio"], r["ours_ms"] / r["hf_ms"])
        assert r["ours_alloc_mib"] > 0 and r["hf_alloc_mib"] > 0
    by_mode = {(r["batch"], r["mode"]): r for r in rows}
    for b in (1, 4):  # the trace keeps every stage, so it allocates more than the plain forward
        assert by_mode[b, "trace"]["ours_alloc_mib"] > by_mode[b, "forward"]["ours_alloc_mib"]
    assert by_mode[4, "trace"]["ours_alloc_mib"] > by_mode[1, "trace"]["ours_alloc_mib"]
    # buffers reused at inference (residual sums, GELU): less memory per call than Hugging Face's
    for mode in ("trace", "forward"):
        assert by_mode[4, mode]["ours_alloc_mib"] < by_mode[4, mode]["hf_alloc_mib"], mode


def test_run_bench_smoke_in_process(tmp_path):
    threads = torch.get_num_threads()
    lines = []
    result = bench.run_bench(smoke=True, device="cpu", threads=1, json_path=tmp_path / "out" / "bench.json", out=lines.append)
    assert torch.get_num_threads() == threads  # restored afterwards
    assert result["settings"]["threads"] == 1
    _check_rows(result["rows"])
    assert result["settings"]["reps"] == 2 and result["settings"]["smoke"]
    machine = result["machine"]
    for key in ("cpu", "cores", "torch_threads", "torch", "transformers", "device"):
        assert machine[key] not in (None, "")
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["rows"] == result["rows"]
    text = "\n".join(lines)
    assert text.startswith("machine:")
    for header in bench.HEADERS:
        assert header in text


def test_repeated_runs_report_the_median_ratio_and_its_range():
    lines = []
    result = bench.run_bench(smoke=True, device="cpu", threads=1, repeat=2, out=lines.append)
    rows = result["rows"]
    assert {(r["case"], r["batch"], r["mode"]) for r in rows} == EXPECTED_ROWS and len(rows) == len(EXPECTED_ROWS)
    for r in rows:
        assert r["runs"] == 2 and len(r["run_ratios"]) == 2
        assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
        assert math.isclose(r["ratio"], sum(r["run_ratios"]) / 2)  # the median of two
        assert r["max_abs_diff"] < 1e-4
    header = next(line for line in "\n".join(lines).splitlines() if line.startswith("case"))
    assert header.split()[-3:] == ["range", "max", "|Δ|"]


def test_combine_runs_takes_medians():
    run = lambda ratio, ms: [{"case": "c", "batch": 1, "mode": "trace", "dtype": "fp32", "reps": 5, "ours_ms": ms * ratio,
                              "hf_ms": ms, "ratio": ratio, "ours_page_faults": 0, "hf_page_faults": 0, "max_abs_diff": 0.0}]
    (row,) = bench.combine_runs([run(0.9, 10.0), run(1.2, 20.0), run(1.0, 30.0)])
    assert row["ratio"] == 1.0 and (row["ratio_min"], row["ratio_max"]) == (0.9, 1.2)
    assert row["hf_ms"] == 20.0 and row["ours_ms"] == 24.0 and row["runs"] == 3 and row["reps"] == 15


def test_bench_command_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "vit.bench", "--smoke", "--device", "cpu", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["case", "batch"])
    assert lines[header].split() == ["case", "batch", "mode", "dtype", "ours", "ms", "HF", "ms", "ours/HF", "max", "|Δ|"]
    table = [line.split() for line in lines[header + 2:header + 2 + len(EXPECTED_ROWS)]]
    assert {(c[0], int(c[1]), c[2]) for c in table} == EXPECTED_ROWS
    for cells in table:
        assert len(cells) == 8 and cells[3] == "fp32"
        assert float(cells[7]) < 1e-4
    _check_rows(json.loads(out.read_text())["rows"])


def test_cases_list_and_filter():
    cases = bench.default_cases()
    labels = [c.label for c in cases]
    assert {"ViT-S/16 b1", "ViT-B/16 b1", "ViT-B/16 b8"} <= set(labels)
    tiny = [c for c in cases if not c.name.startswith("ViT-")]
    assert len(tiny) >= 2 and {c.batch for c in tiny} == {1, 64}
    assert all(c.config.image_size == 224 for c in cases if c.name.startswith("ViT-"))
    assert [c.label for c in bench.select_cases(cases, "vit-b/16 B8")] == ["ViT-B/16 b8"]
    assert bench.select_cases(cases, None) == cases
    assert [c.label for c in bench.select_cases(bench.default_cases(smoke=True), "b4")] == ["smoke b4"]


def test_hf_config_matches_ours_and_refuses_what_hf_lacks():
    cfg = bench.ViTConfig.preset("tiny-fashion")
    hf = bench.hf_config_for(cfg, "eager")
    assert (hf.num_channels, hf.image_size, hf.patch_size, hf.hidden_size, hf.num_hidden_layers,
            hf.num_attention_heads, hf.intermediate_size, hf.num_labels, hf.layer_norm_eps) == (
        cfg.in_channels, cfg.image_size, cfg.patch_size, cfg.dim, cfg.depth, cfg.heads, cfg.mlp_dim,
        cfg.num_classes, cfg.norm_eps)
    assert hf._attn_implementation == "eager"
    with pytest.raises(ValueError, match="pool"):
        bench.hf_config_for(cfg.replace(pool="mean"), "eager")
