"""tools/model_converters/mae_to_mmpretrain.py on synthetic checkpoints in the
official MAE and MAE-Lite layouts.

The sources are tiny models in the official names: timm's ViT (the encoder
class of official MAE, whose names MAE and MAE-Lite keep) with MAE's decoder
attributes added, so that the test's name mapping and forwards do not come
from the converter's tables.
"""
import contextlib
import io
import re
import runpy
import sys
from functools import partial

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmpretrain.models import MAEPretrainDecoder, MAEViT
from timm.models.vision_transformer import Block, VisionTransformer

from bcssl_mm.utils.state_dict_remap import ConversionError
from conftest import ROOT, load_tool

# mmengine's logger writes to the sys.stdout of when it was created: create
# it now, not inside a test that redirects stdout
MMLogger.get_current_instance()

SCRIPT = ROOT / 'tools' / 'model_converters' / 'mae_to_mmpretrain.py'
converter = load_tool('model_converters/mae_to_mmpretrain.py')
IMG, PATCH = 32, 16  # a 2x2 grid
NUM_PATCHES = (IMG // PATCH)**2
LN = partial(nn.LayerNorm, eps=1e-6)

# the mapping by hand: official MAE / timm names -> mmpretrain names
BLOCK_NAMES = {
    'norm1': 'ln1',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'norm2': 'ln2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
}
FIXED_NAMES = {
    'cls_token': 'backbone.cls_token',
    'pos_embed': 'backbone.pos_embed',
    'patch_embed.proj.weight': 'backbone.patch_embed.projection.weight',
    'patch_embed.proj.bias': 'backbone.patch_embed.projection.bias',
    'norm.weight': 'backbone.ln1.weight',
    'norm.bias': 'backbone.ln1.bias',
    'mask_token': 'neck.mask_token',
    'decoder_pos_embed': 'neck.decoder_pos_embed',
    'decoder_embed.weight': 'neck.decoder_embed.weight',
    'decoder_embed.bias': 'neck.decoder_embed.bias',
    'decoder_norm.weight': 'neck.ln1.weight',
    'decoder_norm.bias': 'neck.ln1.bias',
    'decoder_pred.weight': 'neck.decoder_pred.weight',
    'decoder_pred.bias': 'neck.decoder_pred.bias',
}


def _expected_name(key: str) -> str:
    if key in FIXED_NAMES:
        return FIXED_NAMES[key]
    src, to = (('decoder_blocks.', 'neck.decoder_blocks.')
               if key.startswith('decoder_blocks.') else
               ('blocks.', 'backbone.layers.'))
    i, rest = key[len(src):].split('.', 1)
    name, param = rest.rsplit('.', 1)
    return f'{to}{i}.{BLOCK_NAMES[name]}.{param}'


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Every tensor random (LN affine and the position tables included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def _official_vit(embed_dim=32, depth=2, num_heads=4, seed=0):
    """A tiny encoder in official MAE names (timm's ViT, no classifier)."""
    return _randomize(
        VisionTransformer(
            img_size=IMG,
            patch_size=PATCH,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=4,
            qkv_bias=True,
            num_classes=0,
            norm_layer=LN), seed)


class OfficialMAE(VisionTransformer):
    """MaskedAutoencoderViT's names: timm's ViT encoder plus MAE's decoder."""

    def __init__(self,
                 embed_dim=32,
                 depth=2,
                 num_heads=4,
                 decoder_dim=24,
                 decoder_depth=1,
                 decoder_heads=3):
        super().__init__(
            img_size=IMG,
            patch_size=PATCH,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            qkv_bias=True,
            num_classes=0,
            norm_layer=LN)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, NUM_PATCHES + 1, decoder_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_dim, decoder_heads, 4, qkv_bias=True, norm_layer=LN)
            for _ in range(decoder_depth)
        ])
        self.decoder_norm = LN(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, PATCH**2 * 3)

    def forward_decoder(self, x, ids_restore):
        """MAE's decoder: visible tokens (B, 1 + K, C) -> (B, L, p*p*3)."""
        x = self.decoder_embed(x)
        num_masked = ids_restore.shape[1] + 1 - x.shape[1]
        tokens = torch.cat(
            [x[:, 1:],
             self.mask_token.expand(x.shape[0], num_masked, -1)],
            dim=1)
        index = ids_restore[..., None].expand(-1, -1, x.shape[2])
        x = torch.cat([x[:, :1], tokens.gather(1, index)], dim=1)
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


def _official_mae(seed=0, **kwargs):
    return _randomize(OfficialMAE(**kwargs), seed)


