"""The MAE-Lite evaluation and transfer configs: the fine-tuning recipe of
official MAE-Lite (docs/recipes.md §10), the linear probe and Mask R-CNN,
each loading an MAE-Tiny pretraining checkpoint strictly, one CPU training
step for the two classifiers."""
import copy
import math
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS, DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample
from test_det_transfer_configs import _param_groups

import bcssl_mm  # noqa: F401
from bcssl_mm.evaluation.results import parse_pretrain_name
from bcssl_mm.models.utils import CheckpointMismatchError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
BENCHMARKS = CONFIGS / 'maelite' / 'benchmarks'
FT = BENCHMARKS / 'vit-tiny-p16_ft-8xb128-amp-coslr-300e_in1k.py'
LINEAR = BENCHMARKS / 'vit-tiny-p16_linear-8xb128-coslr-90e_in1k.py'
MASK_RCNN = (
    BENCHMARKS / 'mask-rcnn_vit-tiny-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py')
MOCOV3 = CONFIGS / 'mocov3' / 'benchmarks'
PRETRAIN = 'maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k'
# MAE-Lite's ViT-Tiny: 12 heads (DeiT-Tiny has 3)
TINY = dict(
    embed_dims=192, num_layers=12, num_heads=12, feedforward_channels=768)


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@pytest.fixture(scope='module')
def mae_checkpoint(tmp_path_factory):
    """An mmpretrain MAE-Tiny pretraining state dict (encoder
    ``backbone.*``, decoder ``neck.*``) with random values, saved."""
    torch.manual_seed(0)
    mae = MODELS.build(
        dict(
            type='MAE',
            backbone=dict(
                type='MAEViT', arch=TINY, patch_size=16, mask_ratio=0.75),
            neck=dict(
                type='MAEPretrainDecoder',
                patch_size=16,
                embed_dim=192,
                decoder_embed_dim=96,
                decoder_depth=1,
                decoder_num_heads=3),
            head=dict(
                type='MAEPretrainHead',
                norm_pix=True,
                patch_size=16,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    state = mae.state_dict()
    with torch.no_grad():
        for v in state.values():  # no default value left (LN 1 / 0, ...)
            v.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp('maelite') / f'{PRETRAIN}.pth'
    torch.save(dict(state_dict=state, meta=dict()), str(path))
    encoder = {
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    }
    assert {k.split('.')[0] for k in state} == {'backbone', 'neck'}
    assert 'ln1.weight' in encoder and 'ln2.weight' not in encoder
    return str(path), encoder


def _cls_batch(num_classes: int, size: int = 64) -> dict:
    inputs = [
        torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
        for _ in range(2)
    ]
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(2)]
    return dict(inputs=inputs, data_samples=samples)


def _fp32(cfg: Config) -> Config:
    """``cfg`` with a plain OptimWrapper (AMP needs a GPU)."""
    cfg = copy.deepcopy(cfg)
    cfg.optim_wrapper.type = 'OptimWrapper'
    cfg.optim_wrapper.pop('loss_scale', None)
    return cfg


def _with_classes(cfg: Config, num_classes: int) -> Config:
    cfg = copy.deepcopy(cfg)
    cfg.model.head.num_classes = num_classes
    cfg.model.data_preprocessor.num_classes = num_classes
    return cfg


def test_configs_are_named_after_the_pretraining():
    for path in (FT, LINEAR, MASK_RCNN):
        cfg = Config.fromfile(str(path))
        assert Path(cfg.pretrained).stem == PRETRAIN
        init = cfg.model.backbone.init_cfg
        assert (init.type, init.checkpoint,
                init.prefix) == ('Pretrained', cfg.pretrained, 'backbone.')
        assert dict(cfg.model.backbone.arch) == TINY
    run = parse_pretrain_name(PRETRAIN)
    assert (run['method'], run['backbone'], run['epochs'],
            run['data']) == ('maelite', 'vit-tiny-p16', 400, 'in1k')


def test_finetune_is_the_maelite_recipe():
    cfg = Config.fromfile(str(FT))
    batch = 8 * cfg.train_dataloader.batch_size
    assert batch == cfg.auto_scale_lr.base_batch_size == 1024
    ow = cfg.optim_wrapper
    assert (ow.type, ow.loss_scale) == ('AmpOptimWrapper', 'dynamic')
    assert 'clip_grad' not in ow
    assert ow.optimizer == dict(
        type='AdamW',
        lr=1e-3 * batch / 256,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05)
    assert ow.constructor == 'LearningRateDecayOptimWrapperConstructor'
    assert ow.paramwise_cfg.layer_decay_rate == 0.85
    assert cfg.train_cfg.max_epochs == 300

    bb = cfg.model.backbone
    assert (bb.type, bb.out_type, bb.final_norm,
            bb.drop_path_rate) == ('StrictVisionTransformer', 'avg_featmap',
                                   False, 0.)
    head = cfg.model.head
    assert head.loss == dict(
        type='CrossEntropyLoss', use_soft=True, loss_weight=1.0)
    assert 'label_smooth_val' not in head.loss
    # mixup 0.2 only: no cutmix
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.2)]
    assert cfg.model.data_preprocessor.num_classes == head.num_classes

    train = cfg.train_dataloader.dataset.pipeline
    assert [t.type for t in train] == [
        'LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
        'PackInputs'
    ]  # no ColorJitter (timm 0.4.12 skips it under RandAugment), no erasing
    crop, flip, randaug = train[1:4]
    assert (crop.scale, tuple(crop.crop_ratio_range),
            crop.interpolation) == (224, (0.08, 1.0), 'bicubic')
    assert flip.prob == 0.5
    # rand-m10-mstd0.5-inc1
    assert (randaug.policies, randaug.num_policies, randaug.magnitude_level,
            randaug.total_level, randaug.magnitude_std) == ('timm_increasing',
                                                            2, 10, 10, 0.5)
    val = cfg.val_dataloader.dataset.pipeline
    assert (val[1].type, val[1].scale, val[1].interpolation) == \
        ('ResizeEdge', 256, 'bicubic')
    assert val[2].crop_size == 224
    for t in list(train) + list(val):
        TRANSFORMS.build(t)

    assert {'type': 'RNGStateHook'} in cfg.custom_hooks
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    assert cfg.custom_imports.imports == ['bcssl_mm']


