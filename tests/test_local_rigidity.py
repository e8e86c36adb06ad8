"""local rigidity loss: with penalty="norm" and the previous frame detached it is
Dynamic 3D Gaussians' term, to float rounding, in value and gradients."""
import pytest
import torch

from drop_in import check


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_drop_in_for_dynamic_3d_gaussians(dtype):
    check(0, dtype)
