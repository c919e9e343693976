"""Choose where the model runs: cuda, then mps, then cpu. ``VIT_DEVICE`` overrides the choice."""

from __future__ import annotations

import os

import torch

ENV_VAR = "VIT_DEVICE"


def choose_device(preferred: str | None = None) -> torch.device:
    """The device to run on: ``preferred``, else $VIT_DEVICE, else cuda, mps, cpu in that order."""
    name = preferred or os.environ.get(ENV_VAR, "").strip() or None
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{ENV_VAR}={name} asks for cuda, but no CUDA device is available")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"{ENV_VAR}={name} asks for mps, but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def describe_device(device: torch.device) -> str:
    """A short human-readable name, e.g. 'cpu (2 threads)' or 'cuda: NVIDIA H100'."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"
