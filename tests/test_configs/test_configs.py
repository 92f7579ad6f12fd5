import copy
from pathlib import Path

import pytest
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / 'configs' / 'dino' / 'benchmarks'
# the ConvNeXt-family configs (the Swin-T one is in test_det_transfer_configs)
CONFIGS = sorted(
    p for p in BENCHMARKS.glob('mask-rcnn_*.py')
    if p.name.startswith(('mask-rcnn_bcssl-', 'mask-rcnn_convnext-')))
T_CONFIG = BENCHMARKS / 'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py'


@pytest.fixture(scope='module', autouse=True)
def mmdet_scope():
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def test_configs_found():
    assert len(CONFIGS) >= 8


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_builds(path):
    cfg = Config.fromfile(str(path))
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    assert model.backbone.kernel_size == cfg.model.backbone.kernel_size
    # the whole pipeline builds too (datasets are lazily loaded)
    assert cfg.train_dataloader.dataset.pipeline
    assert cfg.optim_wrapper.constructor == \
        'LearningRateDecayOptimizerConstructor'


def test_t_config_is_the_convnext_recipe():
    cfg = Config.fromfile(str(T_CONFIG))
    bb = cfg.model.backbone
    assert (bb.arch, bb.kernel_size, bb.drop_path_rate,
            bb.layer_scale_init_value) == ('tiny', 9, 0.4, 1.0)
    assert tuple(bb.out_indices) == (0, 1, 2, 3)
    assert bb.dw_norm_cfg.type == 'SyncBN'
    assert bb.init_cfg.type == 'Pretrained'
    assert bb.init_cfg.prefix == 'backbone.'
    assert cfg.model.neck.in_channels == [96, 192, 384, 768]
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper'
    assert (ow.optimizer.type, ow.optimizer.lr, ow.optimizer.weight_decay,
            tuple(ow.optimizer.betas)) == ('AdamW', 1e-4, 0.05, (0.9, 0.999))
    assert dict(ow.paramwise_cfg) == dict(
        decay_rate=0.95, decay_type='layer_wise', num_layers=6)
    assert cfg.train_cfg.max_epochs == 36
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR',
                                                              0.001, 1000)
    assert steps.milestones == [27, 33] and steps.gamma == 0.1
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    assert {'type': 'RNGStateHook'} in cfg.custom_hooks


def _without(cfg: Config, *keys) -> dict:
    d = copy.deepcopy(cfg.to_dict())
    for key in keys:
        *parents, leaf = key.split('.')
        node = d
        for p in parents:
            node = node[p]
        node.pop(leaf)
    d.pop('filename', None)
    return d


@pytest.mark.parametrize('k', [3, 5, 7])
def test_kernel_ablations_change_only_the_kernel(k):
    t = Config.fromfile(str(T_CONFIG))
    ablation = Config.fromfile(
        str(BENCHMARKS / f'mask-rcnn_bcssl-t-k{k}_fpn_amp-ms-crop-3x_coco.py'))
    assert ablation.model.backbone.kernel_size == k
    assert _without(ablation, 'model.backbone.kernel_size') == _without(
        t, 'model.backbone.kernel_size')


def test_supervised_baseline_is_plain_convnext_k7():
    cfg = Config.fromfile(
        str(BENCHMARKS /
            'mask-rcnn_convnext-t-k7-in1k-pre_fpn_amp-ms-crop-3x_coco.py'))
    assert cfg.model.backbone.kernel_size == 7
    assert cfg.model.backbone.dw_norm_cfg is None
    assert cfg.model.backbone.init_cfg.checkpoint.startswith('https://')


def test_s_config():
    cfg = Config.fromfile(
        str(BENCHMARKS / 'mask-rcnn_bcssl-s-k9_fpn_amp-ms-crop-3x_coco.py'))
    assert cfg.model.backbone.arch == 'small'
    assert cfg.model.backbone.drop_path_rate == 0.6
    assert cfg.optim_wrapper.optimizer.lr == 2e-4
    assert cfg.optim_wrapper.paramwise_cfg.num_layers == 12
    assert cfg.optim_wrapper.paramwise_cfg.decay_rate == 0.7
