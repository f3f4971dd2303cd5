import pytest
import torch

from vila_m3_core.errors import VilaM3Error
from vila_m3_core.model.projector import MultimodalProjector, downsample_2x2


def encoded_grid(side: int) -> torch.Tensor:
    """(1, side*side, 2) features where patch (r, c) = [r + 1, c + 1] (0 means zero padding)."""
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    return torch.stack([rows + 1, cols + 1], dim=-1).reshape(1, side * side, 2).float()


def test_downsample_order_is_vila15_column_block_major():
    out = downsample_2x2(encoded_grid(27))
    assert out.shape == (1, 196, 8)
    # token 0: block rows 0-1, cols 0-1 in order (r,c), (r,c+1), (r+1,c), (r+1,c+1)
    assert out[0, 0].tolist() == [1, 1, 1, 2, 2, 1, 2, 2]
    # token 1 is the next ROW block (rows 2-3) in the same column block, not columns 2-3 (the NVILA order)
    assert out[0, 1].tolist() == [3, 1, 3, 2, 4, 1, 4, 2]
    # token 14 is the next column block
    assert out[0, 14].tolist() == [1, 3, 1, 4, 2, 3, 2, 4]
    # the last row block holds a zero-padded lower half: row 27 does not exist
    assert out[0, 13].tolist() == [27, 1, 27, 2, 0, 0, 0, 0]
    # the last column block holds a zero-padded right half
    assert out[0, 13 * 14].tolist() == [1, 27, 0, 0, 2, 27, 0, 0]


def test_every_patch_used_exactly_once():
    features = torch.arange(1, 27 * 27 + 1).float().reshape(1, 729, 1)
    values = downsample_2x2(features).flatten()
    assert sorted(v for v in values.tolist() if v) == list(range(1, 730))


def test_even_grid_needs_no_padding():
    out = downsample_2x2(encoded_grid(4))
    assert out.shape == (1, 4, 8) and (out != 0).all()


def test_mlp_downsample_keys_and_shapes():
    projector = MultimodalProjector("mlp_downsample", 8, 16)
    assert sorted(projector.state_dict()) == [
        "layers.1.bias", "layers.1.weight", "layers.2.bias", "layers.2.weight", "layers.4.bias", "layers.4.weight",
    ]  # fmt: skip
    assert isinstance(projector.layers[3], torch.nn.GELU) and projector.layers[3].approximate == "none"
    assert projector(torch.randn(2, 729, 8)).shape == (2, 196, 16)
    assert projector.tokens_per_image(729) == 196


@pytest.mark.parametrize("kind, n_linear", [("linear", 1), ("mlp2x_gelu", 2), ("mlp3x_gelu", 3)])
def test_simple_projectors(kind, n_linear):
    projector = MultimodalProjector(kind, 8, 16)
    assert sum(isinstance(m, torch.nn.Linear) for m in projector.modules()) == n_linear
    assert projector(torch.randn(1, 10, 8)).shape == (1, 10, 16)
    assert projector.tokens_per_image(729) == 729


def test_unknown_projector_type():
    with pytest.raises(VilaM3Error, match="Unknown mm_projector_type"):
        MultimodalProjector("qformer", 8, 16)
