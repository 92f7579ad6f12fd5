import io

import pytest
import timm
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier
from torch.nn.modules.batchnorm import _BatchNorm

import bcssl_mm.models.timm_models  # noqa: F401  (registers the models)
from bcssl_mm.models.timm_models import (BCSSLConvNeXtTimm,
                                         BCSSLFeatureGetterNet,
                                         GlobalPoolError)
from conftest import randomize_bn

NAMES = [
    'bcssl_convnext_atto', 'bcssl_convnext_tiny', 'bcssl_convnext_small',
    'bcssl_convnext_base'
]
ATTO = [40, 80, 160, 320]


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


@pytest.mark.parametrize('name', NAMES)
def test_pretrained_cfg_agrees_with_model(name):
    model = timm.create_model(name, device='meta').eval()
    cfg = model.pretrained_cfg
    c, h, w = cfg['input_size']
    assert c == model.in_chans and cfg['num_classes'] == model.num_classes
    feats = model.forward_features(torch.empty(1, c, h, w, device='meta'))
    assert feats.shape[1:] == (model.num_features, *cfg['pool_size'])
    assert model(torch.empty(1, c, h, w, device='meta')).shape == (1, 1000)
    params = dict(model.named_parameters())
    assert params[cfg['first_conv'] + '.weight'].shape[1] == c
    assert params[cfg['classifier'] + '.weight'].shape == (1000,
                                                           model.num_features)


def test_pretrained_cfg_preprocessing_is_the_training_one():
    # the normalisation the models are pretrained with
    dino = Config.fromfile(
        'configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py')
    preprocessor = dino.model.data_preprocessor
    assert preprocessor.to_rgb
    for name in NAMES:
        cfg = timm.get_pretrained_cfg(name).to_dict()
        for key in ('mean', 'std'):
            assert cfg[key] == pytest.approx(
                [v / 255 for v in preprocessor[key]], abs=1e-4)
        # evaluation: resize 256, centre crop 224 (docs/recipes.md §3)
        assert cfg['crop_pct'] == 224 / 256 and cfg['crop_mode'] == 'center'
        assert cfg['interpolation'] == 'bicubic'


