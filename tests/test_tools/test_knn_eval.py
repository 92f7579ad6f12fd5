"""tools/benchmarks/knn_eval.py end to end on the shapes classification
fixture, with a tiny BC-SSL from a DINO checkpoint."""
import json
import runpy
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.evaluation.features import build_dataset, build_preprocessor
from conftest import ROOT, TINY_DINO_MODEL, load_tool, run_tool

knn_eval = load_tool('benchmarks/knn_eval.py')
DINO_DEMO = ROOT / 'configs' / 'dino' / \
    'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'
NAME = 'dino_bcssl-tiny_1xb4-3e_shapes'


@pytest.fixture(scope='module')
def dino(tmp_path_factory, shapes_cls_root):
    """A tiny DINO config and a checkpoint whose teacher differs from its
    student (the features must be the teacher's)."""
    root = tmp_path_factory.mktemp('knn_eval')
    config = root / 'tiny.py'
    config.write_text(f'_base_ = {str(DINO_DEMO)!r}\n{TINY_DINO_MODEL}')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(Config.fromfile(str(config)).model)
        model.init_weights()
    for p in model.teacher.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    ckpt = root / 'epoch_3.pth'
    torch.save(
        dict(
            meta=dict(experiment_name=f'{NAME}_20261124_000000', epoch=3),
            state_dict=model.state_dict()), ckpt)
    return dict(
        root=root,
        config=str(config),
        ckpt=str(ckpt),
        model=model,
        data=shapes_cls_root + 'cls/')


def _args(dino, *extra, ckpt=True):
    return [
        dino['config'], *([dino['ckpt']] if ckpt else []), '--dataset',
        'shapes_cls', '--data-root', dino['data'], '--nb-knn', '1', '3', '10',
        '--num-workers', '0', '--batch-size', '5', *extra
    ]


def test_dino_checkpoint_then_cached_features(dino, capsys):
    work, feats = dino['root'] / 'work', dino['root'] / 'feats'
    args = knn_eval.get_args_parser().parse_args(
        _args(dino, '--work-dir', str(work), '--dump-features', str(feats)))
    metrics = knn_eval.main(args)
    assert sorted(metrics) == sorted(f'top{t}_k{k}' for t in (1, 5)
                                     for k in (1, 3, 10))
    assert all(metrics[f'top5_k{k}'] == 100. for k in (1, 3, 10))  # 3 classes
    out = capsys.readouterr().out
    assert f'pretrain: {NAME}; bank 12, queries 6, 3 classes' in out
    result = json.loads((work / 'knn.result.json').read_text())
    assert result['kind'] == 'knn' and result['metrics'] == metrics
    assert result['pretrain']['name'] == NAME
    assert result['pretrain']['checkpoint_epoch'] == 3

    # the cache holds the teacher's pooled features, in dataset order
    train = torch.load(feats / 'train.pt', weights_only=True)
    assert train['features'].shape == (12, 16)
    assert train['classes'] == ['circle', 'square', 'triangle']
    assert train['meta']['pretrain']['name'] == NAME
    data = Config.fromfile(
        str(ROOT / 'configs/_base_/datasets/shapes_cls_knn.py')).knn_data
    data.bank.data_root = dino['data']
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        bank = build_dataset(data.bank)
    assert train['labels'].tolist() == bank.get_gt_labels().tolist()
    batch = build_preprocessor(data.preprocessor)({
        'inputs': [bank[i]['inputs'] for i in (0, 11)]
    }, False)['inputs']
    teacher = dino['model'].teacher['backbone'].eval()
    with torch.no_grad():
        want = teacher(batch)[-1]
    torch.testing.assert_close(train['features'][[0, 11]], want)

    # other ks from the cache, without the backbone; same numbers
    args = knn_eval.get_args_parser().parse_args([
        dino['config'], '--load-features',
        str(feats), '--nb-knn', '3', '12', '--work-dir',
        str(dino['root'] / 'cached')
    ])
    cached = knn_eval.main(args)
    assert cached['top1_k3'] == metrics['top1_k3']
    assert 'top1_k12' in cached

    # k larger than the bank: a clear error, before any extraction
    args = knn_eval.get_args_parser().parse_args(_args(dino, '--nb-knn', '13'))
    with pytest.raises(
            ValueError,
            match=r'--nb-knn 13 is larger than the '
            r'bank \(12 images\)'):
        knn_eval.main(args)


def test_two_processes_equal_one(dino):
    one, two = dino['root'] / 'one', dino['root'] / 'two'
    knn_eval.main(knn_eval.get_args_parser().parse_args(
        _args(dino, '--work-dir', str(one), '--dump-features', str(one))))
    run_tool([
        'bash', 'tools/dist_knn_eval.sh', dino['config'], dino['ckpt'], '2',
        *_args(dino, '--work-dir', str(two), '--dump-features', str(two))[2:]
    ],
             PORT='29541')
    for split in ('train', 'val'):
        a = torch.load(one / f'{split}.pt', weights_only=True)
        b = torch.load(two / f'{split}.pt', weights_only=True)
        assert torch.equal(a['labels'], b['labels'])
        torch.testing.assert_close(a['features'], b['features'])
    results = [
        json.loads((d / 'knn.result.json').read_text())['metrics']
        for d in (one, two)
    ]
    assert results[0] == results[1]


def test_bad_input_exits_with_error(dino, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [
        'knn_eval.py', dino['config'], '--dataset', 'shapes_cls',
        '--data-root',
        str(dino['root'] / 'missing')
    ])
    with pytest.raises(SystemExit, match='^error: k-NN data root .*missing'):
        runpy.run_path(
            str(ROOT / 'tools/benchmarks/knn_eval.py'), run_name='__main__')