def _convert(*argv) -> str:
    """Run the converter's ``main``; return what it printed."""
    args = converter.get_args_parser().parse_args([str(a) for a in argv])
    with contextlib.redirect_stdout(io.StringIO()) as log:
        converter.main(args)
    return log.getvalue()


def _load(filename):
    return torch.load(filename, map_location='cpu', weights_only=True)


def _part(state_dict, prefix):
    return {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }


def _mae_vit(embed_dims=32, num_layers=2, num_heads=4):
    arch = dict(
        embed_dims=embed_dims,
        num_layers=num_layers,
        num_heads=num_heads,
        feedforward_channels=4 * embed_dims)
    return MAEViT(arch=arch, img_size=IMG, patch_size=PATCH)


def _check_encoder(mmp_vit, source, x):
    """The converted MAEViT computes the source's normalised tokens."""
    mmp_vit.eval()  # NOTE: VisionTransformer.train() returns None
    with torch.no_grad():
        torch.testing.assert_close(
            mmp_vit(x, mask=None)[0], source.forward_features(x))


def _maelite_checkpoint(student, teacher=None, adapter=None):
    """MAE-Lite's tools/train.py checkpoint of the DDP-wrapped exp model."""
    model = {f'module.model.{k}': v for k, v in student.state_dict().items()}
    if teacher is not None:
        model.update({
            f'module.tch_model.{k}': v
            for k, v in teacher.state_dict().items()
        })
    if adapter is not None:
        model.update({
            f'module.attn_adapter.{k}': v
            for k, v in adapter.state_dict().items()
        })
    return dict(
        start_epoch=400,
        model=model,
        optimizer=dict(
            state={0: dict(exp_avg=torch.ones(2))}, param_groups=[]),
        scheduler=dict(last_epoch=399),
        best_top1=0.,
        scaler=dict(scale=65536.))


def test_official_mae_encoder(tmp_path):
    source = _official_vit(num_heads=4)
    official = source.state_dict()
    assert not any(k.startswith('head') for k in official)
    src, dst = tmp_path / 'mae_pretrain_vit_tiny.pth', tmp_path / 'out.pth'
    torch.save(dict(model=official), src)
    log = _convert(src, dst, '--num-heads', 4)
    assert '(official MAE)' in log
    assert '2  patch_embed.proj -> backbone.patch_embed.projection' in log
    assert '4  blocks.i.mlp.fc1 -> backbone.layers.i.ffn.layers.0.0' in log
    assert 'verified: loads strictly into backbone (MAEViT)' in log

    out = _load(dst)
    converted = out['state_dict']
    # round trip: every tensor, under the name the mapping gives it
    assert sorted(converted) == sorted(map(_expected_name, official))
    for k, v in official.items():
        assert torch.equal(converted[_expected_name(k)], v), k
    meta = out['meta']
    assert meta['layout'] == 'mae' and meta['converter'] == 'mae_to_mmpretrain'
    assert meta['backbone'] == dict(
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=4,
            feedforward_channels=128),
        img_size=IMG,
        patch_size=PATCH)
    assert 'neck' not in meta and 'teacher' not in meta

    vit = _mae_vit(num_heads=4)
    vit.load_state_dict(_part(converted, 'backbone.'), strict=True)
    # its own (MAE-layout) sin-cos table, not mmpretrain's
    assert torch.equal(vit.pos_embed, official['pos_embed'])
    _check_encoder(vit, source, torch.randn(2, 3, IMG, IMG))


def test_official_mae_base_shapes_give_arch_b(tmp_path):
    # ViT-B's shapes with empty storage would still be 86M parameters: give
    # the shape inference a ViT-B table directly
    from bcssl_mm.models.backbones.mae_checkpoint import infer_mae_vit_cfg
    sd = {
        'backbone.pos_embed': torch.empty(1, 197, 768),
        'backbone.patch_embed.projection.weight': torch.empty(768, 3, 16, 16),
        'backbone.layers.11.ln1.weight': torch.empty(768),
        'backbone.layers.0.ffn.layers.0.0.weight': torch.empty(3072, 768),
    }
    assert infer_mae_vit_cfg(sd) == dict(arch='b', img_size=224, patch_size=16)
    with pytest.raises(ConversionError, match='5 heads do not divide'):
        infer_mae_vit_cfg(sd, num_heads=5)


