"""Safetensors weights with a JSON config beside them: written atomically, read with clear errors.

A weights file is never unpickled: safetensors holds only tensors, the JSON holds only plain data.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import InkdigitsError
from .fileio import atomic_replace, atomic_write_text


def config_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_weights(model: nn.Module, path: Path, config: dict) -> None:
    """Write ``path`` (.safetensors) and its ``.json`` config."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_replace(path, lambda tmp: save_file(state, tmp))
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write_text(config_path(path), text)


def read_config(weights: Path) -> dict:
    cfg = config_path(weights)
    if not cfg.is_file():
        raise InkdigitsError(f"{cfg}: config file missing (it must sit beside {Path(weights).name})")
    try:
        data = json.loads(cfg.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InkdigitsError(f"{cfg}: not a valid JSON config ({e})") from None
    if not isinstance(data, dict):
        raise InkdigitsError(f"{cfg}: config must be a JSON object")
    return data


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise InkdigitsError(f"{path}: weights file not found")
    if not path.is_file():
        raise InkdigitsError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InkdigitsError(f"{path}: weights file is empty")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InkdigitsError(f"{path}: not a valid safetensors file ({first})") from None


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load tensors into ``model``, naming the first missing/unexpected/mis-shaped tensor on failure."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise InkdigitsError(
            f"{path}: weights do not match their config ({what}; "
            f"{len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )
    for name, t in tensors.items():
        if t.shape != expected[name].shape:
            raise InkdigitsError(
                f"{path}: weights do not match their config ({name} is {tuple(t.shape)}, "
                f"config needs {tuple(expected[name].shape)})"
            )
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise InkdigitsError(f"{path}: tensor {name} holds NaN or inf")
    model.load_state_dict(tensors)
