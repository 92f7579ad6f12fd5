"""LinearProbeClassifier: only the head learns, BN statistics never move,
and the backbone checkpoint is loaded strictly."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

import bcssl_mm  # noqa: F401
from bcssl_mm.models.utils import CheckpointMismatchError
from conftest import randomize_bn

ROOT = Path(__file__).resolve().parents[3]
DEMO = (
    ROOT / 'configs' / 'dino' / 'benchmarks' /
    'bcssl-atto-k9-random_linear-1xb64-coslr-30e_shapes.py')
TINY_ARCH = dict(depths=[1, 1, 1, 1], channels=[8, 16, 16, 16])


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def tiny_cfg() -> Config:
    """The demo config with a one-block-per-stage, 8-16 channel backbone."""
    cfg = Config.fromfile(str(DEMO))
    cfg.model.backbone.arch = TINY_ARCH
    cfg.model.head.in_channels = 16
    return cfg


def build(cfg: Config):
    model = MODELS.build(cfg.model)
    model.init_weights()
    randomize_bn(model.backbone)
    return model


def batch(n: int = 6, size: int = 32) -> dict:
    g = torch.Generator().manual_seed(0)
    return dict(
        inputs=[
            torch.randint(
                0, 256, (3, size, size), generator=g, dtype=torch.uint8)
            for _ in range(n)
        ],
        data_samples=[DataSample().set_gt_label(i % 3) for i in range(n)])


def test_a_training_step_changes_the_head_only():
    cfg = tiny_cfg()
    model = build(cfg)
    # the config's optimizer (SGD, momentum 0.9) through mmengine's wrapper
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    assert model.training and model.head.training
    assert not any(m.training for m in model.backbone.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(2):
        losses = model.train_step(batch(), optim_wrapper)
    assert losses['loss'] > 0
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {'head.fc.weight', 'head.fc.bias'}
    # BN statistics included: running_mean / var, num_batches_tracked
    bn_keys = [
        k for k in before
        if 'dw_norm.running' in k or k.endswith('num_batches_tracked')
    ]
    assert len(bn_keys) == 3 * 4
    assert all(torch.equal(before[k], after[k]) for k in bn_keys)


def test_every_backbone_parameter_is_frozen_output_norm_included():
    model = build(tiny_cfg())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'head.fc.weight', 'head.fc.bias'}
    assert not model.backbone.norm3.weight.requires_grad
    # the trap this avoids: ConvNeXt's frozen_stages leaves the norm trainable
    backbone = MODELS.build(
        dict(type='BCSSLConvNeXt', arch=TINY_ARCH, frozen_stages=4))
    assert backbone.norm3.weight.requires_grad
    # train(True) does not thaw BN or re-enable drop path
    model.train(True)
    assert all(not m.training for m in model.backbone.modules()
               if isinstance(m, _BatchNorm))


def test_head_is_initialised_normal_001():
    cfg = tiny_cfg()
    cfg.model.head.in_channels = 16
    cfg.model.head.num_classes = 4000  # 64k weights: a stable std estimate
    model = build(cfg)
    weight = model.head.fc.weight
    assert abs(weight.std().item() - 0.01) < 5e-4
    assert torch.equal(model.head.fc.bias, torch.zeros(4000))


def _save_backbone(model, path, drop=(), extra=()):
    state = {
        f'backbone.{k}': v
        for k, v in model.backbone.state_dict().items() if k not in drop
    }
    state.update({f'backbone.{k}': torch.zeros(1) for k in extra})
    torch.save(dict(meta=dict(epoch=3), state_dict=state), path)


def test_checkpoint_is_loaded_strictly(tmp_path):
    cfg = tiny_cfg()
    source = build(cfg)
    good = tmp_path / 'good.pth'
    _save_backbone(source, good)
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=str(good), prefix='backbone.')
    model = MODELS.build(cfg.model)
    model.init_weights()
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k

    # the output norm may not be missing (BCSSLConvNeXt alone allows it)
    bad = tmp_path / 'bad.pth'
    _save_backbone(
        source, bad, drop=('norm3.weight', ), extra=('head.fc.weight', ))
    cfg.model.backbone.init_cfg.checkpoint = str(bad)
    with pytest.raises(CheckpointMismatchError) as err:
        MODELS.build(cfg.model).init_weights()
    assert 'norm3.weight' in str(err.value)
    assert 'head.fc.weight' in str(err.value)


def test_upstream_backbone_is_loaded_strictly_too(tmp_path):
    # mmengine's PretrainedInit would only warn for an mmpretrain ResNet
    cfg = dict(
        type='LinearProbeClassifier',
        backbone=dict(type='ResNet', depth=18, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=512))
    source = MODELS.build(cfg)
    path = tmp_path / 'resnet.pth'
    _save_backbone(source, path, drop=('conv1.weight', ))
    cfg['backbone']['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.')
    with pytest.raises(CheckpointMismatchError, match='conv1.weight'):
        MODELS.build(cfg).init_weights()
