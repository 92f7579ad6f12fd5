"""ViTDet's simple feature pyramid (bcssl_mm.models.necks)."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.models.utils import LayerNorm2d

from bcssl_mm.models import SimpleFeaturePyramid


def _pyramid(**kwargs) -> SimpleFeaturePyramid:
    torch.manual_seed(0)
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=16, **kwargs)
    neck.init_weights()
    return neck


def test_strides_and_shapes():
    neck = _pyramid()
    x = torch.randn(2, 32, 8, 6)  # a stride-16 map of a 128 x 96 image
    outs = neck((torch.randn(2, 32, 1, 1), x))  # only the last is used
    # strides 4, 8, 16, 32 and P6 (64) of the image
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 24), (2, 16, 16, 12),
                                              (2, 16, 8, 6), (2, 16, 4, 3),
                                              (2, 16, 2, 2)]
    # P6 subsamples P5 (FPN's and detectron2's LastLevelMaxPool)
    assert torch.equal(outs[4], outs[3][..., ::2, ::2])
    # every level ends in a LayerNorm over channels (unit weight, zero bias)
    for out in outs:
        mean = out.mean(dim=1)
        var = out.var(dim=1, unbiased=False)
        assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-4)
        assert torch.allclose(var, torch.ones_like(var), atol=1e-3)


def test_layers_per_scale():
    neck = _pyramid()
    kinds = [[type(m) for m in stage] for stage in neck.stages]
    conv_ln = [type(neck.stages[2][0])] * 2  # 1x1 conv + LN, 3x3 conv + LN
    assert kinds == [
        [nn.ConvTranspose2d, LayerNorm2d, nn.GELU, nn.ConvTranspose2d] +
        conv_ln,
        [nn.ConvTranspose2d] + conv_ln,
        conv_ln,
        [nn.MaxPool2d] + conv_ln,
    ]
    # channels C/4, C/2, C, C into the 1x1 convs
    assert [stage[-2].conv.in_channels
            for stage in neck.stages] == [8, 16, 32, 32]
    assert [stage[-1].conv.kernel_size
            for stage in neck.stages] == [(3, 3)] * 4
    for stage in neck.stages:
        assert all(isinstance(m.norm, LayerNorm2d) for m in stage[-2:])
        assert all(m.conv.bias is None for m in stage[-2:])  # before a norm


def test_every_parameter_gets_a_gradient():
    neck = _pyramid(num_outs=4)
    outs = neck((torch.randn(1, 32, 4, 4), ))
    assert len(outs) == 4
    sum(o.square().sum() for o in outs).backward()
    for name, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize('kwargs, match', [
    (dict(scale_factors=(8., 1.)), 'must be 4, 2, 1 or 0.5, got 8.0'),
    (dict(num_outs=3), r'num_outs \(3\) must be at least'),
])
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleFeaturePyramid(in_channels=32, **kwargs)
