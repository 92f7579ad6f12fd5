"""The paper's Tables 1 to 5 as data, and the result that measures each
column.

``paper_results.json`` (next to this file, shipped as package data) holds
the numbers of BC-SSL (`arXiv 2312.05695 <https://arxiv.org/abs/2312.05695>`_)
as transcribed in ``docs/recipes.md`` §4 and §5. Each row names the
pretraining run that reproduces it in the vocabulary of the result files
(``method``, ``backbone``, ``epochs``, ``data``, as
:func:`~bcssl_mm.evaluation.results.parse_pretrain_name` reads them from a
config name such as ``dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k``), the
paper's value of each column (``null`` where the paper prints ``-``), and its
place in the paper (``source``: table and row). Rows that the toolkit cannot
produce (supervised pretraining, EsViT, MoCo v3 ViT-H-BN) say why in
``quoted_only``; results that match them are still shown. ``model`` and
``kernel`` repeat the paper's own row heading.

:data:`METRICS` maps each column to the result kind and metric key that
measure it (``results.py`` lists the keys each kind writes).
"""
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

PAPER_RESULTS_FILE = osp.join(osp.dirname(__file__), 'paper_results.json')


@dataclass(frozen=True)
class Metric:
    """A column of the paper's tables and the result that measures it.

    Args:
        title (str): Column title.
        kind (str): Result kind (``results.KINDS``) that holds the value.
        key (str): Metric key in that result.
        scale (float): Factor from the result's unit to the paper's: mmdet's
            COCO AP is a fraction, the paper's a percentage. Defaults to 1.
    """
    title: str
    kind: str
    key: str
    scale: float = 1.0


METRICS: Dict[str, Metric] = {
    # DINO's eval_linear.py reports the best epoch (docs/recipes.md §7)
    'linear': Metric('linear', 'linear', 'best_top1'),
    # k = 20, DINO's reported k, which the paper does not give
    # (docs/recipes.md §3)
    'knn': Metric('k-NN', 'knn', 'top1_k20'),
    # mean corruption error, lower is better
    'imagenet_c': Metric('C (mCE)', 'imagenet_c', 'mCE'),
    'imagenet_sketch': Metric('SK', 'imagenet_sketch', 'top1'),
    'imagenet_r': Metric('R', 'imagenet_r', 'top1'),
    'imagenet_a': Metric('A', 'imagenet_a', 'top1'),
    'box_ap': Metric('box AP', 'coco', 'coco/bbox_mAP', 100.),
    'box_ap50': Metric('box AP50', 'coco', 'coco/bbox_mAP_50', 100.),
    'box_ap75': Metric('box AP75', 'coco', 'coco/bbox_mAP_75', 100.),
    'mask_ap': Metric('mask AP', 'coco', 'coco/segm_mAP', 100.),
    'mask_ap50': Metric('mask AP50', 'coco', 'coco/segm_mAP_50', 100.),
    'mask_ap75': Metric('mask AP75', 'coco', 'coco/segm_mAP_75', 100.),
}

RunKey = Tuple[str, str, int, str]


class PaperDataError(ValueError):
    """A malformed paper-results file; the message names file and row."""


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table; see the module docstring for the fields."""
    table: int
    label: str
    model: str
    kernel: Optional[int]
    method: str
    backbone: str
    epochs: int
    data: str
    paper: Dict[str, Optional[float]]
    source: str
    quoted_only: Optional[str] = None
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> RunKey:
        """The pretraining run that reproduces the row."""
        return (self.method, self.backbone, self.epochs, self.data)


@dataclass(frozen=True)
class PaperTable:
    """A paper table: its number, title, columns (keys of
    :data:`METRICS`) and rows."""
    number: int
    title: str
    metrics: Tuple[str, ...]
    rows: Tuple[PaperRow, ...]


_ROW_FIELDS = {
    'label': str,
    'model': str,
    'method': str,
    'backbone': str,
    'epochs': int,
    'data': str,
    'paper': dict,
    'source': str
}


def _check_row(row: Any, number: int, metrics: Tuple[str, ...],
               where: str) -> PaperRow:
    if not isinstance(row, dict):
        raise PaperDataError(f'{where}: a row must be an object')
    for name, typ in _ROW_FIELDS.items():
        if not isinstance(row.get(name), typ) or row[name] in ('', {}):
            raise PaperDataError(f'{where}: {name!r} must be a non-empty '
                                 f'{typ.__name__}, got {row.get(name)!r}')
    where = f'{where} ({row["label"]!r})'
    if not row['source'].startswith(f'Table {number}, row '):
        raise PaperDataError(f'{where}: source {row["source"]!r} must '
                             f'start with "Table {number}, row "')
    if set(row['paper']) != set(metrics):
        raise PaperDataError(f'{where}: paper values for '
                             f'{sorted(row["paper"])}, the table has '
                             f'{sorted(metrics)}')
    for name, value in row['paper'].items():
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, (int, float))):
            raise PaperDataError(f'{where}: paper value {name!r} must be a '
                                 f'number or null, got {value!r}')
    unknown = set(row) - set(_ROW_FIELDS) - {'kernel', 'quoted_only', 'info'}
    if unknown:
        raise PaperDataError(f'{where}: unknown keys {sorted(unknown)}')
    return PaperRow(
        table=number,
        **{k: row[k]
           for k in _ROW_FIELDS},
        kernel=row.get('kernel'),
        quoted_only=row.get('quoted_only'),
        info=dict(row.get('info') or {}))


def load_paper_tables(path: str = PAPER_RESULTS_FILE) -> List[PaperTable]:
    """Read and check the paper's tables, in table order.

    Raises:
        PaperDataError: The file is not readable JSON, or a table or row
            lacks a field, names an unknown metric or has no source.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PaperDataError(f'{path}: not a readable JSON file ({e})')
    tables = data.get('tables') if isinstance(data, dict) else None
    if not isinstance(tables, list) or not tables:
        raise PaperDataError(f'{path}: expected {{"tables": [...]}}')
    out = []
    for i, table in enumerate(tables):
        where = f'{path}: tables[{i}]'
        if not isinstance(table, dict) or not isinstance(
                table.get('table'), int) or not table.get('title'):
            raise PaperDataError(f'{where}: needs "table" (int) and "title"')
        number = table['table']
        metrics = tuple(table.get('metrics') or ())
        unknown = [m for m in metrics if m not in METRICS]
        if not metrics or unknown:
            raise PaperDataError(f'{where}: metrics {list(metrics)}; each '
                                 f'one of {sorted(METRICS)}')
        rows = table.get('rows')
        if not isinstance(rows, list) or not rows:
            raise PaperDataError(f'{where}: no rows')
        checked = tuple(
            _check_row(row, number, metrics,
                       f'{where} (Table {number}) row {j}')
            for j, row in enumerate(rows))
        keys = [row.key for row in checked]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise PaperDataError(f'{where} (Table {number}): two rows for '
                                 f'one run {repeated}')
        out.append(PaperTable(number, table['title'], metrics, checked))
    numbers = [t.number for t in out]
    if len(set(numbers)) != len(numbers):
        raise PaperDataError(f'{path}: table numbers repeat: {numbers}')
    return out
