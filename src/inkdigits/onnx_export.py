"""The generator as an ONNX file, for sampling without PyTorch (onnxruntime + numpy).

    inkdigits export-onnx --out generator.onnx          # needs the extra: pip install 'inkdigits[onnx]'

Inputs: ``z`` (N, latent_dim) float32 styles and ``labels`` (N,) int64 classes, N dynamic. Outputs: ``images``
(N, H, W) uint8, white on black, exactly as the sampling API returns them, and ``pixels`` (N, 1, H, W) float32
in [-1, 1], the network's raw output.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import InkdigitsError
from .fileio import atomic_replace
from .models import to_uint8


class _Exported(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, z, labels):
        pixels = self.net(z, labels)
        return to_uint8(pixels), pixels


def export_onnx(g, out: Path) -> Path:
    """Write ``g`` (a DigitGenerator) to ``out`` atomically; returns ``out``."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise InkdigitsError(f"{out}: the ONNX file must end in .onnx")
    if out.is_dir():
        raise InkdigitsError(f"{out}: is a directory")
    try:
        import onnxscript  # noqa: F401  (the exporter needs it; say so before tracing)
    except ImportError:
        raise InkdigitsError("ONNX export needs the onnx extra: pip install 'inkdigits[onnx]'") from None
    import logging
    import warnings

    model = _Exported(g.net).eval()
    z = torch.zeros(2, g.latent_dim)
    labels = torch.zeros(2, dtype=torch.long)
    batch = torch.export.Dim("batch", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # the exporter narrates every pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (z, labels), dynamo=True, input_names=["z", "labels"],
                                    output_names=["images", "pixels"],
                                    dynamic_shapes={"z": {0: batch}, "labels": {0: batch}}, verbose=False)  # fmt: skip
    try:
        atomic_replace(out, lambda tmp: program.save(tmp))
    except OSError as e:
        raise InkdigitsError(f"{out}: cannot write ({e.strerror or e})") from None
    return out