def test_features_only():
    torch.manual_seed(0)
    model = timm.create_model('bcssl_convnext_atto').eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        stages = model.forward_intermediates(x, intermediates_only=True)
        features = timm.create_model(
            'bcssl_convnext_atto', features_only=True).eval()
        # pruned to the stages: no final norm, no classifier
        missing, unexpected = features.model.load_state_dict(
            model.state_dict(), strict=False)
        assert not missing
        assert {k.rsplit('.', 1)[0]
                for k in unexpected} == {'backbone.norm3', 'head.fc'}
        outs = features(x)
    assert isinstance(features, BCSSLFeatureGetterNet)
    assert features.feature_info.channels() == [40, 80, 160, 320]
    assert features.feature_info.reduction() == [4, 8, 16, 32]
    assert [o.shape for o in outs] == [(2, c, 16 // 2**i, 16 // 2**i)
                                       for i, c in enumerate(ATTO)]
    for out, stage in zip(outs, stages):
        torch.testing.assert_close(out, stage, rtol=0, atol=0)
    # stages after the last index asked for are pruned away
    pruned = timm.create_model(
        'bcssl_convnext_atto', features_only=True, out_indices=(0, 1))
    assert len(pruned.model.backbone.stages) == 2
    assert [o.shape[1] for o in pruned(x)] == [40, 80]


def test_forward_intermediates_norm_and_stop_early():
    torch.manual_seed(0)
    model = timm.create_model('bcssl_convnext_atto').eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        final, stages = model.forward_intermediates(x, indices=2, norm=True)
        torch.testing.assert_close(final, model.forward_features(x))
        assert [s.shape[1] for s in stages] == [160, 320]
        # the final norm is applied to the last stage only
        torch.testing.assert_close(stages[1], model.final_norm(final))
        early, (tap, ) = model.forward_intermediates(
            x, indices=[1], stop_early=True)
        assert early.shape == tap.shape == (2, 80, 8, 8)
    with pytest.raises(ValueError, match='output_fmt'):
        model.forward_intermediates(x, output_fmt='NHWC')


def test_scripted_and_traced_models_match_eager():
    torch.manual_seed(0)
    model = timm.create_model('bcssl_convnext_atto', num_classes=10)
    randomize_bn(model)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    scripted = torch.jit.load(buffer)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(scripted(x), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(traced(x), expected, rtol=0, atol=0)


def test_final_norm_alias_is_not_in_the_state_dict():
    model = timm.create_model('bcssl_convnext_atto', num_classes=10)
    assert model.final_norm is model.backbone.norm3
    state_dict = model.state_dict()
    assert not [k for k in state_dict if k.startswith('final_norm.')]
    assert sum(p.numel() for p in model.parameters()) == sum(
        v.numel() for k, v in state_dict.items()
        if 'running' not in k and 'num_batches' not in k)
    state_dict['backbone.norm3.weight'] = torch.rand(320)
    model.load_state_dict(state_dict)
    assert torch.equal(model.final_norm.weight,
                       state_dict['backbone.norm3.weight'])
    # also when the model is a submodule
    wrapper = nn.Sequential(model)
    assert set(wrapper.state_dict()) == {f'0.{k}' for k in state_dict}
    wrapper.load_state_dict(wrapper.state_dict())


def test_global_pool_none_and_errors():
    torch.manual_seed(0)
    model = timm.create_model(
        'bcssl_convnext_atto', num_classes=5, global_pool='').eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)  # (2, 320, 2, 2)
        normed = model.final_norm(feats)
        torch.testing.assert_close(
            model.forward_head(feats, pre_logits=True), normed)
        # per-position logits of the linear classifier
        logits = model(x)
        assert logits.shape == (2, 5, 2, 2)
        torch.testing.assert_close(logits[..., 1, 0],
                                   model.head.fc(normed[..., 1, 0]))
        model.reset_classifier(3)  # keeps global_pool=''
        assert model(x).shape == (2, 3, 2, 2)
        model.reset_classifier(3, 'avg')
        assert model(x).shape == (2, 3)
    for bad in ('max', 'catavgmax'):
        with pytest.raises(GlobalPoolError, match=repr(bad)) as info:
            model.reset_classifier(3, bad)
        # a ValueError, and the AssertionError timm's tools expect
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, AssertionError)
        with pytest.raises(GlobalPoolError):
            timm.create_model('bcssl_convnext_atto', global_pool=bad)


def test_prune_intermediate_layers():
    model = timm.create_model('bcssl_convnext_atto', num_classes=10)
    assert model.prune_intermediate_layers([-1], prune_head=False) == [3]
    assert model.num_classes == 10 and model.num_features == 320
    assert model.prune_intermediate_layers([1]) == [1]
    assert len(model.backbone.stages) == len(
        model.backbone.downsample_layers) == 2
    assert isinstance(model.final_norm, nn.Identity)
    assert isinstance(model.backbone.norm3, nn.Identity)
    assert model.num_classes == 0 and model.num_features == 80
    model.reset_classifier(4, 'avg')
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


def test_init_weights_after_to_empty():
    model = timm.create_model(
        'bcssl_convnext_atto', device='meta', num_classes=5)
    assert {p.device.type for p in model.parameters()} == {'meta'}
    model = model.to_empty(device='cpu')
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.fill_(float('nan'))
    model.init_weights()
    fresh = timm.create_model('bcssl_convnext_atto', num_classes=5)
    for (name, t), ref in zip(model.state_dict().items(),
                              fresh.state_dict().values()):
        assert torch.isfinite(t.float()).all(), name
        if 'norm' in name or 'gamma' in name or 'running' in name:
            torch.testing.assert_close(t, ref, msg=name)  # deterministic


def test_layer_decay_groups():
    from timm.optim import param_groups_layer_decay
    model = timm.create_model('bcssl_convnext_atto', num_classes=10)
    names = {id(p): n for n, p in model.named_parameters()}
    scale = {
        names[id(p)]: g['lr_scale']
        for g in param_groups_layer_decay(model, layer_decay=0.5)
        for p in g['params']
    }
    assert set(scale) == {n for n, _ in model.named_parameters()}
    stem = scale['backbone.downsample_layers.0.0.weight']
    first = scale['backbone.stages.0.0.depthwise_conv.weight']
    last = scale['backbone.stages.3.1.depthwise_conv.weight']
    assert stem < first < last < scale['head.fc.weight'] == 1.0
