"""tools/benchmarks/linear_probe_features.py on synthetic feature caches."""
import pytest
import torch

from bcssl_mm.evaluation.features import FeatureCacheError, load_feature_cache
from bcssl_mm.evaluation.results import read_result
from conftest import load_tool

tool = load_tool('benchmarks/linear_probe_features.py')


def blobs(n_per_class: int,
          num_classes: int = 6,
          dim: int = 16,
          seed: int = 0):
    """Linearly separable classes: unit-variance blobs around far apart
    means."""
    g = torch.Generator().manual_seed(seed)
    means = torch.eye(num_classes, dim) * 8
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    feats = means[labels] + torch.randn(len(labels), dim, generator=g)
    return feats, labels


def write_cache(root, num_classes=6, meta=None):
    classes = [f'c{i}' for i in range(num_classes)]
    for split, n, seed in (('train', 20, 0), ('val', 10, 1)):
        feats, labels = blobs(n, num_classes, seed=seed)
        torch.save(
            dict(
                features=feats,
                labels=labels,
                classes=classes,
                meta=meta or {}), root / f'{split}.pt')
    return root


def test_learns_a_separable_problem(tmp_path):
    cache = load_feature_cache(str(write_cache(tmp_path)))
    run = tool.train_linear(
        cache['train']['features'],
        cache['train']['labels'],
        6,
        lr=0.1,
        epochs=20,
        batch_size=16,
        val_feats=cache['val']['features'],
        val_labels=cache['val']['labels'])
    assert run['last']['top1'] == 100.
    assert run['last']['top5'] == 100.
    assert len(run['history']) == 20
    # the protocol's layer: N(0, 0.01) init, so a zero-lr run stays there
    frozen = tool.train_linear(cache['train']['features'],
                               cache['train']['labels'], 6, 1e-12, 1, 16)
    assert frozen['linear'].weight.abs().max() < 0.06
    assert torch.all(frozen['linear'].bias.abs() < 1e-9)


def test_sweep_picks_the_lr_that_learns_and_writes_the_result(
        tmp_path, capsys):
    write_cache(
        tmp_path,
        meta=dict(
            pretrain=dict(name='dino_bcssl-atto-k9_1xb32-coslr-10e_shapes')))
    args = tool.get_args_parser().parse_args([
        str(tmp_path), '--lrs', '1e-6', '0.1', '--epochs', '5', '--batch-size',
        '16'
    ])
    out = tool.main(args)
    runs = {r['lr']: r for r in out['runs']}
    assert runs[1e-6]['last']['top1'] < 60 < runs[0.1]['last']['top1']
    assert out['picked']['lr'] == 0.1
    printed = capsys.readouterr().out
    assert 'picked lr 0.1' in printed and 'not the linear-probe protocol' \
        in printed and 'no augmentation' in printed
    result = read_result(str(tmp_path / 'linear_features.result.json'))
    assert result['kind'] == 'linear_features'
    assert set(result['metrics']) == {'top1', 'top5', 'best_top1', 'best_top5'}
    assert result['metrics']['top1'] == runs[0.1]['last']['top1']
    assert result['pretrain']['name'] == \
        'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes'
    assert result['source']['lr'] == 0.1


def test_bad_cache_names_file_and_key(tmp_path):
    # the k-NN tool's reader and checker (one home), through main
    write_cache(tmp_path)
    val = torch.load(tmp_path / 'val.pt', weights_only=True)
    val['labels'] = val['labels'].float()
    torch.save(val, tmp_path / 'val.pt')
    parse = tool.get_args_parser().parse_args
    with pytest.raises(FeatureCacheError, match=r"val\.pt: key 'labels'"):
        tool.main(parse([str(tmp_path), '--epochs', '1']))
    with pytest.raises(FileNotFoundError, match='train.pt: no such feature'):
        tool.main(parse([str(tmp_path / 'missing'), '--epochs', '1']))
    assert not (tmp_path / 'linear_features.result.json').exists()


def test_help_says_it_departs_from_the_protocol():
    text = tool.get_args_parser().format_help()
    assert 'not the linear-probe protocol' in text
    assert 'picked on val' in text
