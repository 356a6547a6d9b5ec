"""The shipped weights and their sidecars. This folder is the package ``inkdigits.pretrained`` (see
pyproject.toml), so the weights travel inside the wheel; find them with ``inkdigits.resources``."""
