"""Mask R-CNN transfer configs for ResNet-50, Swin-T and ViT backbones."""
import copy
from pathlib import Path

import mmdet
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from mmpretrain.models import MoCoV3ViT
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
SWIN = (
    CONFIGS / 'dino' / 'benchmarks' /
    'mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py')
RESNET = (
    CONFIGS / 'mocov3' / 'benchmarks' /
    'mask-rcnn_resnet50_fpn-syncbn_ms-poly-3x_coco.py')
VIT_S = (
    CONFIGS / 'mocov3' / 'benchmarks' /
    'mask-rcnn_vit-s-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py')
VIT_TINY = (
    CONFIGS / 'mocov3' / 'benchmarks' /
    'mask-rcnn_vit-tiny-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py')
ALL = [SWIN, RESNET, VIT_S, VIT_TINY]
MMDET_CONFIGS = Path(mmdet.__file__).parent / '.mim' / 'configs'


@pytest.fixture(scope='module', autouse=True)
def mmdet_scope():
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.mark.parametrize('path', ALL, ids=lambda p: p.name)
def test_config_builds(path):
    cfg = Config.fromfile(str(path))
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == cfg.model.backbone.type
    assert type(model.backbone).__name__.startswith('Strict')
    init = cfg.model.backbone.init_cfg
    assert (init.type, init.checkpoint,
            init.prefix) == ('Pretrained', cfg.pretrained, 'backbone.')
    assert {'type': 'RNGStateHook'} in cfg.custom_hooks
    assert cfg.auto_scale_lr.enable is False
    assert cfg.custom_imports.imports == ['mmpretrain.models', 'bcssl_mm']
    assert cfg.val_evaluator.metric == ['bbox', 'segm']


def _param_groups(cfg: Config, model) -> dict:
    """{parameter name: (lr, weight decay)} of the config's optimizer."""
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.type = 'OptimWrapper'  # AMP needs a GPU
    optim = build_optim_wrapper(model, optim_cfg).optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: (g['lr'], g['weight_decay'])
        for g in optim.param_groups for p in g['params']
    }


def _unscoped(value):
    """``value`` without the ``_scope_`` keys that ``mmdet::`` bases add."""
    if isinstance(value, dict):
        return {k: _unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(_unscoped(v) for v in value)
    return value


def test_swin_is_mmdet_recipe_with_mmpretrain_names():
    cfg = Config.fromfile(str(SWIN))
    mmdet_cfg = Config.fromfile(
        str(MMDET_CONFIGS / 'swin' /
            'mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'))
    ours, theirs = (
        dict(c.to_dict(), neck=c.model.neck) for c in (cfg, mmdet_cfg))
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg',
                'train_dataloader', 'neck'):
        assert _unscoped(ours[key]) == _unscoped(theirs[key]), key
    bb = cfg.model.backbone
    assert (bb.arch, bb.window_size, bb.drop_path_rate,
            tuple(bb.out_indices)) == ('tiny', 7, 0.2, (0, 1, 2, 3))
    # the DINO Swin-T pretraining backbone is the same class and arch
    dino = Config.fromfile(
        str(CONFIGS / 'dino' / 'dino_swin-t_8xb64-amp-coslr-100e_in1k.py'))
    assert (dino.model.backbone.type,
            dino.model.backbone.arch) == ('SwinTransformer', 'tiny')

    model = MODELS.build(cfg.model)
    groups = _param_groups(cfg, model)
    no_decay = {n for n, (_, wd) in groups.items() if wd == 0}
    tables = {n for n in groups if n.endswith('relative_position_bias_table')}
    norms = {
        f'{m}.{p}'
        for m, mod in model.named_modules()
        if isinstance(mod, torch.nn.LayerNorm) for p in ('weight', 'bias')
    }
    assert len(tables) == 12 and len(norms) == 2 * (1 + 2 * 12 + 3 + 4)
    assert no_decay == tables | norms
    assert {wd for n, (_, wd) in groups.items() if n not in no_decay} == {0.05}


def test_resnet_trains_every_stage_with_syncbn():
    cfg = Config.fromfile(str(RESNET))
    bb = cfg.model.backbone
    assert (bb.depth, bb.frozen_stages, bb.norm_eval) == (50, -1, False)
    assert bb.norm_cfg.type == cfg.model.neck.norm_cfg.type == 'SyncBN'
    assert cfg.train_cfg.max_epochs * cfg.train_dataloader.dataset.times == 36
    model = MODELS.build(cfg.model)
    model.train()
    assert all(p.requires_grad for p in model.backbone.parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert bns and all(m.training for m in bns)
    assert any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in model.neck.modules())


def test_vit_layer_decay_and_weight_decay():
    cfg = Config.fromfile(str(VIT_S))
    model = MODELS.build(cfg.model)
    groups = _param_groups(cfg, model)
    lr = 1e-4
    # ViTDet: lr x 0.7 ** (13 - depth), depth 0 = embeddings, i + 1 = block i
    assert groups['backbone.patch_embed.projection.weight'] == (pytest.approx(
        lr * 0.7**13), 0.1)
    assert groups['backbone.pos_embed'] == (pytest.approx(lr * 0.7**13), 0.)
    assert groups['backbone.cls_token'][1] == 0.
    for i in (0, 5, 11):
        assert groups[f'backbone.layers.{i}.attn.qkv.weight'] == (
            pytest.approx(lr * 0.7**(12 - i)), 0.1)
        assert groups[f'backbone.layers.{i}.ln1.weight'][1] == 0.
    assert groups['backbone.ln1.weight'] == (lr, 0.)
    assert groups['neck.stages.0.0.weight'] == (lr, 0.1)  # deconv
    assert groups['neck.stages.0.1.weight'] == (lr, 0.)  # its LN
    assert groups['roi_head.bbox_head.shared_convs.0.conv.weight'] == (lr, 0.1)
    assert groups['roi_head.bbox_head.shared_convs.0.ln.weight'] == (lr, 0.)
    assert groups['rpn_head.rpn_conv.1.conv.weight'] == (lr, 0.1)  # 2 convs


