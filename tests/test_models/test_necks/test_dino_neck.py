import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import weight_norm

from bcssl_mm.models.necks import DINONeck, WeightNormLinear


def test_weight_norm_linear_equals_torch_weight_norm():
    """The same values and gradients as official DINO's
    ``weight_norm(nn.Linear(..., bias=False))``, and ``g * v / ||v||``."""
    torch.manual_seed(0)
    ours = WeightNormLinear(8, 5, norm_fixed=False)
    with torch.no_grad():
        ours.weight_g.mul_(torch.rand(5, 1) + 0.5)
    theirs = weight_norm(nn.Linear(8, 5, bias=False))
    with torch.no_grad():
        theirs.parametrizations.weight.original0.copy_(ours.weight_g)
        theirs.parametrizations.weight.original1.copy_(ours.weight_v)
    x = torch.randn(3, 8)
    ours(x).square().sum().backward()
    theirs(x).square().sum().backward()
    assert torch.equal(ours(x), theirs(x))
    assert torch.equal(ours.weight_g.grad,
                       theirs.parametrizations.weight.original0.grad)
    assert torch.equal(ours.weight_v.grad,
                       theirs.parametrizations.weight.original1.grad)
    v, g = ours.weight_v, ours.weight_g
    torch.testing.assert_close(ours.weight,
                               g * v / v.norm(dim=1, keepdim=True))


def test_norm_fixed_keeps_unit_rows_without_gradient():
    neck = DINONeck(
        in_channels=6,
        out_channels=10,
        hidden_channels=8,
        bottleneck_channels=4,
        norm_last_layer=True)
    last = neck.last_layer
    assert not last.weight_g.requires_grad
    out = neck((torch.randn(3, 6), ))[0]
    assert out.shape == (3, 10)
    out.sum().backward()
    assert last.weight_g.grad is None and last.weight_v.grad is not None
    torch.testing.assert_close(last.weight.norm(dim=1), torch.ones(10))
