"""The linear-probe configs build, freeze all but the head, follow the
protocol (docs/recipes.md §3, §7), and the shapes demo runs end to end."""
import json
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS

import bcssl_mm  # noqa: F401
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / 'configs' / 'dino' / 'benchmarks'
CONFIGS = sorted(BENCHMARKS.glob('*_linear-*.py'))
IN1K = [p for p in CONFIGS if p.name.endswith('_in1k.py')]
K9 = BENCHMARKS / 'bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'
DEMO = BENCHMARKS / 'bcssl-atto-k9_linear-1xb64-coslr-30e_shapes.py'
RANDOM_DEMO = (
    BENCHMARKS / 'bcssl-atto-k9-random_linear-1xb64-coslr-30e_shapes.py')
# backbone, in features of the head
EXPECTED = {
    **{f'bcssl-t-k{k}': ('BCSSLConvNeXt', 768)
       for k in (3, 5, 7, 9, 15)},
    **{f'convnext-t-k{k}': ('BCSSLConvNeXt', 768)
       for k in (3, 5, 7, 9, 15)},
    'bcssl-s-k9': ('BCSSLConvNeXt', 768),
    'resnet50': ('ResNet', 2048),
    'vit-s-p16': ('VisionTransformer', 384),
    'swin-t': ('SwinTransformer', 768),
}


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def test_every_table_backbone_has_a_config():
    names = {p.name.split('_linear-')[0] for p in IN1K}
    assert names == set(EXPECTED)
    assert {DEMO, RANDOM_DEMO} <= set(CONFIGS)


@pytest.mark.parametrize('path', IN1K, ids=lambda p: p.name)
def test_imagenet_config_builds_frozen_with_pooled_features(path):
    cfg = Config.fromfile(str(path))
    backbone_type, dim = EXPECTED[path.name.split('_linear-')[0]]
    # the checkpoint is the pretraining run's teacher; not loaded here
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained' and init_cfg.prefix == 'backbone.'
    stem = Path(init_cfg.checkpoint).stem
    assert stem.startswith('dino_' + path.name.split('_linear-')[0] + '_')
    assert (ROOT / 'configs' / 'dino' / f'{stem}.py').is_file()
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == backbone_type
    assert [n for n, p in model.named_parameters()
            if p.requires_grad] == ['head.fc.weight', 'head.fc.bias']
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 64, 64))
    assert feats[-1].shape == (1, dim)
    assert model.head.fc.in_features == dim
    for t in cfg.train_dataloader.dataset.pipeline:
        TRANSFORMS.build(t)


def test_k9_is_the_protocol():
    cfg = Config.fromfile(str(K9))
    assert cfg.model.backbone.gap_before_final_norm
    assert cfg.model.head.init_cfg == dict(
        type='Normal', layer='Linear', std=0.01, bias=0.)
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=0.001 * 1024 / 256, momentum=0.9, weight_decay=0.)
    # lr x real batch / 1024 with --auto-scale-lr: 0.001 x batch / 256
    assert cfg.auto_scale_lr.base_batch_size == 8 * \
        cfg.train_dataloader.batch_size == 1024
    [sched] = cfg.param_scheduler
    assert (sched.type, sched.eta_min, sched.by_epoch) == \
        ('CosineAnnealingLR', 0., True)
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (100, 1)
    train, val = (cfg.train_dataloader.dataset.pipeline,
                  cfg.val_dataloader.dataset.pipeline)
    assert [t.type for t in train[1:3]] == ['RandomResizedCrop', 'RandomFlip']
    assert train[1].scale == 224
    assert (val[1].type, val[1].scale, val[1].interpolation) == \
        ('ResizeEdge', 256, 'bicubic')
    assert (val[2].type, val[2].crop_size) == ('CenterCrop', 224)
    assert cfg.val_evaluator.topk == (1, 5)
    assert {'type': 'LinearProbeResultHook'} in cfg.custom_hooks


@pytest.mark.parametrize('k', [3, 5, 7, 15])
def test_kernel_configs_change_kernel_and_checkpoint_only(k):

    def strip(path):
        cfg = Config.fromfile(str(path)).to_dict()
        backbone = cfg['model']['backbone']
        del cfg['pretrained'], backbone['init_cfg']['checkpoint']
        return cfg, backbone.pop('kernel_size'), backbone.pop('dw_norm_cfg')

    expected, kernel, dw_norm = strip(K9)
    assert (kernel, dw_norm) == (9, dict(type='BN'))
    for prefix, dw_norm in (('bcssl', dict(type='BN')), ('convnext', None)):
        name = f'{prefix}-t-k{k}_linear-8xb128-coslr-100e_in1k.py'
        assert strip(BENCHMARKS / name) == (expected, k, dw_norm)


def test_demos_differ_only_in_the_backbone_weights():
    demo, random_init = (Config.fromfile(str(p)) for p in (DEMO, RANDOM_DEMO))
    assert demo.model.backbone.init_cfg.checkpoint == (
        'work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes/teacher.pth')
    assert 'init_cfg' not in random_init.model.backbone
    assert random_init.custom_hooks == [
        dict(
            type='LinearProbeResultHook',
            pretrain_name='random_bcssl-atto-k9_init_shapes')
    ]
    for text in (DEMO.read_text(), RANDOM_DEMO.read_text()):
        assert '_delete_' not in text
    d, r = demo.to_dict(), random_init.to_dict()
    for c in (d, r):
        c['model']['backbone'].pop('init_cfg', None)
        c.pop('pretrained', None)
        del c['custom_hooks']
    assert d == r


def test_demo_trains_one_epoch_and_writes_the_result(shapes_cls_root,
                                                     tmp_path):
    # a "teacher" checkpoint as extract_backbone.py writes it
    cfg = Config.fromfile(str(DEMO))
    cfg.model.backbone.pop('init_cfg')
    backbone = MODELS.build(cfg.model).backbone
    teacher = tmp_path / 'teacher.pth'
    torch.save(
        dict(
            meta=dict(
                experiment_name='dino_bcssl-atto-k9_1xb32-coslr-10e_shapes_'
                '20261124_063000',
                epoch=10),
            state_dict={
                f'backbone.{k}': v
                for k, v in backbone.state_dict().items()
            }), teacher)
    data_root = osp.join(shapes_cls_root, 'cls')
    work_dir = tmp_path / 'work'
    train = load_tool('train.py')
    args = train.get_args_parser().parse_args([
        str(DEMO), '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
        f'model.backbone.init_cfg.checkpoint={teacher}',
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}'
    ])
    # in-process (no second start-up of torch / mmengine); the Runner's
    # default scope stays inside this test
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        train.main(args)
    result = json.loads((work_dir / 'linear.result.json').read_text())
    assert result['kind'] == 'linear'
    assert set(result['metrics']) == {'top1', 'best_top1'}
    # 6 val images: the accuracy is a multiple of 100 / 6
    hits = result['metrics']['top1'] * 6 / 100
    assert hits == pytest.approx(round(hits))
    assert result['pretrain']['name'] == \
        'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes'
    assert result['pretrain']['checkpoint_epoch'] == 10
    assert result['source']['dataset'] == data_root