def _official_layer_id(name: str) -> int:
    """MAE-Lite's get_num_layer_for_vit (util/lr_decay.py) on mmpretrain
    names: 0 for the embeddings, k + 1 for block k, 13 for the rest."""
    name = name[len('backbone.'):] if name.startswith('backbone.') else name
    if name in ('cls_token', 'pos_embed') or name.startswith('patch_embed'):
        return 0
    if name.startswith('layers.'):
        return int(name.split('.')[1]) + 1
    return 13


def test_finetune_param_groups_are_official():
    cfg = _fp32(Config.fromfile(str(FT)))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    groups = _param_groups(cfg, model)
    lr = 4e-3
    assert set(groups) == {n for n, _ in model.named_parameters()}
    params = dict(model.named_parameters())
    for name, (group_lr, wd) in groups.items():
        # official: values[i] = 0.85 ** (13 - i); no decay for 1-D
        # parameters, biases and timm's no_weight_decay()
        assert group_lr == pytest.approx(
            lr * 0.85**(13 - _official_layer_id(name))), name
        no_decay = (
            params[name].ndim == 1 or name.endswith('.bias')
            or name in ('backbone.pos_embed', 'backbone.cls_token'))
        assert wd == (0. if no_decay else 0.05), name
    # the first block, the last block and the head
    assert groups['backbone.layers.0.attn.qkv.weight'] == (pytest.approx(
        lr * 0.85**12), 0.05)
    assert groups['backbone.layers.11.ffn.layers.1.weight'] == (pytest.approx(
        lr * 0.85), 0.05)
    assert groups['head.fc.weight'] == (pytest.approx(lr), 0.05)
    assert groups['backbone.ln2.weight'] == (pytest.approx(lr), 0.)
    assert groups['backbone.pos_embed'] == (pytest.approx(lr * 0.85**13), 0.)
    assert 'backbone.ln1.weight' not in groups  # no final norm


