"""The SelfPatch configs: the official ViT-S recipe, BC-SSL-T as the DINO
100-epoch recipe plus the patch loss, one CPU training step each, and the
hand-off of their teachers to the linear probe and Mask R-CNN (strict)."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.models.algorithms import set_step_teacher_temp
from bcssl_mm.utils import load_from_local
from bcssl_mm.utils.state_dict_remap import save_checkpoint
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
SELFPATCH = CONFIGS / 'selfpatch'
BENCHMARKS = SELFPATCH / 'benchmarks'
VIT = SELFPATCH / 'selfpatch_vit-s-p16_8xb128-amp-coslr-200e_in1k.py'
BCSSL = SELFPATCH / 'selfpatch_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'
DEMO = SELFPATCH / 'selfpatch_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'
DINO_T100 = CONFIGS / 'dino' / 'dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'
DINO_DEMO = CONFIGS / 'dino' / 'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'


def test_every_config_is_here():
    assert {p.name
            for p in SELFPATCH.glob('*.py')
            } == {VIT.name, BCSSL.name, DEMO.name}
    assert {p.name
            for p in BENCHMARKS.glob('*.py')} == {
                'bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py',
                'vit-s-p16_linear-8xb128-coslr-100e_in1k.py',
                'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py',
                'mask-rcnn_vit-s-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py',
                'mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py',
            }


def test_vit_is_the_official_recipe():
    cfg = Config.fromfile(str(VIT))
    batch = cfg.train_dataloader.batch_size * 8
    assert batch == 1024
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(5e-4 * batch / 256)
    assert cfg.auto_scale_lr.base_batch_size == batch
    assert cfg.train_cfg.max_epochs == 200  # the paper's (the code: 300)
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.global_crops_scale == (0.25, 1.)
    assert crop.local_crops_scale == (0.05, 0.25)
    assert crop.num_local_crops == 8
    assert (crop.global_crop_size, crop.local_crop_size) == (224, 96)
    hook = cfg.custom_hooks[0]
    assert hook.type == 'DINOHook'
    assert hook.teacher_temp == hook.warmup_teacher_temp == 0.04
    assert hook.warmup_teacher_temp_epochs == 0
    assert hook.momentum == 0.996 and hook.freeze_last_layer_epochs == 1
    model = cfg.model
    assert model.type == 'SelfPatch' and model.patch_loss_weight == 0.1
    assert model.backbone.arch == 'deit-small'  # DINO's ViT-S: 6 heads
    assert not model.backbone.with_cls_token
    assert not model.backbone.final_norm
    assert model.image_token == 'class_attention'
    assert model.student_patches == 'norm'
    assert model.neck.out_channels == model.head.loss.out_dim == 65536
    assert (model.patch_neck.out_channels == model.patch_head.loss.out_dim ==
            4096)
    assert model.aggregator.num_blocks == 2
    assert model.aggregator.num_neighbours == 4
    assert model.aggregator.wrap_around is False  # default; see the class
    assert cfg.optim_wrapper.clip_grad.max_norm == 3.0
    assert cfg.optim_wrapper.type == 'DINOAmpOptimWrapper'


def test_bcssl_is_the_dino_recipe_plus_the_patch_loss():
    cfg = Config.fromfile(str(BCSSL)).to_dict()
    dino = Config.fromfile(str(DINO_T100)).to_dict()
    for c in (cfg, dino):
        c.pop('filename', None)
    model, dino_model = cfg.pop('model'), dino.pop('model')
    assert cfg == dino  # data, schedule, hooks, runtime
    assert model.pop('type') == 'SelfPatch'
    backbone = model.pop('backbone')
    assert backbone.pop('out_indices') == (2, 3)
    assert backbone.pop('map_indices') == (2, )
    dino_backbone = dino_model.pop('backbone')
    dino_backbone.pop('out_indices')
    assert backbone == dino_backbone
    for key in ('neck', 'head', 'data_preprocessor'):
        assert model.pop(key) == dino_model.pop(key), key
    assert model['patch_loss_weight'] == 0.1
    assert model['aggregator']['embed_dims'] == 384  # stage-3 width
    assert model['patch_neck']['out_channels'] == 4096


def test_demo_is_the_dino_demo_plus_the_patch_loss():
    cfg = Config.fromfile(str(DEMO)).to_dict()
    dino = Config.fromfile(str(DINO_DEMO)).to_dict()
    for c in (cfg, dino):
        c.pop('filename', None)
    model, dino_model = cfg.pop('model'), dino.pop('model')
    assert cfg == dino
    for key in ('neck', 'head', 'data_preprocessor'):
        assert model[key] == dino_model[key], key


def _build(cfg: Config):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
        model.init_weights()
        ow_cfg = cfg.optim_wrapper.to_dict()
        ow_cfg['type'] = 'DINOOptimWrapper'  # fp32 on CPU
        ow_cfg.pop('loss_scale', None)
        return model, build_optim_wrapper(model, ow_cfg)


@pytest.mark.parametrize('path', [VIT, BCSSL, DEMO], ids=lambda p: p.stem)
def test_config_does_one_cpu_step(path):
    torch.manual_seed(0)
    cfg = Config.fromfile(str(path))
    model, ow = _build(cfg)
    g = torch.Generator().manual_seed(0)
    views = [torch.rand(1, 3, 64, 64, generator=g) * 255 for _ in range(2)]
    views += [torch.rand(1, 3, 32, 32, generator=g) * 255 for _ in range(2)]
    watched = model.aggregator.blocks[0].q.weight
    before = watched.detach().clone()
    set_step_teacher_temp(0.04)
    losses = model.train_step(dict(inputs=views, data_samples=[None]), ow)
    assert torch.isfinite(losses['loss'])
    assert losses['loss_patch'] > 0 and losses['loss_image'] > 0
    assert not torch.equal(watched, before)


def _extracted_teacher(path: Path, tmp_path: Path) -> str:
    """A SelfPatch checkpoint of ``path`` (its real key layout, teacher
    perturbed) through tools/model_converters/extract_backbone.py."""
    torch.manual_seed(0)
    cfg = Config.fromfile(str(path))
    model, _ = _build(cfg)
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.01)
    src, dst = tmp_path / 'selfpatch.pth', tmp_path / 'teacher.pth'
    save_checkpoint(model.state_dict(), str(src),
                    dict(experiment_name=path.stem, epoch=1))
    extract = load_tool('model_converters/extract_backbone.py')
    extract.main(extract.get_args_parser().parse_args(
        [str(src), str(dst), '--config',
         str(path)]))
    state = load_from_local(str(dst))['state_dict']
    expected = {
        f'backbone.{k}': v
        for k, v in model.teacher['backbone'].state_dict().items()
    }
    assert state.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(state[k], v), k
    return str(dst)


@pytest.mark.parametrize(
    'pretrain, probe',
    [(VIT, 'vit-s-p16_linear-8xb128-coslr-100e_in1k.py'),
     (BCSSL, 'bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py')],
    ids=['vit-s', 'bcssl-t'])
def test_linear_probe_loads_the_extracted_teacher(pretrain, probe, tmp_path):
    ckpt = _extracted_teacher(pretrain, tmp_path)
    cfg = Config.fromfile(str(BENCHMARKS / probe))
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
        model.init_weights()  # strict: any mismatch raises
    teacher = load_from_local(ckpt)['state_dict']
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, teacher[f'backbone.{k}']), k
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(2, 3, 64, 64))
    assert model.head.pre_logits(feats).shape == (2,
                                                  cfg.model.head.in_channels)


@pytest.mark.parametrize(
    'pretrain, det',
    [(VIT, 'mask-rcnn_vit-s-p16_simple-fpn_8xb8-amp-lsj-100e_coco.py'),
     (BCSSL, 'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py')],
    ids=['vit-s', 'bcssl-t'])
def test_mask_rcnn_loads_the_extracted_teacher(pretrain, det, tmp_path):
    ckpt = _extracted_teacher(pretrain, tmp_path)
    cfg = Config.fromfile(str(BENCHMARKS / det))
    assert cfg.pretrained.endswith(f'{pretrain.stem}.pth')
    cfg.model.backbone.init_cfg.checkpoint = ckpt
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MMDET_MODELS.build(cfg.model)
        model.init_weights()  # strict
    teacher = load_from_local(ckpt)['state_dict']
    state = model.backbone.state_dict()
    for k, v in teacher.items():
        assert torch.equal(state[k[len('backbone.'):]], v), k
