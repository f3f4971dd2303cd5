"""The multimodal projector: vision features (N, T, C) -> LLM embeddings (N, T', D).

VILA-M3 uses ``mlp_downsample``: pad the 27x27 SigLIP grid to 28x28, merge 2x2 neighbours into one token of width
4C (VILA1.5 order), then LayerNorm(4C) -> Linear(4C, D) -> GELU -> Linear(D, D). The module keeps VILA's attribute
name ``layers`` (an ``nn.Sequential``) so the released ``mm_projector/model.safetensors`` keys ``layers.1/2/4.*``
load unchanged.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from vila_m3_core.errors import VilaM3Error


def downsample_2x2(features: torch.Tensor) -> torch.Tensor:
    """Merge 2x2 neighbouring patches in the VILA1.5 (NVlabs/VILA @355fda9) order.

    Args:
        features: (N, T, C) patch features of a square grid, T = S*S in row-major patch order.

    Returns:
        (N, ceil(S/2)**2, 4C). An odd grid is zero-padded by one row and one column first. Each output vector is
        the concatenation of patches (r, c), (r, c+1), (r+1, c), (r+1, c+1) with r = 2i, c = 2j, and tokens are
        ordered column-block-major: token t holds column block j = t // (S/2), row block i = t % (S/2).
        (NVILA and InternVL's pixel_shuffle use the transposed, row-major order; the released M3 weights were
        trained with this one.)
    """
    n, t, c = features.shape
    side = math.isqrt(t)
    if side * side != t:
        raise VilaM3Error(f"mlp_downsample needs a square patch grid, got {t} tokens.")
    grid = features.reshape(n, side, side, c)  # (N, row, col, C)
    if side % 2:
        grid = nn.functional.pad(grid, (0, 0, 0, 1, 0, 1))  # zero row at the bottom, zero column at the right
        side += 1
    half = side // 2
    # Merge horizontal pairs: (N, row, col/2, 2C) with [(r, 2j), (r, 2j+1)].
    grid = grid.reshape(n, side, half, 2 * c)
    # Swap the spatial axes: (N, col/2, row, 2C), then merge vertical pairs: (N, col/2, row/2, 4C).
    grid = grid.permute(0, 2, 1, 3).reshape(n, half, half, 4 * c)
    return grid.reshape(n, half * half, 4 * c)


class DownSampleBlock(nn.Module):
    """Parameter-free ``layers.0`` of the ``mlp_downsample`` projector (see :func:`downsample_2x2`)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return downsample_2x2(features)


class MultimodalProjector(nn.Module):
    """VILA's ``MultimodalProjector``: an ``nn.Sequential`` named ``layers`` chosen by ``projector_type``.

    Supported types (the released config schema): ``mlp_downsample``, ``linear``, ``mlp{N}x_gelu``, ``identity``.
    """

    def __init__(self, projector_type: str, mm_hidden_size: int, hidden_size: int) -> None:
        super().__init__()
        self.projector_type = projector_type
        mlp = re.fullmatch(r"mlp(\d+)x_gelu", projector_type)
        if projector_type == "mlp_downsample":
            self.layers = nn.Sequential(
                DownSampleBlock(),
                nn.LayerNorm(mm_hidden_size * 4),
                nn.Linear(mm_hidden_size * 4, hidden_size),
                nn.GELU(),
                nn.Linear(hidden_size, hidden_size),
            )
        elif projector_type == "linear":
            self.layers = nn.Sequential(nn.Linear(mm_hidden_size, hidden_size))
        elif mlp:
            modules: list[nn.Module] = [nn.Linear(mm_hidden_size, hidden_size)]
            for _ in range(int(mlp.group(1)) - 1):
                modules += [nn.GELU(), nn.Linear(hidden_size, hidden_size)]
            self.layers = nn.Sequential(*modules)
        elif projector_type == "identity":
            if mm_hidden_size != hidden_size:
                raise VilaM3Error(f"identity projector needs equal widths, got {mm_hidden_size} -> {hidden_size}.")
            self.layers = nn.Sequential(nn.Identity())
        else:
            raise VilaM3Error(
                f"Unknown mm_projector_type {projector_type!r}; supported: mlp_downsample, linear, mlp<N>x_gelu, "
                "identity."
            )

    def tokens_per_image(self, vision_tokens: int) -> int:
        """Number of LLM positions one image takes, given the vision tower's token count (729 -> 196)."""
        if self.projector_type == "mlp_downsample":
            return math.ceil(math.isqrt(vision_tokens) / 2) ** 2
        return vision_tokens

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(N, T, C) vision features -> (N, T', D) LLM embeddings."""
        return self.layers(features)