def test_finetune_schedule_is_warmcos_scale():
    """Per iteration, each group: lr x scale x t / warm-up, then
    scale x (lr q + 1e-6 (1 - q)), q the half cosine (official
    WarmCosineWithScaleLRScheduler), for the two extreme layer scales."""
    cfg = Config.fromfile(str(FT))
    lr, epoch_length = cfg.optim_wrapper.optimizer.lr, 4
    scales = (1., 0.85**13)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in scales]
    optimizer = torch.optim.SGD(
        [dict(params=[p], lr=lr * s) for p, s in zip(params, scales)])
    schedulers = [
        PARAM_SCHEDULERS.build(
            s,
            default_args=dict(optimizer=optimizer, epoch_length=epoch_length))
        for s in copy.deepcopy(cfg.param_scheduler)
    ]
    total = cfg.train_cfg.max_epochs * epoch_length
    warmup = 5 * epoch_length

    def official(count: int, scale: float) -> float:
        if count < warmup:
            return scale * lr * count / warmup
        q = 0.5 * (1 + math.cos(math.pi * (count - warmup) / (total - warmup)))
        return scale * (lr * q + 1e-6 * (1 - q))

    for it in range(total):
        for group, scale in zip(optimizer.param_groups, scales):
            ours = group['lr']
            if it < warmup:  # LinearLR: at most one iteration ahead
                assert (official(it, scale) <= ours <=
                        official(it + 1, scale) * (1 + 1e-9))
            else:
                assert ours == pytest.approx(official(it, scale), rel=1e-6)
        for s in schedulers:
            s.step()
    # the last iteration's: min_lr x the group's scale, one cosine step away
    assert optimizer.param_groups[1]['lr'] == pytest.approx(
        1e-6 * scales[1], rel=1e-2)


def test_finetune_loads_mae_encoder_strictly_and_trains(mae_checkpoint):
    path, encoder = mae_checkpoint
    cfg = _fp32(_with_classes(Config.fromfile(str(FT)), 4))
    cfg.model.backbone.init_cfg.checkpoint = path
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.backbone.state_dict()
    # every encoder tensor but the final norm, which the model has not
    assert set(state) == set(encoder) - {'ln1.weight', 'ln1.bias'} | {
        'ln2.weight', 'ln2.bias'
    }
    for k, v in state.items():
        if not k.startswith('ln2.'):
            assert torch.equal(v, encoder[k]), k
    # fc_norm new: LayerNorm's 1 / 0; the head trunc-normal 0.02, bias 0
    assert torch.equal(state['ln2.weight'], torch.ones(192))
    assert torch.equal(state['ln2.bias'], torch.zeros(192))
    assert model.head.fc.weight.std().item() == pytest.approx(0.02, rel=0.3)
    assert not model.head.fc.bias.any()
    assert model.backbone.layers[0].attn.num_heads == 12

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    watched = ['backbone.layers.0.attn.qkv.weight', 'head.fc.weight']
    before = {n: model.get_parameter(n).detach().clone() for n in watched}
    model.train()
    data = model.data_preprocessor(_cls_batch(4), True)
    # mixup: soft targets, two classes mixed with lambda + (1 - lambda)
    scores = torch.stack([s.gt_score for s in data['data_samples']])
    assert scores.sum(1).allclose(torch.ones(2))
    assert ((scores > 0).sum(1) <= 2).all()
    losses = model.train_step(_cls_batch(4), optim_wrapper)
    assert torch.isfinite(losses['loss'])
    for name, value in before.items():
        assert not torch.equal(model.get_parameter(name), value), name


