"""MAE-Lite: the encoder's shared mask and attention maps, D-MAE-Lite's
distillation loss, its frozen teacher, and the pretraining configs."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.models.algorithms import attention_distill_loss
from bcssl_mm.models.backbones import layer_forward_with_attention
from conftest import ROOT

CONFIGS = ROOT / 'configs' / 'maelite'
ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
TEACHER_ARCH = dict(
    embed_dims=48, num_layers=3, num_heads=6, feedforward_channels=96)


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def encoder(arch=ARCH, **kwargs) -> nn.Module:
    cfg = dict(
        type='AttnMAEViT',
        arch=arch,
        img_size=64,
        patch_size=16,
        mask_ratio=0.75,
        out_type='cls_token')
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def tiny_dmae(tmp_path=None, **kwargs) -> nn.Module:
    cfg = dict(
        type='DMAELite',
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor', mean=[0.] * 3, std=[255.] * 3),
        backbone=dict(
            type='AttnMAEViT',
            arch=ARCH,
            img_size=64,
            patch_size=16,
            mask_ratio=0.75),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=16,
            patch_size=16,
            in_chans=3,
            embed_dim=32,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=16,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        teacher=dict(
            type='AttnMAEViT',
            arch=TEACHER_ARCH,
            img_size=64,
            patch_size=16,
            mask_ratio=0.75))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


# ------------------------------------------------------------------ encoder


def test_shared_permutation_gives_the_same_visible_patches():
    torch.manual_seed(0)
    student, teacher = encoder(), encoder(TEACHER_ARCH)
    x = torch.randn(3, 3, 64, 64)
    s = student.forward_masked(x)
    t = teacher.forward_masked(x, ids_shuffle=s.ids_shuffle)
    assert torch.equal(s.ids_shuffle, t.ids_shuffle)
    assert torch.equal(s.mask, t.mask)
    assert s.mask.sum(1).tolist() == [12] * 3  # 75% of 16 masked
    # the visible tokens are those patches, in that order: with the
    # student's own weights the teacher's latent equals the student's
    twin = encoder()
    twin.load_state_dict(student.state_dict())
    torch.testing.assert_close(
        twin.forward_masked(x, ids_shuffle=s.ids_shuffle).latent, s.latent)
    other = twin.forward_masked(x)  # a new permutation
    assert not torch.equal(other.ids_shuffle, s.ids_shuffle)
    # a permutation that does not fit the batch is refused
    with pytest.raises(ValueError, match='ids_shuffle'):
        student.forward_masked(x[:2], ids_shuffle=s.ids_shuffle)


def test_attention_maps_equal_a_direct_softmax_of_q_k():
    torch.manual_seed(0)
    model = encoder()
    model.eval()
    layer = model.layers[1]
    x = torch.randn(2, 5, 32)
    out, logits = layer_forward_with_attention(layer, x)
    # the layer's own (fused) forward is unchanged
    torch.testing.assert_close(out, layer(x))
    # Q K^T / sqrt(d) from the block's weights, head by head
    h = layer.ln1(x)
    w, b = layer.attn.qkv.weight, layer.attn.qkv.bias
    q, k = (h @ w[:32].T + b[:32]), (h @ w[32:64].T + b[32:64])
    for head in range(4):
        sl = slice(8 * head, 8 * (head + 1))
        direct = q[..., sl] @ k[..., sl].transpose(-2, -1) / math.sqrt(8)
        torch.testing.assert_close(logits[:, head], direct)
        torch.testing.assert_close(logits[:, head].softmax(-1),
                                   F.softmax(direct, dim=-1))


def test_only_the_requested_blocks_leave_the_fused_path():
    torch.manual_seed(0)
    model = encoder()
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)
    plain = model.forward_masked(x)
    with_maps = model.forward_masked(
        x, ids_shuffle=plain.ids_shuffle, attn_layers=(-1, ))
    assert list(with_maps.attn_logits) == [1]
    assert with_maps.attn_logits[1].shape == (2, 4, 5, 5)  # cls + 4 visible
    torch.testing.assert_close(with_maps.latent, plain.latent)
    with pytest.raises(ValueError, match='out of range'):
        model.forward_masked(x, attn_layers=(2, ))


def test_masks_in_training_and_encodes_the_whole_image_in_eval():
    model = encoder()
    x = torch.randn(2, 3, 64, 64)
    model.train()
    latent, mask, ids_restore = model(x)
    assert latent.shape == (2, 5, 32) and mask.shape == (2, 16)
    model.eval()
    assert model(x)[-1].shape == (2, 32)  # the final-normed class token


# ------------------------------------------------------------- distillation


def test_distill_loss_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    student = torch.randn(2, 4, 5, 5, generator=g)
    teacher = torch.randn(2, 6, 5, 5, generator=g)
    adapter = nn.Conv2d(4, 6, 1, bias=False)
    w = adapter.weight[:, :, 0, 0]  # (6, 4)
    for target in ('logits', 'probs'):
        s, t = student, teacher
        if target == 'probs':
            s, t = s.softmax(-1), t.softmax(-1)
        adapted = torch.einsum('ji,binm->bjnm', w, s)
        direct = ((adapted - t)**2).sum() / adapted.numel()
        torch.testing.assert_close(
            attention_distill_loss(student, teacher, adapter, target), direct)
    with pytest.raises(ValueError, match='does not match'):
        attention_distill_loss(student, teacher[:, :5], adapter, 'logits')


def test_losses_teacher_frozen_and_in_eval_mode():
    torch.manual_seed(0)
    model = tiny_dmae()
    model.train()
    assert not model.teacher.training and model.backbone.training
    assert isinstance(model.attn_adapter, nn.Conv2d)
    assert model.attn_adapter.weight.shape == (6, 4, 1, 1)
    ow = build_optim_wrapper(
        model,
        dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05),
            constructor='SelfSupOptimWrapperConstructor'))
    optimized = {id(p) for g in ow.optimizer.param_groups for p in g['params']}
    assert not any(id(p) in optimized for p in model.teacher.parameters())
    teacher_before = {
        k: v.clone()
        for k, v in model.teacher.state_dict().items()
    }
    adapter_before = model.attn_adapter.weight.detach().clone()
    data = dict(inputs=torch.rand(2, 3, 64, 64) * 255, data_samples=[None] * 2)
    log_vars = model.train_step(data, ow)
    assert set(log_vars) >= {'loss', 'loss_rec', 'loss_attn'}
    assert all(p.grad is None for p in model.teacher.parameters())
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    assert not torch.equal(model.attn_adapter.weight, adapter_before)


def test_loss_is_reconstruction_plus_weighted_attention_mse():
    torch.manual_seed(0)
    model = tiny_dmae(attn_loss_weight=0.5)
    model.eval()  # no randomness but the mask, drawn below
    x = torch.rand(2, 3, 64, 64)
    torch.manual_seed(3)
    losses = model.loss(x, None)
    torch.manual_seed(3)  # the same mask again
    s = model.backbone.forward_masked(x, attn_layers=(-1, ))
    t = model.teacher.forward_masked(
        x, ids_shuffle=s.ids_shuffle, attn_layers=(-1, ))
    rec = model.head.loss(model.neck(s.latent, s.ids_restore), x, s.mask)
    attn = F.mse_loss(model.attn_adapter(s.attn_logits[1]), t.attn_logits[2])
    torch.testing.assert_close(losses['loss_rec'], rec)
    torch.testing.assert_close(losses['loss_attn'], 0.5 * attn)


def test_teacher_checkpoint_is_loaded_after_the_random_init(tmp_path):
    torch.manual_seed(0)
    source = encoder(TEACHER_ARCH)
    with torch.no_grad():
        source.pos_embed.add_(1.)  # MAEViT.init_weights would overwrite it
    path = tmp_path / 'teacher.pth'
    torch.save({f'backbone.{k}': v
                for k, v in source.state_dict().items()}, path)
    model = tiny_dmae(teacher_checkpoint=str(path))
    for k, v in source.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k
    with pytest.raises(FileNotFoundError, match='teacher_checkpoint'):
        tiny_dmae(teacher_checkpoint=str(tmp_path / 'missing.pth'))
    with pytest.raises(ValueError, match='attn_target'):
        tiny_dmae(attn_target='kl')


# ------------------------------------------------------------------ configs


@pytest.mark.parametrize('name', [
    'maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py',
    'dmaelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py',
    'maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py',
    'maelite_vit-nano-p16_1xb32-coslr-100e_shapes.py',
    'dmaelite_vit-pico-p16_1xb32-coslr-100e_shapes.py',
])
def test_config_builds_and_does_one_cpu_step(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    cfg.model.pop('teacher_checkpoint', None)  # a random teacher here
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    ow_cfg = cfg.optim_wrapper.to_dict()
    ow_cfg['type'] = 'OptimWrapper'  # fp32 on CPU
    ow_cfg.pop('loss_scale', None)
    ow = build_optim_wrapper(model, ow_cfg)
    size = cfg.model.backbone.img_size
    data = dict(inputs=torch.rand(1, 3, size, size) * 255, data_samples=[None])
    before = model.backbone.layers[0].attn.qkv.weight.detach().clone()
    log_vars = model.train_step(data, ow)
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(model.backbone.layers[0].attn.qkv.weight, before)


def test_tiny_recipe_values():
    cfg = Config.fromfile(
        str(CONFIGS / 'maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py'))
    batch = cfg.train_dataloader.batch_size * 8
    assert batch == 4096
    opt = cfg.optim_wrapper.optimizer
    assert opt.lr == pytest.approx(1.5e-4 * batch / 256)
    assert (opt.betas, opt.weight_decay) == ((0.9, 0.95), 0.05)
    assert cfg.train_cfg.max_epochs == 400
    assert cfg.param_scheduler[0].end == 40  # warm-up epochs
    arch = cfg.model.backbone.arch
    assert (arch.embed_dims, arch.num_layers, arch.num_heads) == (192, 12, 12)
    neck = cfg.model.neck
    assert (neck.decoder_embed_dim, neck.decoder_depth,
            neck.decoder_num_heads) == (96, 1, 3)
    assert cfg.model.backbone.mask_ratio == 0.75 and cfg.model.head.norm_pix
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.crop_ratio_range == (0.08, 1.)
    distil = Config.fromfile(
        str(CONFIGS / 'dmaelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py'))
    assert distil.model.teacher.arch == 'b'
    assert distil.model.attn_loss_weight == 1.
    assert Path(distil.model.teacher_checkpoint).name.endswith('.pth')


def test_extract_encoder_and_teacher_checked_against_the_config(tmp_path):
    from bcssl_mm.utils import load_from_local
    from bcssl_mm.utils.state_dict_remap import save_checkpoint
    from conftest import load_tool
    config = str(CONFIGS / 'dmaelite_vit-pico-p16_1xb32-coslr-100e_shapes.py')
    cfg = Config.fromfile(config)
    cfg.model.pop('teacher_checkpoint')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    src = tmp_path / 'dmae.pth'
    save_checkpoint(model.state_dict(), str(src),
                    dict(experiment_name=Path(config).stem, epoch=100))
    extract = load_tool('model_converters/extract_backbone.py')
    for part, module in (('encoder', model.backbone), ('teacher',
                                                       model.teacher)):
        dst = tmp_path / f'{part}.pth'
        argv = [str(src), str(dst), '--config', config]
        if part == 'teacher':
            argv += ['--part', 'teacher']
        extract.main(extract.get_args_parser().parse_args(argv))
        out = load_from_local(str(dst))
        assert out['meta']['algorithm'] == 'mae'
        state = out['state_dict']
        assert state.keys() == {f'backbone.{k}' for k in module.state_dict()}
        for k, v in module.state_dict().items():
            assert torch.equal(state[f'backbone.{k}'], v), k


def test_attention_benchmark_compares_equal_encoders(capsys):
    from conftest import load_tool
    bench = load_tool('analysis_tools/benchmark_attention_maps.py')
    out = bench.main(bench.get_args_parser().parse_args([
        '--config',
        str(CONFIGS / 'maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py'),
        '--batch-size', '2', '--warmup', '0', '--repeats', '1'
    ]))
    assert len(out['times']) == 3
    assert out['max_diff'] < 1e-5  # same weights, same mask
    assert 'AttnMAEViT, maps of blocks [-1]' in capsys.readouterr().out


def test_malicious_teacher_checkpoint_is_refused(tmp_path):
    """The teacher checkpoint is read with weights_only=True: a pickle that
    would create a file is refused and never runs."""
    import sys
    sys.path.insert(0, str(ROOT / 'tests' / 'test_tools'))
    from test_safe_loading import MakesFile
    marker, path = tmp_path / 'pwned', tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': MakesFile(marker)}}, path)
    with pytest.raises(Exception, match='refused to load'):
        tiny_dmae(teacher_checkpoint=str(path))
    assert not marker.exists()
