"""tools/analysis_tools/collect_results.py on fixture result files."""
import argparse
import json
import re
from typing import Dict, List

import pytest

from bcssl_mm.evaluation.results import (ResultFileError, parse_pretrain_name,
                                         write_result)
from conftest import load_tool

T_K9_100E = 'dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k'
T_K9_300E = 'dino_bcssl-t-k9_8xb64-amp-coslr-300e_in1k'
RN50_100E = 'dino_resnet50_8xb64-amp-coslr-100e_in1k'
DEMO_DINO = 'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes'
DEMO_RANDOM = 'random_bcssl-atto-k9_init_shapes'


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/collect_results.py')


def _write(root, run_dir, kind, metrics, name, time=None, **pretrain):
    path = write_result(
        str(root / run_dir), kind, metrics,
        dict(parse_pretrain_name(name), **pretrain))
    if time is not None:  # write_result stamps "now"; fix the order
        record = json.load(open(path))
        record['source']['time'] = time
        json.dump(record, open(path, 'w'))
    return path


def _sections(text: str) -> Dict[str, Dict[str, List[str]]]:
    """{section title: {row label: cells}} of the Markdown tables."""
    out: Dict[str, Dict[str, List[str]]] = {}
    for section in text.split('\n## ')[1:]:
        title, _, body = section.partition('\n')
        rows = [[c.strip() for c in line.strip('|').split('|')]
                for line in body.splitlines() if line.startswith('| ')]
        out[title.split(':')[0]] = {r[0]: r for r in rows[1:]}
    return out


def _collect(tool, root, *tables):
    args = argparse.Namespace(
        root=str(root), tables=list(tables or (1, 2, 3, 4, 5)), out=None)
    return tool.main(args)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / 'work_dirs'
    _write(
        root,
        'k9/knn',
        'knn', {
            'top1_k20': 70.8,
            'top1_k10': 71.0
        },
        T_K9_100E,
        checkpoint_epoch=100)
    _write(root, 'k9/linear', 'linear', {
        'top1': 74.3,
        'best_top1': 74.51
    }, T_K9_100E)
    # two k-NN results of one run: the newer one (earlier in path order)
    # wins
    _write(root, 'a_new/knn', 'knn', {'top1_k20': 58.0}, RN50_100E,
           '2026-06-01T00:00:00')
    _write(root, 'z_old/knn', 'knn', {'top1_k20': 50.0}, RN50_100E,
           '2026-01-01T00:00:00')
    _write(root, 'mask-rcnn/test', 'coco', {
        'coco/bbox_mAP': 0.466,
        'coco/segm_mAP': 0.41,
        'coco/segm_mAP_75': -1.0
    }, T_K9_300E)
    # an intermediate checkpoint of a paper run is not the paper's row
    _write(
        root,
        'k9_ep60/knn',
        'knn', {'top1_k20': 65.0},
        T_K9_100E,
        checkpoint_epoch=60)
    # the demo: DINO teacher against random init on the shapes data
    for name, run in ((DEMO_DINO, 'dino'), (DEMO_RANDOM, 'random')):
        good = name == DEMO_DINO
        _write(root, f'{run}/knn', 'knn', {'top1_k20': 90.0 if good else 60.0},
               name)
        _write(root, f'{run}/linear', 'linear', {
            'top1': 80.0,
            'best_top1': 85.5 if good else 58.0
        }, name)
        _write(root, f'{run}/corruption', 'corruption', {
            'mean_error': 41.2,
            'mCE': 80.1
        }, name)
        _write(root, f'{run}/test', 'coco', {
            'coco/bbox_mAP': 0.625,
            'coco/segm_mAP': 0.689
        }, name)
    _write(root, 'dino/linear_features', 'linear_features', {
        'top1': 87.0,
        'best_top1': 88.0
    }, DEMO_DINO)
    return root


def test_paper_rows_show_paper_measured_and_difference(tool, root):
    text = _collect(tool, root)
    tables = _sections(text)
    # Table 5: k-NN 70.3 in the paper; linear the best epoch's top-1
    row = tables['Table 5']['DINO 100 ep BC-SSL-T k9']
    assert row[1:7] == ['75.0', '74.5', '-0.5', '70.3', '70.8', '+0.5']
    assert row[7:9] == ['59.39', '-'] and row[-1] == 'partial'
    assert tables['Table 2']['BC-SSL-T k9 (w/ BN)'][1:] == [
        '75.01', '74.51', '-0.50', 'measured'
    ]
    # COCO AP x 100, and the -1 "no data" sentinel is not a number
    row = tables['Table 4']['DINO 300 ep BC-SSL-T k9']
    assert row[1:4] == ['46.6', '46.6', '+0.0']
    assert row[10:13] == ['41.6', '41.0', '-0.6']
    assert row[-4:] == ['44.5', '-', '-', 'partial']