def test_vit_test_batches_are_padded_to_the_training_size():
    cfg = Config.fromfile(str(VIT_S))
    resize = TRANSFORMS.build(cfg.test_pipeline[1])
    img = np.full((480, 640, 3), 7, dtype=np.uint8)
    results = resize(dict(img=img, img_shape=(480, 640)))
    assert results['img_shape'] == (768, 1024)  # longer side 1024
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    sample = DetDataSample(
        metainfo=dict(img_shape=(768, 1024), ori_shape=(480, 640)))
    data = preprocessor(
        dict(
            inputs=[torch.from_numpy(results['img']).permute(2, 0, 1)],
            data_samples=[sample]))
    assert data['inputs'].shape == (1, 3, 1024, 1024)
    meta = data['data_samples'][0].metainfo
    assert meta['img_shape'] == (768, 1024)
    assert meta['batch_input_shape'] == (1024, 1024)
    # padded with the pixel mean: 0 after normalisation
    assert (data['inputs'][:, :, 768:] == 0).all()
    assert (data['inputs'][:, :, :768] != 0).all()


def test_vit_tiny_changes_only_the_backbone():
    small, tiny = (
        Config.fromfile(str(p)).to_dict() for p in (VIT_S, VIT_TINY))
    assert tiny['model']['backbone']['arch'] == 'deit-tiny'
    assert tiny['model']['neck']['in_channels'] == 192
    for cfg in (small, tiny):
        del cfg['model']['backbone']['arch'], cfg['pretrained']
        del cfg['model']['backbone']['init_cfg']['checkpoint']
        del cfg['model']['neck']['in_channels']
        cfg.pop('filename', None)
    assert small == tiny


def _tiny_batch(size: int = 96) -> dict:
    """One synthetic image with two boxes and masks."""
    img = torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
    boxes = torch.tensor([[8., 10., 60., 70.], [40., 30., 90., 88.]])
    masks = np.zeros((2, size, size), dtype=np.uint8)
    for m, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
        m[y1:y2, x1:x2] = 1
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(size, size),
            ori_shape=(size, size),
            scale_factor=(1., 1.),
            img_id=0))
    sample.gt_instances = InstanceData(
        bboxes=boxes,
        labels=torch.tensor([3, 7]),
        masks=BitmapMasks(masks, size, size))
    return dict(inputs=[img], data_samples=[sample])


def _save_backbone(path, backbone) -> str:
    torch.save({f'backbone.{k}': v
                for k, v in backbone.state_dict().items()}, str(path))
    return str(path)


def _pretraining_backbone(path: Path):
    """The backbone of the pretraining config that feeds ``path``."""
    if path in (SWIN, RESNET):
        arch = 'swin-t' if path == SWIN else 'resnet50'
        dino = Config.fromfile(
            str(CONFIGS / 'dino' /
                f'dino_{arch}_8xb64-amp-coslr-100e_in1k.py'))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return MMPRETRAIN_MODELS.build(dino.model.backbone)
    # official MoCo v3 ViT-S/16 (configs/_base_/models/mocov3_vit-s-p16.py)
    return MoCoV3ViT(
        arch='mocov3-small',
        img_size=224,
        patch_size=16,
        stop_grad_conv1=True,
        out_type='cls_token',
        final_norm=True)


def test_resnet_loads_the_dino_resnet50_backbone(tmp_path):
    src = _pretraining_backbone(RESNET)
    with torch.no_grad():
        src.layer4[2].bn3.running_var.fill_(2.)
    cfg = Config.fromfile(str(RESNET))
    cfg.model.backbone.init_cfg.checkpoint = _save_backbone(
        tmp_path / 'backbone.pth', src)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    state = backbone.state_dict()
    assert list(state) == list(src.state_dict())
    assert (state['layer4.2.bn3.running_var'] == 2.).all()


@pytest.mark.parametrize('path, watched', [
    (VIT_S, 'backbone.patch_embed.projection.weight'),
    (SWIN, 'backbone.patch_embed.projection.weight'),
])
def test_train_step_from_pretraining_checkpoint(path, watched, tmp_path):
    torch.manual_seed(0)
    src = _pretraining_backbone(path)
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg.checkpoint = _save_backbone(
        tmp_path / 'backbone.pth', src)
    if path == VIT_S:  # a 96-px batch instead of 1024
        cfg.model.data_preprocessor.pad_size_divisor = 32
        cfg.model.data_preprocessor.batch_augments[0].size = (96, 96)
    # few proposals and RoIs: one small image
    cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=50)
    cfg.model.train_cfg.rcnn.sampler.num = 32
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.backbone.state_dict()
    for k, v in src.state_dict().items():
        assert torch.equal(state[k], v), k
    if path == VIT_S:  # same heads as the MoCo v3 encoder
        assert model.backbone.layers[0].attn.num_heads == 12

    optim_wrapper = build_optim_wrapper(
        model, dict(cfg.optim_wrapper, type='OptimWrapper'))
    watched = [watched, 'roi_head.mask_head.conv_logits.weight']
    before = {n: model.get_parameter(n).detach().clone() for n in watched}
    model.train()
    losses = model.train_step(_tiny_batch(), optim_wrapper)
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                'loss_mask'):
        assert torch.isfinite(losses[key]).all(), key
    for name, value in before.items():
        assert not torch.equal(model.get_parameter(name), value), name
