"""Every DINO config parses and builds; the recipe values are the paper's
(docs/recipes.md §2) and the ablations differ from their base only where they
should."""
from pathlib import Path

import pytest
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS

import bcssl_mm  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
DINO_DIR = ROOT / 'configs' / 'dino'
CONFIGS = sorted(DINO_DIR.glob('*.py'))
T100 = DINO_DIR / 'dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def load(name) -> Config:
    return Config.fromfile(str(DINO_DIR / name))


def test_all_configs_found():
    names = {p.name for p in CONFIGS}
    for k in (3, 5, 7, 9, 15):
        assert f'dino_convnext-t-k{k}_8xb64-amp-coslr-100e_in1k.py' in names
        assert f'dino_bcssl-t-k{k}_8xb64-amp-coslr-100e_in1k.py' in names
    for name in ('dino_bcssl-t-k9_8xb64-amp-coslr-300e_in1k.py',
                 'dino_bcssl-s-k9_8xb64-amp-coslr-300e_in1k.py',
                 'dino_resnet50_8xb64-amp-coslr-100e_in1k.py',
                 'dino_vit-s-p16_8xb64-amp-coslr-100e_in1k.py',
                 'dino_swin-t_8xb64-amp-coslr-100e_in1k.py'):
        assert name in names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_builds(path):
    cfg = Config.fromfile(str(path))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'DINO'
    # the pipeline builds and contains the multi-crop
    pipeline = [
        TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline
    ]
    assert type(pipeline[1]).__name__ == 'DINOMultiCrop'
    # GPU configs: SyncBN in student and teacher wherever there is BN
    if 'in1k' in path.name:
        for part in (model.backbone, model.teacher['backbone']):
            bns = [
                m for m in part.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)
            ]
            assert all(isinstance(m, nn.SyncBatchNorm) for m in bns)
        assert cfg.optim_wrapper.type == 'DINOAmpOptimWrapper'
        assert cfg.train_dataloader.batch_size == 64  # x 8 GPUs
    assert {'type': 'RNGStateHook'} in cfg.custom_hooks


def test_t100_is_the_paper_recipe():
    cfg = Config.fromfile(str(T100))
    bb = cfg.model.backbone
    assert (bb.type, bb.arch, bb.kernel_size,
            bb.drop_path_rate) == ('BCSSLConvNeXt', 'tiny', 9, 0.1)
    neck = cfg.model.neck
    assert (neck.out_channels, neck.hidden_channels, neck.bottleneck_channels,
            neck.num_layers, neck.norm_last_layer) == (65536, 2048, 256, 3,
                                                       False)
    loss = cfg.model.head.loss
    assert (loss.student_temp, loss.center_momentum) == (0.1, 0.9)
    ow = cfg.optim_wrapper
    assert ow.optimizer.type == 'AdamW'
    assert ow.optimizer.lr == pytest.approx(0.0005 * 512 / 256)
    assert ow.optimizer.weight_decay == 0.04
    assert dict(ow.clip_grad) == dict(type='per_tensor', max_norm=3.0)
    assert ow.constructor == 'DINOOptimWrapperConstructor'
    assert (ow.paramwise_cfg.bias_decay_mult, ow.paramwise_cfg.flat_decay_mult,
            ow.paramwise_cfg.norm_decay_mult) == (0., 0., 0.)
    warmup, cosine, wd = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 10)
    # cosine lr and weight decay run to the end of training
    assert (cosine.type, cosine.begin, cosine.eta_min) == ('CosineAnnealingLR',
                                                           10, 1e-6)
    assert (wd.type, wd.eta_min) == ('CosineAnnealingWeightDecay', 0.4)
    assert 'end' not in cosine and 'end' not in wd
    assert cfg.train_cfg.max_epochs == 100
    hook = [h for h in cfg.custom_hooks if h.type == 'DINOHook'][0]
    assert (hook.momentum, hook.warmup_teacher_temp, hook.teacher_temp,
            hook.warmup_teacher_temp_epochs,
            hook.freeze_last_layer_epochs) == (0.996, 0.04, 0.07, 30, 1)
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert (crop.global_crop_size, crop.local_crop_size, crop.num_local_crops,
            tuple(crop.global_crops_scale),
            tuple(crop.local_crops_scale)) == (224, 96, 8, (0.4, 1.), (0.05,
                                                                       0.4))
    assert cfg.train_dataloader.dataset.data_root == 'data/imagenet/'


def _model_without(cfg: Config, *keys) -> dict:
    bb = cfg.model.backbone.to_dict()
    for k in keys:
        bb.pop(k, None)
    return bb


@pytest.mark.parametrize('k', [3, 5, 7, 15])
def test_bn_ablations_change_only_the_kernel(k):
    cfg = load(f'dino_bcssl-t-k{k}_8xb64-amp-coslr-100e_in1k.py')
    base = Config.fromfile(str(T100))
    assert cfg.model.backbone.kernel_size == k
    assert _model_without(cfg, 'kernel_size') == _model_without(
        base, 'kernel_size')
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.param_scheduler == base.param_scheduler


@pytest.mark.parametrize('k', [3, 5, 7, 9, 15])
def test_no_bn_ablations(k):
    cfg = load(f'dino_convnext-t-k{k}_8xb64-amp-coslr-100e_in1k.py')
    base = Config.fromfile(str(T100))
    assert cfg.model.backbone.kernel_size == k
    assert cfg.model.backbone.dw_norm_cfg is None
    assert _model_without(cfg, 'kernel_size', 'dw_norm_cfg') == \
        _model_without(base, 'kernel_size', 'dw_norm_cfg')


def test_300e_and_small():
    t300 = load('dino_bcssl-t-k9_8xb64-amp-coslr-300e_in1k.py')
    assert t300.train_cfg.max_epochs == 300
    assert t300.param_scheduler == Config.fromfile(str(T100)).param_scheduler
    s300 = load('dino_bcssl-s-k9_8xb64-amp-coslr-300e_in1k.py')
    assert s300.model.backbone.arch == 'small'
    assert s300.param_scheduler == t300.param_scheduler


def test_resnet50_is_dinos_rn50_recipe():
    cfg = load('dino_resnet50_8xb64-amp-coslr-100e_in1k.py')
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('SGD', 0.03 * 2, 1e-4)
    assert all(s.type != 'CosineAnnealingWeightDecay'
               for s in cfg.param_scheduler)
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert tuple(crop.global_crops_scale) == (0.14, 1.)
    assert tuple(crop.local_crops_scale) == (0.05, 0.14)
    # main_dino.py's defaults, which the README command leaves alone:
    # teacher temperature 0.04 without warm-up, norm_last_layer=True, and
    # torchvision's resnet50() (no zero-initialised residual BN)
    hook = [h for h in cfg.custom_hooks if h.type == 'DINOHook'][0]
    assert (hook.warmup_teacher_temp, hook.teacher_temp,
            hook.warmup_teacher_temp_epochs) == (0.04, 0.04, 0)
    assert cfg.model.neck.norm_last_layer is True
    assert cfg.model.backbone.zero_init_residual is False