def test_newest_result_wins_and_is_named(tool, root):
    text = _collect(tool, root, 1)
    row = _sections(text)['Table 1']['ResNet-50']
    assert row[4:7] == ['58.88', '58.00', '-0.88']
    note = next(line for line in text.splitlines()
                if 'the newest taken' in line)
    assert 'ResNet-50, k-NN: 2 results' in note
    assert note.index('a_new/knn') < note.index('z_old/knn')


def test_rows_not_run_and_quoted_only(tool, root):
    tables = _sections(_collect(tool, root))
    assert tables['Table 1']['Swin-T'][1:] == ['74.98', '-', '-'] + \
        ['69.72', '-', '-', 'not run']
    assert tables['Table 4']['EsViT 300 ep Swin-T'][-1] == 'quoted only'
    assert tables['Table 3']['MoCo v3 ViT-H-BN/16'][-1] == 'quoted only'


def test_runs_not_in_the_paper_one_row_per_run(tool, root):
    text = _collect(tool, root)
    others = _sections(text)['Runs not in the paper']
    assert set(others) == {
        DEMO_DINO, DEMO_RANDOM, f'{T_K9_100E} (checkpoint epoch 60)'
    }
    # k-NN, linear best / last, cached features, corruption, COCO
    assert others[DEMO_DINO][1:] == [
        '90.00', '85.50', '80.00', '88.00', '41.20', '80.10', '62.50', '68.90'
    ]
    assert others[DEMO_RANDOM][1:5] == ['60.00', '58.00', '80.00', '-']
    assert others[f'{T_K9_100E} (checkpoint epoch 60)'][1] == '65.00'
    # a paper run's result that no table shows is listed, not dropped
    assert re.search(r'`\S+k9/knn/knn.result.json` \(knn', text) is None
    assert _collect(tool, root, 1).count('k9/linear/linear.result.json') == 1


def test_no_tables_prints_only_the_demo_table(tool, root, tmp_path):
    out = tmp_path / 'results.md'
    args = argparse.Namespace(root=str(root), tables=[], out=str(out))
    text = tool.main(args)
    assert list(_sections(text)) == ['Runs not in the paper']
    assert out.read_text(encoding='utf-8') == text
    with pytest.raises(ValueError, match=r'--tables \[6\]'):
        tool.main(argparse.Namespace(root=str(root), tables=[6], out=None))


def test_empty_root_prints_every_row_not_run(tool, tmp_path):
    text = _collect(tool, tmp_path)
    assert f'No result files under `{tmp_path}`' in text
    tables = _sections(text)
    assert list(tables) == [f'Table {i}' for i in range(1, 6)]
    statuses = {row[-1] for t in tables.values() for row in t.values()}
    assert statuses == {'not run', 'quoted only'}


@pytest.mark.parametrize('broken', ['truncated', 'text metric'])
def test_corrupt_result_file_is_an_error_naming_it(tool, root, broken):
    bad = root / 'broken' / 'knn.result.json'
    if broken == 'truncated':
        bad.parent.mkdir()
        bad.write_text('{"schema": 1, "kind": "knn", ')
    else:
        bad = _write(root, 'broken', 'knn', {'top1_k20': 1.0}, RN50_100E)
        record = json.load(open(bad))
        record['metrics']['top1_k20'] = '58.0'
        json.dump(record, open(bad, 'w'))
    with pytest.raises(ResultFileError, match=re.escape(str(bad))):
        _collect(tool, root)


def test_mocov3_runs_next_to_dino_runs_of_their_backbone(tool, tmp_path):
    root = tmp_path / 'work_dirs'
    demo_mocov3 = 'mocov3_bcssl-atto-k9_1xb32-coslr-20e_shapes'
    rn50_dino = 'dino_resnet50_1xb32-coslr-10e_shapes'
    rn50_mocov3 = 'mocov3_resnet50_1xb32-coslr-10e_shapes'
    rn50_mocov3_in1k = 'mocov3_resnet50_8xb512-amp-coslr-100e_in1k'
    names = (DEMO_RANDOM, rn50_mocov3, demo_mocov3, rn50_mocov3_in1k,
             rn50_dino, DEMO_DINO, 'my-run')
    for i, name in enumerate(names):
        _write(root, f'{i}/knn', 'knn', {'top1_k20': 50. + i}, name)
    # a paper run (Table 1) stays in its paper table
    _write(root, 'paper/knn', 'knn', {'top1_k20': 60.}, RN50_100E)
    text = _collect(tool, root)
    others = text.split('## Runs not in the paper')[1]
    rows = [
        line.split('|')[1].strip() for line in others.splitlines()
        if line.startswith('| ')
    ][1:]
    # by backbone, then data, then name; a name without a backbone last
    assert rows == [
        DEMO_DINO, demo_mocov3, DEMO_RANDOM, rn50_mocov3_in1k, rn50_dino,
        rn50_mocov3, 'my-run'
    ]
    assert _sections(text)['Runs not in the paper'][demo_mocov3][1] == \
        '52.00'
    assert _sections(text)['Table 1']['ResNet-50'][5] == '60.00'
