"""Building the backbone to evaluate, pooling, and the feature cache."""
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.evaluation.features import (FeatureCacheError, backbone_prefix,
                                          build_eval_backbone,
                                          load_feature_cache, load_features,
                                          save_features)
from bcssl_mm.models.utils import CheckpointMismatchError, pool_backbone_output
from conftest import ROOT, TINY_DINO_MODEL

DINO_DEMO = ROOT / 'configs' / 'dino' / \
    'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The demo DINO config with the tiny model (SyncBN, drop path 0.1), and
    a DINO state dict whose teacher and student differ."""
    root = tmp_path_factory.mktemp('feat')
    path = root / 'tiny.py'
    path.write_text(f"""_base_ = {str(DINO_DEMO)!r}
{TINY_DINO_MODEL}model.update(backbone=dict(dw_norm_cfg=dict(type='SyncBN'),
                            drop_path_rate=0.1))
""")
    cfg = Config.fromfile(str(path))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    for p in model.teacher.parameters():
        p.data.add_(torch.randn_like(p))
    return cfg, model.state_dict(), root


def test_backbone_from_each_checkpoint_layout(tiny):
    cfg, sd, root = tiny
    teacher = {
        k[len('teacher.backbone.'):]: v
        for k, v in sd.items() if k.startswith('teacher.backbone.')
    }
    layouts = {
        'dino.pth':
        dict(state_dict=sd, meta=dict(epoch=1)),
        'extracted.pth':
        dict(state_dict={f'backbone.{k}': v
                         for k, v in teacher.items()}),
        'raw.pth':
        teacher,
    }
    for name, obj in layouts.items():
        torch.save(obj, root / name)
        backbone = build_eval_backbone(cfg.model, str(root / name))
        assert not backbone.training
        # evaluation form: plain BN, no stochastic depth
        assert not any(
            isinstance(m, nn.SyncBatchNorm) for m in backbone.modules())
        assert all(m.drop_prob == 0 for m in backbone.modules()
                   if type(m).__name__ == 'DropPath')
        for k, v in backbone.state_dict().items():
            assert torch.equal(v, teacher[k]), (name, k)
    student = build_eval_backbone(
        cfg.model, str(root / 'dino.pth'), part='student')
    assert torch.equal(student.state_dict()['norm3.weight'],
                       sd['backbone.norm3.weight'])
    assert not torch.equal(sd['backbone.norm3.weight'],
                           sd['teacher.backbone.norm3.weight'])
    assert backbone_prefix({'backbone.a': 0}, 'teacher') == 'backbone.'


def test_mismatched_checkpoint_lists_keys(tiny):
    cfg, sd, root = tiny
    bad = dict(sd)
    del bad['teacher.backbone.norm3.weight']
    bad['teacher.backbone.extra.weight'] = torch.zeros(1)
    torch.save(bad, root / 'bad.pth')
    with pytest.raises(CheckpointMismatchError) as e:
        build_eval_backbone(cfg.model, str(root / 'bad.pth'))
    msg = str(e.value)
    assert 'bad.pth' in msg and "'teacher.backbone.'" in msg
    assert 'norm3.weight' in msg and 'extra.weight' in msg


def test_random_init_is_seeded(tiny):
    cfg = tiny[0]
    a, b = (build_eval_backbone(cfg.model, seed=s) for s in (1, 1))
    c = build_eval_backbone(cfg.model, seed=2)
    w = 'stages.3.0.pointwise_conv1.weight'
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_pooling_rule():
    x = torch.randn(2, 5)
    assert pool_backbone_output((torch.zeros(1), x)) is x  # last, as it is
    fmap = torch.randn(2, 5, 3, 4)  # ResNet / Swin
    torch.testing.assert_close(
        pool_backbone_output((fmap, )), fmap.mean(dim=(2, 3)))
    with pytest.raises(ValueError, match=r"out_type='cls_token'"):
        pool_backbone_output((torch.randn(2, 7, 5), ))  # ViT tokens


def _save_cache(directory):
    feats = {'train': torch.randn(6, 4), 'val': torch.randn(3, 4)}
    labels = {'train': torch.arange(6) % 3, 'val': torch.tensor([2, 0, 1])}
    for split in ('train', 'val'):
        save_features(
            str(directory / f'{split}.pt'), feats[split], labels[split],
            ['a', 'b', 'c'],
            dict(config='x.py', pretrain=dict(name='run'), size=(1, 2)))
    return feats, labels


def test_cache_round_trip(tmp_path):
    feats, labels = _save_cache(tmp_path)
    # a plain torch.load(weights_only=True) reads it
    raw = torch.load(tmp_path / 'val.pt', weights_only=True)
    assert sorted(raw) == ['classes', 'features', 'labels', 'meta']
    cache = load_feature_cache(str(tmp_path))
    for split in ('train', 'val'):
        assert torch.equal(cache[split]['features'], feats[split])
        assert torch.equal(cache[split]['labels'], labels[split])
        assert cache[split]['classes'] == ['a', 'b', 'c']
        assert cache[split]['meta']['size'] == [1, 2]


def test_corrupted_cache_is_a_clear_error(tmp_path):
    _save_cache(tmp_path)
    path = tmp_path / 'train.pt'
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(FeatureCacheError, match='train.pt'):
        load_feature_cache(str(tmp_path))
    record = torch.load(tmp_path / 'val.pt', weights_only=True)
    for key, value, match in (
        ('features', record['features'].double(), "key 'features'"),
        ('labels', record['labels'][:2], "key 'labels'"),
        ('labels', torch.tensor([0, 1,
                                 3]), r"key 'labels' .* outside \[0, 3\)"),
        ('classes', 'abc', "key 'classes'"),
    ):
        torch.save(dict(record, **{key: value}), tmp_path / 'bad.pt')
        with pytest.raises(FeatureCacheError, match=f'bad.pt: {match}'):
            load_features(str(tmp_path / 'bad.pt'))
    del record['meta']
    torch.save(record, tmp_path / 'bad.pt')
    with pytest.raises(FeatureCacheError, match=r"missing key\(s\) \['meta'"):
        load_features(str(tmp_path / 'bad.pt'))
