"""Where the shipped weights are: package data (``inkdigits.pretrained``, the repository's ``models/``),
found through importlib.resources, so a wheel installed anywhere finds them as a source checkout does."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

GENERATOR = "generator.safetensors"
CLASSIFIER = "classifier.safetensors"


def pretrained(name: str) -> Path:
    """The path of a shipped file (it may be missing if the package was built without its weights)."""
    return Path(str(resources.files("inkdigits.pretrained") / name))


def default_weights() -> Path:
    """``$INKDIGITS_WEIGHTS``, else the shipped generator."""
    env = os.environ.get("INKDIGITS_WEIGHTS")
    return Path(env) if env else pretrained(GENERATOR)


def default_classifier() -> Path:
    return pretrained(CLASSIFIER)