def test_maelite_with_decoder(tmp_path):
    source = _official_mae()
    official = source.state_dict()
    src, dst = tmp_path / 'mae_tiny_400e.pth.tar', tmp_path / 'out.pth'
    torch.save(_maelite_checkpoint(source), src)
    # defaults: 12 encoder heads, 3 decoder heads; the tiny encoder has 4
    with pytest.raises(ConversionError, match='12 heads do not divide'):
        _convert(src, dst)
    log = _convert(src, dst, '--num-heads', 4, '--format', 'maelite')
    assert '(MAE-Lite)' in log
    assert ('2  module.model.decoder_norm -> neck.ln1' in log)
    assert 'loads strictly into backbone (MAEViT), neck (MAEPretrainDecoder)' \
        in log

    out = _load(dst)
    converted = out['state_dict']
    assert sorted(converted) == sorted(map(_expected_name, official))
    for k, v in official.items():
        assert torch.equal(converted[_expected_name(k)], v), k
    meta = out['meta']
    assert meta['layout'] == 'maelite' and meta['start_epoch'] == 400
    assert meta['neck'] == dict(
        num_patches=NUM_PATCHES,
        patch_size=PATCH,
        in_chans=3,
        embed_dim=32,
        decoder_embed_dim=24,
        decoder_depth=1,
        decoder_num_heads=3,
        mlp_ratio=4)

    vit = _mae_vit(num_heads=4)
    vit.load_state_dict(_part(converted, 'backbone.'), strict=True)
    decoder = MAEPretrainDecoder(
        num_patches=NUM_PATCHES,
        patch_size=PATCH,
        embed_dim=32,
        decoder_embed_dim=24,
        decoder_depth=1,
        decoder_num_heads=3).eval()
    decoder.load_state_dict(_part(converted, 'neck.'), strict=True)
    _check_encoder(vit, source, torch.randn(2, 3, IMG, IMG))
    latent = torch.randn(2, 2, 32)  # cls + 1 visible patch
    ids_restore = torch.stack([torch.randperm(NUM_PATCHES) for _ in range(2)])
    with torch.no_grad():
        torch.testing.assert_close(
            decoder(latent, ids_restore),
            source.forward_decoder(latent, ids_restore))


def test_dmaelite_with_teacher_and_adapter(tmp_path):
    student = _official_mae(seed=0)
    teacher = _official_vit(embed_dim=48, num_heads=6, seed=1)
    # block 1 (the last) of the student: its 4 heads -> the teacher's 6
    adapter = _randomize(
        nn.ModuleDict({'adapter1': nn.Conv2d(4, 6, 1, bias=False)}), 2)
    src, dst = tmp_path / 'dmae_tiny_400e.pth.tar', tmp_path / 'out.pth'
    torch.save(_maelite_checkpoint(student, teacher, adapter), src)
    # the heads come from the adapter's shape
    log = _convert(src, dst)
    assert 'attn_adapter: 4 student heads -> 6 teacher heads' in log
    assert '1  module.attn_adapter.adapterN -> attn_adapter' in log

    out = _load(dst)
    converted = out['state_dict']
    expected = {_expected_name(k): v for k, v in student.state_dict().items()}
    expected.update({
        'teacher.' + _expected_name(k)[len('backbone.'):]: v
        for k, v in teacher.state_dict().items()
    })
    expected['attn_adapter.weight'] = adapter['adapter1'].weight
    assert sorted(converted) == sorted(expected)
    for k, v in expected.items():
        assert torch.equal(converted[k], v), k
    meta = out['meta']
    assert meta['attn_adapter_layer'] == 1
    assert meta['backbone']['arch']['num_heads'] == 4
    assert meta['teacher']['arch'] == dict(
        embed_dims=48, num_layers=2, num_heads=6, feedforward_channels=192)

    x = torch.randn(2, 3, IMG, IMG)
    for prefix, model, cfg in (('backbone.', student, (32, 2, 4)),
                               ('teacher.', teacher, (48, 2, 6))):
        vit = _mae_vit(*cfg)
        vit.load_state_dict(_part(converted, prefix), strict=True)
        _check_encoder(vit, model, x)

    # the whole converted checkpoint is a DMAELite state dict: student,
    # decoder, teacher and head adapter load strictly
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    vit = dict(type='AttnMAEViT', img_size=IMG, patch_size=PATCH)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dmae = MODELS.build(
            dict(
                type='DMAELite',
                backbone=dict(vit, arch=meta['backbone']['arch']),
                neck=dict(
                    type='MAEPretrainDecoder',
                    num_patches=NUM_PATCHES,
                    patch_size=PATCH,
                    embed_dim=32,
                    decoder_embed_dim=24,
                    decoder_depth=1,
                    decoder_num_heads=3),
                head=dict(
                    type='MAEPretrainHead',
                    norm_pix=True,
                    patch_size=PATCH,
                    loss=dict(type='PixelReconstructionLoss', criterion='L2')),
                teacher=dict(vit, arch=meta['teacher']['arch'])))
    dmae.load_state_dict(converted, strict=True)

    # heads given against the adapter's
    with pytest.raises(
            ConversionError,
            match='2 heads were given, but '
            'attn_adapter.weight maps 6'):
        _convert(src, dst, '--force', '--teacher-num-heads', 2)