def test_finetune_loading_fails_on_any_other_mismatch(mae_checkpoint,
                                                      tmp_path):
    path, _ = mae_checkpoint
    state = torch.load(path, weights_only=True)['state_dict']
    del state['backbone.layers.3.ln1.weight']
    state['backbone.mask_token'] = torch.zeros(1, 1, 192)
    bad = str(tmp_path / 'bad.pth')
    torch.save(state, bad)
    cfg = _with_classes(Config.fromfile(str(FT)), 4)
    cfg.model.backbone.init_cfg.checkpoint = bad
    model = MODELS.build(cfg.model)
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    msg = str(e.value)
    assert '1 missing keys:\n    layers.3.ln1.weight' in msg
    assert '1 unexpected keys:\n    mask_token' in msg


def test_linear_probe_is_the_mocov3_protocol_with_mae_tiny():
    ours, theirs = (
        Config.fromfile(str(p)).to_dict()
        for p in (LINEAR,
                  MOCOV3 / 'vit-s-p16_linear-8xb128-coslr-90e_in1k.py'))
    for cfg in (ours, theirs):
        cfg.pop('filename', None)
        cfg.pop('pretrained')
        del cfg['model']['backbone'], cfg['model']['head']['in_channels']
    assert ours == theirs
    cfg = Config.fromfile(str(LINEAR))
    bb = cfg.model.backbone
    assert (bb.type, bb.out_type, bb.final_norm) == ('VisionTransformer',
                                                     'cls_token', True)
    assert cfg.model.type == 'LinearProbeClassifier'
    assert cfg.model.head.in_channels == 192


def test_linear_probe_loads_mae_encoder_strictly_and_trains(mae_checkpoint):
    path, encoder = mae_checkpoint
    cfg = _with_classes(Config.fromfile(str(LINEAR)), 4)
    cfg.model.backbone.init_cfg.checkpoint = path
    model = MODELS.build(cfg.model)
    model.init_weights()  # strict: the whole encoder, final norm included
    state = model.backbone.state_dict()
    assert set(state) == set(encoder)
    for k, v in encoder.items():
        assert torch.equal(state[k], v), k
    assert model.backbone.layers[0].attn.num_heads == 12
    assert [n for n, p in model.named_parameters()
            if p.requires_grad] == ['head.fc.weight', 'head.fc.bias']

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    head = model.head.fc.weight.detach().clone()
    model.train()
    losses = model.train_step(_cls_batch(4), optim_wrapper)
    assert torch.isfinite(losses['loss'])
    assert not torch.equal(model.head.fc.weight, head)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, encoder[k]), k


def test_mask_rcnn_changes_only_the_backbone_heads_and_loads_strictly(
        mae_checkpoint):
    path, encoder = mae_checkpoint
    ours, theirs = (
        Config.fromfile(str(p)).to_dict() for p in (
            MASK_RCNN, MOCOV3 /
            'mask-rcnn_vit-tiny-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py'))
    assert theirs['model']['backbone']['arch'] == 'deit-tiny'
    for cfg in (ours, theirs):
        cfg.pop('filename', None)
        cfg.pop('pretrained')
        del cfg['model']['backbone']['arch']
        del cfg['model']['backbone']['init_cfg']['checkpoint']
    assert ours == theirs

    cfg = Config.fromfile(str(MASK_RCNN))
    cfg.model.backbone.init_cfg.checkpoint = path
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MMDET_MODELS.build(cfg.model.backbone)
    assert type(backbone).__name__ == 'StrictVisionTransformer'
    backbone.init_weights()
    state = backbone.state_dict()
    assert set(state) == set(encoder)  # final norm used before the pyramid
    for k, v in encoder.items():
        assert torch.equal(state[k], v), k
    assert backbone.layers[0].attn.num_heads == 12
    out, = backbone(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 192, 4, 4)
