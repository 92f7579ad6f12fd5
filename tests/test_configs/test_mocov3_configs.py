"""Every MoCo v3 pretraining config parses and builds, with official MoCo
v3's recipe values (docs/recipes.md §8)."""
from pathlib import Path

import pytest
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS

import bcssl_mm  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
MOCOV3_DIR = ROOT / 'configs' / 'mocov3'
CONFIGS = sorted(MOCOV3_DIR.glob('*.py'))
VIT = 'mocov3_vit-s-p16_16xb256-amp-coslr-300e_in1k.py'
RN50 = 'mocov3_resnet50_8xb512-amp-coslr-100e_in1k.py'
BCSSL = 'mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.py'
DEMO = 'mocov3_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def load(name) -> Config:
    return Config.fromfile(str(MOCOV3_DIR / name))


def test_all_configs_found():
    assert {p.name for p in CONFIGS} == {VIT, RN50, BCSSL, DEMO}


def views(cfg):
    """The two view pipelines, built."""
    multi = cfg.train_dataloader.dataset.pipeline[1]
    assert multi.type == 'MultiView' and multi.num_views == [1, 1]
    TRANSFORMS.build(multi)
    return [{t['type']: t for t in view} for view in multi.transforms]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_builds_with_byol_views(path):
    cfg = Config.fromfile(str(path))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'BCSSLMoCoV3'
    assert [h.type for h in cfg.custom_hooks][:1] == ['MoCoV3Hook']
    assert cfg.custom_hooks[0].momentum == 0.99
    assert cfg.optim_wrapper.constructor == 'SelfSupOptimWrapperConstructor'
    assert cfg.model.head.loss.get('loss_weight', 1.) == 1.  # 2T in head
    v1, v2 = views(cfg)
    assert v1['GaussianBlur']['prob'] == 1.
    assert v1.get('Solarize', dict(prob=0.))['prob'] == 0.
    assert v2['GaussianBlur']['prob'] == 0.1
    assert v2['Solarize']['prob'] == 0.2
    for v in (v1, v2):
        assert v['RandomApply']['prob'] == 0.8
        jitter = v['RandomApply']['transforms'][0]
        assert (jitter['brightness'], jitter['contrast'], jitter['saturation'],
                jitter['hue']) == (0.4, 0.4, 0.2, 0.1)
        assert v['RandomGrayscale']['prob'] == 0.2
        assert v['RandomFlip']['prob'] == 0.5
    crop = v1['RandomResizedCrop']['crop_ratio_range']
    assert tuple(crop) == ((0.2, 1.) if path.name in (RN50, DEMO) else
                           (0.08, 1.))
    bns = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    assert bns and all(
        isinstance(m, nn.SyncBatchNorm) == ('in1k' in path.name) for m in bns)


@pytest.mark.parametrize('name,gpus,per_gpu,lr_per_256,epochs,warmup,T', [
    (VIT, 16, 256, 1.5e-4, 300, 40, 0.2),
    (BCSSL, 16, 256, 1.5e-4, 300, 40, 0.2),
    (RN50, 8, 512, 0.6, 100, 10, 1.0),
])
def test_recipe_values(name, gpus, per_gpu, lr_per_256, epochs, warmup, T):
    cfg = load(name)
    batch = gpus * per_gpu
    assert batch == 4096 == cfg.auto_scale_lr.base_batch_size
    assert cfg.train_dataloader.batch_size == per_gpu
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    opt = cfg.optim_wrapper.optimizer
    assert opt.lr == pytest.approx(lr_per_256 * batch / 256)
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[0].end == warmup
    assert cfg.model.head.temperature == T
    if name == RN50:
        assert (opt.type, opt.weight_decay, opt.momentum) == ('MoCoV3LARS',
                                                              1e-6, 0.9)
        assert cfg.optim_wrapper.paramwise_cfg.flat_cfg == dict(
            decay_mult=0., lars_exclude=True)
        assert cfg.model.neck.num_layers == 2
        assert not cfg.model.head.predictor.with_last_bn
    else:
        assert (opt.type, opt.weight_decay) == ('AdamW', 0.1)
        assert cfg.model.neck.num_layers == 3
        assert cfg.model.head.predictor.with_last_bn
    assert (cfg.model.neck.hid_channels, cfg.model.neck.out_channels) == (4096,
                                                                          256)


def test_vit_is_mocov3_vit_small_with_frozen_patch_projection():
    cfg = load(VIT)
    model = MODELS.build(cfg.model)
    model.init_weights()
    vit = model.backbone
    assert (vit.embed_dims, vit.num_layers) == (384, 12)
    assert vit.layers[0].attn.num_heads == 12
    assert not vit.patch_embed.projection.weight.requires_grad
    assert not vit.pos_embed.requires_grad
    # MoCoV3ViT freezes the position embedding in init_weights, after
    # mmengine's DDP wrapper registered it as trainable
    assert cfg.find_unused_parameters


@pytest.mark.parametrize('name', [
    'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py',
    'mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py'
])
def test_bcssl_maskrcnn_differs_from_dino_only_in_the_checkpoint(name):
    mocov3 = Config.fromfile(str(MOCOV3_DIR / 'benchmarks' / name)).to_dict()
    dino = Config.fromfile(
        str(ROOT / 'configs' / 'dino' / 'benchmarks' / name)).to_dict()
    ckpt = mocov3['model']['backbone']['init_cfg'].pop('checkpoint')
    dino['model']['backbone']['init_cfg'].pop('checkpoint')
    assert ckpt == mocov3.pop('pretrained') != dino.pop('pretrained')
    assert 'mocov3' in ckpt
    assert mocov3 == dino


def test_dino_swin_300e_differs_from_100e_only_in_epochs():
    dino = ROOT / 'configs' / 'dino'
    a = Config.fromfile(
        str(dino / 'dino_swin-t_8xb64-amp-coslr-300e_in1k.py')).to_dict()
    b = Config.fromfile(
        str(dino / 'dino_swin-t_8xb64-amp-coslr-100e_in1k.py')).to_dict()
    assert a.pop('train_cfg')['max_epochs'] == 300
    assert b.pop('train_cfg')['max_epochs'] == 100
    assert a == b