def test_unknown_layout_and_wrong_format(tmp_path):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
    torch.save(dict(model={'stem.0.weight': torch.zeros(1)}), src)
    with pytest.raises(ConversionError) as e:
        _convert(src, dst)
    message = str(e.value)
    assert message.startswith(f'{src}: neither an official MAE checkpoint')
    assert "'patch_embed.proj.*'" in message and "'module.model.*'" in message
    assert "['stem.0.weight']" in message

    torch.save(dict(model={'backbone.cls_token': torch.zeros(1)}), src)
    with pytest.raises(ConversionError, match='already in mmpretrain names'):
        _convert(src, dst)

    torch.save(dict(model=_official_vit().state_dict()), src)
    with pytest.raises(ConversionError) as e:
        _convert(src, dst, '--format', 'maelite', '--num-heads', 4)
    assert '--format maelite expects an MAE-Lite checkpoint' in str(e.value)
    assert 'use --format mae or auto' in str(e.value)
    assert not dst.exists()


def test_missing_and_unknown_keys_are_listed(tmp_path):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
    official = _official_vit().state_dict()
    del official['blocks.1.norm2.weight'], official['blocks.0.attn.proj.bias']
    torch.save(dict(model=official), src)
    with pytest.raises(ConversionError) as e:
        _convert(src, dst, '--num-heads', 4)
    message = str(e.value)
    assert message.startswith(f'{src}: the converted checkpoint does not '
                              'load strictly into backbone = MAEViT(')
    assert f'nothing was written to {dst}' in message
    assert '2 missing keys:' in message
    assert 'layers.1.ln2.weight' in message
    assert 'layers.0.attn.proj.bias' in message
    assert not dst.exists() and list(tmp_path.iterdir()) == [src]

    # a fine-tuned classifier is not an MAE pretraining checkpoint
    official = _official_vit().state_dict()
    official.update({
        'head.weight': torch.zeros(10, 32),
        'fc_norm.weight': torch.zeros(32)
    })
    torch.save(dict(model=official), src)
    with pytest.raises(ConversionError) as e:
        _convert(src, dst, '--num-heads', 4)
    assert '2 keys match no conversion rule' in str(e.value)
    assert 'head.weight' in str(e.value) and 'fc_norm.weight' in str(e.value)

    # MAE-Lite: a decoder block key missing; the decoder missing
    source = _official_mae().state_dict()
    del source['decoder_blocks.0.mlp.fc2.bias']
    torch.save(
        dict(model={f'module.model.{k}': v
                    for k, v in source.items()}), src)
    with pytest.raises(ConversionError) as e:
        _convert(src, dst, '--num-heads', 4)
    assert 'into neck = MAEPretrainDecoder(' in str(e.value)
    assert 'decoder_blocks.0.ffn.layers.1.bias' in str(e.value)
    encoder_only = _official_vit().state_dict()
    torch.save(
        dict(model={f'module.model.{k}': v
                    for k, v in encoder_only.items()}), src)
    with pytest.raises(ConversionError, match='without its decoder'):
        _convert(src, dst, '--num-heads', 4)
    assert not dst.exists()


def test_existing_output_needs_force(tmp_path, monkeypatch):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
    torch.save(dict(model=_official_vit().state_dict()), src)
    dst.write_bytes(b'old')
    # the command line: one error line, no traceback, the file untouched
    monkeypatch.setattr(sys, 'argv',
                        [str(SCRIPT),
                         str(src),
                         str(dst), '--num-heads', '4'])
    with pytest.raises(SystemExit) as e, \
            contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(str(SCRIPT), run_name='__main__')
    assert e.value.code == (f'error: {dst} exists; pass --force to '
                            'overwrite it')
    assert dst.read_bytes() == b'old'

    log = _convert(src, dst, '--num-heads', 4, '--force')
    assert re.search(rf'saved \d+ tensors to {re.escape(str(dst))}', log)
    assert 'backbone.ln1.weight' in _load(dst)['state_dict']
