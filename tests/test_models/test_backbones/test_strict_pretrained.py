"""Strict ``Pretrained`` loading of mmpretrain's ResNet, Swin and ViT."""
import shutil

import pytest
import torch
from mmpretrain.models import ResNet, SwinTransformer, VisionTransformer

from bcssl_mm.models import (StrictResNet, StrictSwinTransformer,
                             StrictVisionTransformer)
from bcssl_mm.models.utils import CheckpointMismatchError
from bcssl_mm.utils import CheckpointLoadError

RESNET = dict(depth=18, base_channels=8, stem_channels=8)
SWIN = dict(
    arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
    window_size=7,
    pad_small_map=True)
VIT = dict(
    arch=dict(
        embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
    img_size=224,
    patch_size=16)

# (pretraining class and arguments, detection class and arguments)
CASES = {
    'resnet': (ResNet, dict(RESNET, out_indices=(3, )), StrictResNet,
               dict(RESNET, out_indices=(0, 1, 2, 3), frozen_stages=-1)),
    'swin': (SwinTransformer, dict(SWIN,
                                   out_indices=(3, )), StrictSwinTransformer,
             dict(SWIN, out_indices=(0, 1, 2, 3))),
    'vit': (VisionTransformer, dict(VIT, out_type='cls_token'),
            StrictVisionTransformer, dict(VIT, out_type='featmap')),
}


def _randomize(model: torch.nn.Module) -> None:
    """Give every tensor (BN statistics included) a non-default value."""
    with torch.no_grad():
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.uniform_(0.5, 1.5)


def _save(tmp_path, model, name='ckpt.pth', prefix='backbone.'):
    path = str(tmp_path / name)
    sd = {prefix + k: v for k, v in model.state_dict().items()}
    sd['neck.fc.weight'] = torch.zeros(4, 4)  # other modules are ignored
    torch.save(dict(state_dict=sd, meta=dict()), path)
    return path


def _pretrained(path):
    return dict(type='Pretrained', checkpoint=path, prefix='backbone.')


@pytest.mark.parametrize('case', sorted(CASES))
def test_pretraining_checkpoint_loads_after_random_init(case, tmp_path):
    src_cls, src_args, cls, args = CASES[case]
    torch.manual_seed(0)
    src = src_cls(**src_args)
    _randomize(src)
    model = cls(**args, init_cfg=_pretrained(_save(tmp_path, src)))
    model.init_weights()
    state = model.state_dict()
    # every checkpoint tensor is loaded, i.e. after the random init that
    # would zero ResNet's last BN of each block (zero_init_residual) and
    # re-draw ViT's position embedding
    for k, v in src.state_dict().items():
        assert torch.equal(state[k], v), k
    # the output norms a pretraining backbone lacks keep their default init
    for k in set(state) - set(src.state_dict()):
        assert k.startswith(('norm0.', 'norm1.', 'norm2.')), k
        assert torch.equal(state[k],
                           torch.full_like(state[k], k.endswith('weight')))


@pytest.mark.parametrize('case', sorted(CASES))
def test_without_checkpoint_initialises_as_mmpretrain(case):
    _, _, cls, args = CASES[case]
    upstream = cls.__mro__[2]  # the mmpretrain class after the mixin
    models = []
    for c in (cls, upstream):
        torch.manual_seed(0)
        models.append(c(**args))
        models[-1].init_weights()
    ours, theirs = (m.state_dict() for m in models)
    assert list(ours) == list(theirs)
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k


def test_wrong_depth_lists_missing_keys(tmp_path):
    src = ResNet(**RESNET)
    model = StrictResNet(
        **dict(RESNET, depth=34), init_cfg=_pretrained(_save(tmp_path, src)))
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    msg = str(e.value)
    # ResNet-34 has 3, 4, 6, 3 blocks where ResNet-18 has 2 in each stage
    assert 'ckpt.pth does not match StrictResNet' in msg
    assert 'missing keys' in msg and 'layer1.2.conv1.weight' in msg
    assert 'layer3.5.bn2.running_var' in msg
    assert 'unexpected keys' not in msg


def test_wrong_window_lists_mis_shaped_keys(tmp_path):
    src = SwinTransformer(**dict(SWIN, window_size=5))
    model = StrictSwinTransformer(
        **SWIN, init_cfg=_pretrained(_save(tmp_path, src)))
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    msg = str(e.value)
    # a (2w - 1)^2 x heads table per block: 81 rows for w 5, 169 for w 7
    assert ('stages.0.blocks.0.attn.w_msa.relative_position_bias_table: '
            'checkpoint (81, 1) vs model (169, 1)') in msg
    assert '8 mis-shaped keys' in msg  # table and index in 4 blocks


def test_vit_keeps_the_checkpoint_grid(tmp_path):
    """The backbone keeps img_size=224: a 1024 one would need another
    position-embedding shape than the checkpoint's."""
    src = VisionTransformer(**VIT)
    path = _save(tmp_path, src)
    big = StrictVisionTransformer(
        **dict(VIT, img_size=1024), init_cfg=_pretrained(path))
    with pytest.raises(CheckpointMismatchError) as e:
        big.init_weights()
    assert ('pos_embed: checkpoint (1, 197, 32) vs model (1, 4097, 32)'
            in str(e.value))

    model = StrictVisionTransformer(
        **VIT, out_type='featmap', init_cfg=_pretrained(path))
    model.init_weights()
    # any input grid: the embedding is resized at forward
    out, = model(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 32, 4, 6)


def test_unexpected_keys_and_unchanged_model_after_failure(tmp_path):
    src = VisionTransformer(**dict(VIT, out_type='avg_featmap'))
    model = StrictVisionTransformer(
        **VIT, out_type='featmap', init_cfg=_pretrained(_save(tmp_path, src)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    assert '2 unexpected keys:\n    ln2.weight\n    ln2.bias' in str(e.value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_list_init_cfg(tmp_path):
    src = ResNet(**RESNET)
    _randomize(src)
    path = _save(tmp_path, src)
    model = StrictResNet(
        **RESNET,
        init_cfg=[
            dict(type='Constant', val=0., layer='Conv2d'),
            _pretrained(path)
        ])
    model.init_weights()
    assert torch.equal(model.conv1.weight, src.conv1.weight)
    model = StrictResNet(
        **RESNET, init_cfg=[_pretrained(path),
                            _pretrained(path)])
    with pytest.raises(ValueError, match='2 Pretrained entries'):
        model.init_weights()


def test_vit_pooled_without_final_norm_takes_an_encoder(tmp_path):
    """MAE fine-tuning: the pooled feature's norm ln2 is new and the
    encoder's final norm ln1 is dropped; nothing else may differ."""
    src = VisionTransformer(**VIT, out_type='cls_token', final_norm=True)
    _randomize(src)
    args = dict(VIT, out_type='avg_featmap', final_norm=False)
    model = StrictVisionTransformer(
        **args, init_cfg=_pretrained(_save(tmp_path, src)))
    model.init_weights()
    state = model.state_dict()
    assert set(src.state_dict()) - set(state) == {'ln1.weight', 'ln1.bias'}
    assert set(state) - set(src.state_dict()) == {'ln2.weight', 'ln2.bias'}
    for k, v in src.state_dict().items():
        if not k.startswith('ln1.'):
            assert torch.equal(state[k], v), k
    assert torch.equal(state['ln2.weight'], torch.ones(32))

    # a model with a final norm still needs ln1 from the checkpoint
    no_norm = VisionTransformer(**VIT, out_type='featmap', final_norm=False)
    model = StrictVisionTransformer(
        **dict(args, final_norm=True),
        init_cfg=_pretrained(_save(tmp_path, no_norm, 'no_norm.pth')))
    with pytest.raises(CheckpointMismatchError) as e:
        model.init_weights()
    assert '2 missing keys:\n    ln1.weight\n    ln1.bias' in str(e.value)


class MakesFile:
    """Unpickling this creates ``path``: a stand-in for any code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.mark.parametrize('case', sorted(CASES) + ['torchvision://'])
def test_malicious_checkpoint_is_refused(case, tmp_path, monkeypatch):
    marker = tmp_path / 'pwned'
    evil = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': MakesFile(marker)}, evil)
    if case == 'torchvision://':
        # an mmdet config's checkpoint='torchvision://resnet18', downloaded
        monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
        monkeypatch.setattr(torch.hub, 'download_url_to_file',
                            lambda url, dst, *a, **k: shutil.copy(evil, dst))
        cls, args = StrictResNet, CASES['resnet'][3]
        checkpoint = 'torchvision://resnet18'
        refused = str(tmp_path / 'torch' / 'hub' / 'checkpoints')
    else:
        cls, args = CASES[case][2:]
        checkpoint = refused = evil
    torch.manual_seed(0)
    model = cls(**args, init_cfg=_pretrained(checkpoint))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointLoadError, match=f'{refused}.*refused'):
        model.init_weights()
    assert not marker.exists()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
