import pytest
import timm
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier
from torch.nn.modules.batchnorm import _BatchNorm

import bcssl_mm.models.timm_models  # noqa: F401  (registers the models)
from bcssl_mm.models.timm_models import BCSSLConvNeXtTimm

from conftest import randomize_bn

NAMES = [
    'bcssl_convnext_atto', 'bcssl_convnext_tiny', 'bcssl_convnext_small',
    'bcssl_convnext_base'
]


def mm_classifier(num_classes: int = 10) -> ImageClassifier:
    """mmpretrain classifier with the same backbone as bcssl_convnext_atto."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassifier(
            backbone=dict(type='BCSSLConvNeXt', arch='atto', kernel_size=9),
            head=dict(
                type='LinearClsHead', num_classes=num_classes,
                in_channels=320))


def test_registered():
    assert set(NAMES) <= set(timm.list_models('bcssl_convnext*'))
    assert timm.list_models('bcssl*', pretrained=True) == []


@pytest.mark.parametrize('kernel_size', [3, 9])
def test_create_model_shapes(kernel_size):
    model = timm.create_model(
        'bcssl_convnext_atto', kernel_size=kernel_size, num_classes=10)
    assert isinstance(model, BCSSLConvNeXtTimm)
    conv = model.backbone.stages[0][0].depthwise_conv
    assert conv.kernel_size == (kernel_size, kernel_size)
    assert isinstance(model.backbone.stages[0][0].dw_norm, nn.BatchNorm2d)
    x = torch.randn(2, 3, 64, 64)
    assert model(x).shape == (2, 10)
    assert model.forward_features(x).shape == (2, 320, 2, 2)
    assert model.num_classes == 10 and model.num_features == 320
    assert model.get_classifier().out_features == 10
    cfg = model.pretrained_cfg
    assert model.default_cfg is cfg
    assert cfg['input_size'] == (3, 224, 224)
    assert cfg['interpolation'] == 'bicubic' and cfg['crop_pct'] == 0.875
    # the names in the cfg are real parameters (timm adapts them by name)
    params = dict(model.named_parameters())
    assert f"{cfg['first_conv']}.weight" in params
    assert f"{cfg['classifier']}.weight" in params


def test_create_model_kwargs():
    model = timm.create_model(
        'bcssl_convnext_atto',
        in_chans=1,
        num_classes=0,
        dw_norm_cfg=False,  # create_model drops None-valued kwargs
        drop_path_rate=0.1,
        layer_scale_init_value=0.,
        pretrained_cfg_overlay=dict(crop_pct=1.0))
    assert model.backbone.downsample_layers[0][0].in_channels == 1
    assert model.pretrained_cfg['crop_pct'] == 1.0
    block = model.backbone.stages[-1][-1]
    assert isinstance(block.dw_norm, nn.Identity) and block.gamma is None
    assert block.drop_path.drop_prob == pytest.approx(0.1)
    assert model.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 320)


def test_same_outputs_as_mmpretrain_classifier(tmp_path):
    torch.manual_seed(0)
    mm_model = mm_classifier()
    randomize_bn(mm_model)
    mm_model.eval()
    model = timm.create_model('bcssl_convnext_atto', num_classes=10).eval()
    state_dict = mm_model.state_dict()
    assert state_dict.keys() == model.state_dict().keys()
    model.load_state_dict(state_dict)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = mm_model(x, mode='tensor')
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)
        # forward is forward_head(forward_features) is head(backbone(x)[0])
        feats = model.backbone(x)[0]
        torch.testing.assert_close(
            model.forward_head(model.forward_features(x), pre_logits=True),
            feats,
            rtol=0,
            atol=0)
        torch.testing.assert_close(
            model.head(feats), expected, rtol=0, atol=1e-6)

        # the same weights through timm's checkpoint_path
        path = tmp_path / 'bcssl_atto.pth'
        torch.save(dict(state_dict=state_dict), path)
        loaded = timm.create_model(
            'bcssl_convnext_atto', num_classes=10,
            checkpoint_path=str(path)).eval()
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=1e-6)


def test_reset_classifier():
    model = timm.create_model('bcssl_convnext_atto', num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), nn.Identity)
    assert model.num_classes == 0 and model.num_features == 320
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 320)
        torch.testing.assert_close(out, model.backbone(x)[0], rtol=0, atol=0)
    model.reset_classifier(5, global_pool='avg')
    assert model(x).shape == (2, 5) and model.num_classes == 5
    with pytest.raises(ValueError, match='global_pool'):
        model.reset_classifier(5, global_pool='max')


@pytest.mark.parametrize('name', NAMES)
def test_pretrained_raises(name):
    with pytest.raises(ValueError, match='no pretrained weights.*load_state'):
        timm.create_model(name, pretrained=True)


def test_switch_to_deploy():
    torch.manual_seed(0)
    model = timm.create_model('bcssl_convnext_atto', num_classes=10)
    randomize_bn(model)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        out = model(x)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)


def test_grad_checkpointing():
    model = BCSSLConvNeXtTimm(
        dict(depths=[1, 1], channels=[8, 16]), num_classes=3)
    model.set_grad_checkpointing()
    assert all(block.with_cp for stage in model.backbone.stages
               for block in stage)
    out = model(torch.randn(2, 3, 16, 16, requires_grad=True))
    out.sum().backward()
    assert model.backbone.stages[0][0].depthwise_conv.weight.grad is not None
