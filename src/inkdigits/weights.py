"""Safetensors weights with a JSON sidecar beside them: written atomically, read with clear errors.

A weights file is never unpickled: safetensors holds only tensors, the JSON holds only plain data. The
sidecar (format 2) says what the tensors are and how to rebuild their network:

    {"architecture": "Generator", "format_version": 2, "inkdigits_version": "0.2.0",
     "model": {...ModelConfig...}, "train": {...TrainConfig...}, "epoch": ..., ...}

Format 1 (inkdigits 0.1) kept everything under "config"; it is still read. Measured quality lives in a
third file, ``NAME.metrics.json``, written by the evaluation benchmark, never by training.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .config import from_dict
from .errors import InkdigitsError
from .fileio import atomic_replace, atomic_write_text

FORMAT_VERSION = 2


def config_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def metrics_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".metrics.json")


def sidecar(architecture: str, model: dict, **info) -> dict:
    """The JSON written beside a weights file."""
    return {"architecture": architecture, "format_version": FORMAT_VERSION, "inkdigits_version": __version__,
            "model": model, **info}  # fmt: skip


def model_section(cfg: dict, path: Path) -> dict:
    """The network's config from a sidecar of any readable format."""
    version = cfg.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InkdigitsError(f"{config_path(path)}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise InkdigitsError(
            f"{config_path(path)}: written by inkdigits {cfg.get('inkdigits_version', '?')} in weights format "
            f"{version}; this inkdigits {__version__} reads formats up to {FORMAT_VERSION} (upgrade inkdigits)"
        )
    section = cfg.get("model") if version >= 2 else cfg.get("config")
    if not isinstance(section, dict):
        raise InkdigitsError(f"{config_path(path)}: no '{'model' if version >= 2 else 'config'}' object")
    return section


def load_model(path: Path, architecture: str, config_cls, build):
    """(network, its config, the sidecar) from ``path`` and its ``.json``; one clear line for anything amiss."""
    path = Path(path)
    if path.is_dir():
        raise InkdigitsError(f"{path}: is a directory, expected a .safetensors file")
    tensors = read_tensors(path)
    cfg = read_config(path)
    if cfg.get("architecture", architecture) != architecture:
        raise InkdigitsError(f"{path}: holds a {cfg.get('architecture')}, not a {architecture}")
    section = model_section(cfg, path)
    if "format_version" not in cfg:  # format 1 mixed training settings into "config"
        section = {k: v for k, v in section.items() if k in {f.name for f in fields(config_cls)}}
    config = from_dict(config_cls, section, str(config_path(path)))
    try:
        net = build(config)
    except (ValueError, RuntimeError) as e:
        raise InkdigitsError(f"{config_path(path)}: config does not describe a {architecture} ({e})") from None
    load_into(net, tensors, path)
    return net.eval(), config, cfg


def save_weights(model: nn.Module, path: Path, config: dict) -> None:
    """Write ``path`` (.safetensors) and its ``.json`` config."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_replace(path, lambda tmp: save_file(state, tmp))
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    atomic_write_text(config_path(path), text)


def read_json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InkdigitsError(f"{path}: not a valid JSON {what} ({e})") from None
    if not isinstance(data, dict):
        raise InkdigitsError(f"{path}: {what} must be a JSON object")
    return data


def read_config(weights: Path) -> dict:
    cfg = config_path(weights)
    if not cfg.is_file():
        raise InkdigitsError(f"{cfg}: config file missing (it must sit beside {Path(weights).name})")
    return read_json_object(cfg, "config")


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


def read_metrics(weights: Path) -> dict | None:
    """The measured quality stored beside ``weights`` (``NAME.metrics.json``), or None if there is none."""
    path = metrics_path(weights)
    return read_json_object(path, "metrics file") if path.is_file() else None
