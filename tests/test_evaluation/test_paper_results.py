"""The paper's numbers in bcssl_mm/evaluation/paper_results.json equal the
tables of docs/recipes.md, read from the Markdown (not retyped here)."""
import json
import re
from typing import Dict, List, Optional, Tuple

import pytest

from bcssl_mm.evaluation.paper import (METRICS, PAPER_RESULTS_FILE,
                                       PaperDataError, load_paper_tables)
from bcssl_mm.evaluation.results import KINDS, parse_pretrain_name
from conftest import ROOT

RECIPES = (ROOT / 'docs' / 'recipes.md').read_text()


def _recipe_table(number: int) -> List[List[str]]:
    """The cells of the Markdown table under "Table N (" in recipes.md."""
    start = RECIPES.index(f'\nTable {number} (')
    lines = RECIPES[start:].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith('|'))
    rows = []
    for line in lines[first:]:
        if not line.startswith('|'):
            break
        rows.append([c.strip() for c in line.strip('|').split('|')])
    return rows[2:]  # no header, no rule


def _num(cell: str) -> Optional[float]:
    return None if cell == '-' else float(cell)


def _kernel(cell: str) -> Optional[int]:
    return None if cell == '-' else int(cell)


def _method_epochs(cell: str) -> Tuple[str, int]:
    """'DINO, 100 ep' / 'DINO 100 ep' / 'supervised, 300 ep'."""
    match = re.fullmatch(r'(\w+),? (\d+) ep', cell)
    return match[1].lower(), int(match[2])


@pytest.fixture(scope='module')
def tables():
    return {t.number: t for t in load_paper_tables()}


def _find(rows, **fields):
    found = [
        r for r in rows if all(getattr(r, k) == v for k, v in fields.items())
    ]
    assert len(found) == 1, (fields, found)
    return found[0]


def test_every_row_has_a_source_and_a_run(tables):
    assert sorted(tables) == [1, 2, 3, 4, 5]
    for number, table in tables.items():
        assert all(METRICS[m].kind in KINDS for m in table.metrics)
        for row in table.rows:
            assert row.source.startswith(f'Table {number}, row ')
            # the run key is what parse_pretrain_name reads from a config
            name = (f'{row.method}_{row.backbone}_8xb64-amp-coslr-'
                    f'{row.epochs}e_{row.data}')
            assert parse_pretrain_name(name)['backbone'] == row.backbone
    quoted = {(t, r.label)
              for t in tables for r in tables[t].rows if r.quoted_only}
    assert quoted == {(3, 'MoCo v3 ViT-H-BN/16'),
                      (4, 'supervised 300 ep Swin-T'),
                      (4, 'supervised 300 ep ConvNeXt-T k7'),
                      (4, 'EsViT 300 ep Swin-T')}


def test_tables_1_3_4_5_equal_recipes(tables):
    for model, kernel, params, linear, knn in _recipe_table(1):
        row = _find(tables[1].rows, model=model, kernel=_kernel(kernel))
        assert row.paper == {'linear': _num(linear), 'knn': _num(knn)}
        assert row.info['params_m'] == int(params)
    recipe = _recipe_table(3)
    for method, model, params, throughput, linear, knn in recipe:
        row = _find(
            tables[3].rows,
            method=method.replace(' ', '').lower(),
            model=model)
        assert row.paper == {'linear': _num(linear), 'knn': _num(knn)}
        assert row.info == {'params_m': int(params), 'throughput': throughput}
    # the paper's DINO ViT-B/16 row is the one recipes.md leaves out
    extra = {r.label
             for r in tables[3].rows} - {
                 _find(
                     tables[3].rows,
                     method=m.replace(' ', '').lower(),
                     model=mod).label
                 for m, mod, *_ in recipe
             }
    assert extra == {'DINO ViT-B/16'}
    assert len(tables[4].rows) == len(_recipe_table(4))
    for pretraining, model, kernel, box, mask in _recipe_table(4):
        method, epochs = _method_epochs(pretraining)
        row = _find(
            tables[4].rows,
            method=method,
            epochs=epochs,
            model=model,
            kernel=_kernel(kernel))
        values = [_num(v) for v in f'{box} / {mask}'.split(' / ')]
        assert [row.paper[m] for m in tables[4].metrics] == values
    assert len(tables[5].rows) == len(_recipe_table(5))
    for pretraining, model, kernel, cost, *values in _recipe_table(5):
        method, epochs = _method_epochs(pretraining)
        row = _find(
            tables[5].rows,
            method=method,
            epochs=epochs,
            model=model,
            kernel=_kernel(kernel))
        assert [row.paper[m] for m in tables[5].metrics] == \
            [_num(v) for v in values]
        gflops, params = cost.split(' / ')
        assert row.info == {'gflops': _num(gflops), 'params_m': int(params)}


def test_table_2_equals_recipes(tables):
    text = ' '.join(RECIPES[RECIPES.index('\nTable 2 ('):].split())
    match = re.match(
        r'Table 2 \(.*?kernel size ([\d /]+)\): ConvNeXt-T without BN '
        r'([\d. /]+); with BN after the depthwise conv ([\d. /]+)\.', text)
    kernels = [int(k) for k in match[1].split(' / ')]
    rows = (('ConvNeXt-T w/o BN', match[2].split(' / ')),
            ('ConvNeXt-T w/ BN', match[3].split(' / ')))
    for model, values in rows:
        assert len(values) == len(kernels) == 5
        for kernel, value in zip(kernels, values):
            row = _find(tables[2].rows, model=model, kernel=kernel)
            assert row.paper == {'linear': float(value)}
    assert len(tables[2].rows) == 2 * len(kernels)


def test_malformed_paper_data_is_an_error_naming_the_row(tmp_path):
    data = json.loads(open(PAPER_RESULTS_FILE).read())
    del data['tables'][4]['rows'][6]['source']
    path = tmp_path / 'paper.json'
    path.write_text(json.dumps(data))
    with pytest.raises(PaperDataError) as e:
        load_paper_tables(str(path))
    msg = str(e.value)
    assert str(path) in msg and '(Table 5) row 6' in msg
    assert "'source'" in msg


def test_rows_of_one_table_name_distinct_runs(tmp_path):
    data = json.loads(open(PAPER_RESULTS_FILE).read())
    rows: List[Dict] = data['tables'][0]['rows']
    rows[1]['backbone'] = rows[0]['backbone']
    path = tmp_path / 'paper.json'
    path.write_text(json.dumps(data))
    with pytest.raises(PaperDataError, match='two rows for one run'):
        load_paper_tables(str(path))
