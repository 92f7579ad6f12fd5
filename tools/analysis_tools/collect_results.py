"""Print the paper's Tables 1 to 5 next to the results measured here.

    python tools/analysis_tools/collect_results.py [--root work_dirs]
        [--tables 1 2 3 4 5] [--out results.md]

Reads every ``*.result.json`` that the evaluation tools wrote under
``--root`` (k-NN, linear probe, robustness, and tools/test.py's COCO AP; the
format is ``bcssl_mm/evaluation/results.py``'s) and matches each to the
paper's rows (``bcssl_mm/evaluation/paper_results.json``) by its pretraining
run: method, backbone, pretraining epochs and data. A result of an
intermediate checkpoint (``checkpoint_epoch`` short of the run's epochs)
matches no paper row. For each table it prints in Markdown the paper's
number, the measured one and the difference (measured - paper), and a status
per row: ``measured``, ``partial``, ``not run``, or ``quoted only`` for rows
the toolkit cannot produce. k-NN is top-1 at k = 20, linear the best epoch's
top-1 of the full protocol, COCO AP tools/test.py's ``coco/*_mAP`` x 100.
Where several results measure one cell the newest (``source.time``) is
taken, and a note says so.

Runs that no paper row names (the demo's, on the shapes data, and MoCo v3
runs of the toolkit's backbones) go to a last table, "Runs not in the
paper", one row per pretraining run, the runs of one backbone and data
next to each other (DINO, MoCo v3, random init): k-NN, linear
(best and last epoch), linear on cached features, corrupted-val error and
COCO AP. Paper runs' results that no printed table shows (a cached-feature
probe of a Table 1 run, say) are listed below it.
"""
import argparse
import decimal
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bcssl_mm.analysis import format_table
from bcssl_mm.evaluation.paper import (METRICS, PaperTable, RunKey,
                                       load_paper_tables)
from bcssl_mm.evaluation.results import ResultFileError, read_results

Result = Dict[str, Any]
NOT_RUN = 'not run'
QUOTED_ONLY = 'quoted only'

# the columns of "Runs not in the paper": (title, kinds in order of
# preference, metric key, scale to percent)
OTHER_COLUMNS = (
    ('k-NN top-1 (k=20)', ('knn', ), 'top1_k20', 1.),
    ('linear top-1 best', ('linear', ), 'best_top1', 1.),
    ('linear top-1 last', ('linear', ), 'top1', 1.),
    ('linear (cached features) top-1 best', ('linear_features', ), 'best_top1',
     1.),
    ('corrupted val mean error', ('corruption', 'imagenet_c'), 'mean_error',
     1.),
    ('corrupted val mCE', ('corruption', 'imagenet_c'), 'mCE', 1.),
    ('COCO bbox AP', ('coco', ), 'coco/bbox_mAP', 100.),
    ('COCO segm AP', ('coco', ), 'coco/segm_mAP', 100.),
)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The paper's Tables 1-5 against the results under a "
        'root, in Markdown')
    parser.add_argument(
        '--root',
        default='work_dirs',
        help='directory searched for *.result.json (default: work_dirs)')
    parser.add_argument(
        '--tables',
        type=int,
        nargs='*',
        default=[1, 2, 3, 4, 5],
        help='paper tables to print (default: 1 2 3 4 5; none: only the '
        'runs not in the paper)')
    parser.add_argument('--out', help='also write the Markdown to this file')
    return parser


def run_key(pretrain: Dict[str, Any]) -> Optional[RunKey]:
    """The paper-row key of a result's ``pretrain`` entry, or None.

    None for runs whose name does not give all four parts, and for
    intermediate checkpoints: the paper's rows are finished runs.
    """
    parts = [pretrain.get(k) for k in ('method', 'backbone', 'epochs', 'data')]
    if any(p is None for p in parts):
        return None
    ckpt_epoch = pretrain.get('checkpoint_epoch')
    if ckpt_epoch is not None and ckpt_epoch != pretrain['epochs']:
        return None
    return tuple(parts)


def run_label(pretrain: Dict[str, Any]) -> str:
    """A run's row heading: its name, and the checkpoint's epoch where it
    is not the run's last."""
    label = pretrain['name']
    ckpt_epoch = pretrain.get('checkpoint_epoch')
    if ckpt_epoch is not None and ckpt_epoch != pretrain.get('epochs'):
        label += f' (checkpoint epoch {ckpt_epoch})'
    return label


def newest(results: Sequence[Result]) -> Tuple[Result, List[Result]]:
    """The result written last (``source.time``, then path) and the
    others, newest first."""
    ordered = sorted(
        results,
        key=lambda r: (str(r.get('source', {}).get('time', '')), r['path']),
        reverse=True)
    return ordered[0], ordered[1:]


def pick(results: Sequence[Result], kinds: Sequence[str], key: str, where: str,
         notes: List[str]) -> Optional[Result]:
    """The newest result of the first of ``kinds`` that has metric ``key``;
    a note in ``notes`` names it when others were passed over."""
    for kind in kinds:
        found = [
            r for r in results if r['kind'] == kind and key in r['metrics']
        ]
        if not found:
            continue
        chosen, others = newest(found)
        if others:
            older = ', '.join(f'`{r["path"]}`' for r in others)
            notes.append(
                f'- {where}: {len(found)} results, the newest taken: '
                f'`{chosen["path"]}` ({chosen["source"].get("time", "?")}); '
                f'older: {older}')
        return chosen
    return None


def value_of(result: Optional[Result], key: str,
             scale: float) -> Optional[float]:
    """A metric in the paper's unit; None if absent, or COCO's "no data"
    -1."""
    if result is None:
        return None
    value = result['metrics'][key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultFileError(f'{result["path"]}: metric {key!r} is '
                              f'{value!r}, not a number')
    return None if value < 0 else value * scale


def decimals(values: Sequence[Optional[float]]) -> int:
    """As many decimals as the paper prints in a column (at least 1)."""
    places = [
        -decimal.Decimal(repr(float(v))).as_tuple().exponent for v in values
        if v is not None
    ]
    return max(places + [1])


def fmt(value: Optional[float], places: int, sign: bool = False) -> str:
    if value is None:
        return '-'
    return f'{value:+.{places}f}' if sign else f'{value:.{places}f}'


def paper_table(table: PaperTable, by_key: Dict[RunKey, List[Result]]) -> str:
    """One paper table in Markdown, paper / measured / difference per
    metric."""
    header = ['row']
    for name in table.metrics:
        title = METRICS[name].title
        header += [f'{title} paper', f'{title} measured', f'{title} Δ']
    header.append('status')
    places = {
        name: decimals([row.paper[name] for row in table.rows])
        for name in table.metrics
    }
    rows, notes = [], []
    for row in table.rows:
        results = by_key.get(row.key, [])
        cells: List[str] = [row.label]
        measured = 0
        for name in table.metrics:
            metric = METRICS[name]
            chosen = pick(results, (metric.kind, ), metric.key,
                          f'{row.label}, {metric.title}', notes)
            value = value_of(chosen, metric.key, metric.scale)
            if value is not None:  # the difference of the printed numbers
                value = round(value, places[name])
            paper = row.paper[name]
            diff = None if value is None or paper is None else value - paper
            measured += value is not None
            cells += [
                fmt(paper, places[name]),
                fmt(value, places[name]),
                fmt(diff, places[name], sign=True)
            ]
        if measured == len(table.metrics):
            status = 'measured'
        elif measured:
            status = 'partial'
        else:
            status = QUOTED_ONLY if row.quoted_only else NOT_RUN
        rows.append(cells + [status])
    quoted = [row for row in table.rows if row.quoted_only]
    notes += [
        f'- {QUOTED_ONLY}, {row.label}: {row.quoted_only}.' for row in quoted
    ]
    text = format_table(
        header,
        rows,
        align=['<'] + ['>'] * (len(header) - 2) + ['<'],
        style='markdown',
        notes=notes)
    return f'## Table {table.number}: {table.title}\n\n{text}'


def other_runs_table(results: Sequence[Result]) -> str:
    """"Runs not in the paper": one row per pretraining run, the runs of one
    backbone and data together (DINO next to MoCo v3 and random init), then
    by name; runs whose name gives no backbone last."""
    runs: Dict[str, List[Result]] = {}
    for result in results:
        runs.setdefault(run_label(result['pretrain']), []).append(result)

    def order(label: str) -> Tuple[bool, str, str, str]:
        pretrain = runs[label][0]['pretrain']
        backbone = pretrain.get('backbone')
        return (backbone is None, str(backbone
                                      or ''), str(pretrain.get('data',
                                                               '')), label)

    header = ['run'] + [c[0] for c in OTHER_COLUMNS]
    rows, notes = [], []
    for label in sorted(runs, key=order):
        cells = [label]
        for title, kinds, key, scale in OTHER_COLUMNS:
            chosen = pick(runs[label], kinds, key, f'{label}, {title}', notes)
            cells.append(fmt(value_of(chosen, key, scale), 2))
        rows.append(cells)
    notes.insert(
        0, 'linear: the full protocol (kind `linear`); cached features: '
        'the fast path on centre-crop features (kind `linear_features`); '
        'corrupted val: the corruption tool\'s set (kind `corruption`), '
        'else ImageNet-C; mCE in the paper\'s x100 unit.')
    text = format_table(
        header,
        rows,
        align=['<'] + ['>'] * len(OTHER_COLUMNS),
        style='markdown',
        notes=notes)
    return f'## Runs not in the paper\n\n{text}'


def collect(results: Sequence[Result],
            tables: Sequence[PaperTable],
            all_tables: Optional[Sequence[PaperTable]] = None,
            root: str = 'work_dirs') -> str:
    """The Markdown report of ``results`` against the paper's ``tables``.

    Args:
        results (Sequence[dict]): Records of ``results.read_results``.
        tables (Sequence[PaperTable]): The tables to print.
        all_tables (Sequence[PaperTable], optional): Every table of the
            paper, which decides whether a run is "in the paper". Defaults
            to ``tables``.
        root (str): Where the results were read, for the heading.

    Returns:
        str: Markdown, one section per table.
    """
    all_tables = tables if all_tables is None else all_tables
    paper_keys = {row.key for t in all_tables for row in t.rows}
    by_key: Dict[RunKey, List[Result]] = {}
    others = []
    for result in results:
        key = run_key(result['pretrain'])
        if key in paper_keys:
            by_key.setdefault(key, []).append(result)
        else:
            others.append(result)

    if results:
        intro = (f'{len(results)} result files under `{root}`, matched to '
                 'the paper by pretraining run (method, backbone, epochs, '
                 'data).')
    else:
        intro = (f'No result files under `{root}`: every row is not run '
                 'yet.')
    sections = [
        '# BC-SSL (arXiv 2312.05695): the paper against this toolkit',
        f'{intro} Δ = measured - paper. k-NN: top-1 at k = 20; linear: '
        'the best epoch\'s top-1 of the full linear protocol; C: ImageNet-C '
        'mCE (lower is better); COCO AP: tools/test.py\'s `coco/*_mAP` x '
        '100. Paper numbers: `bcssl_mm/evaluation/paper_results.json` '
        '(each row names its table and row in the paper).'
    ]
    sections += [paper_table(t, by_key) for t in tables]
    if others:
        sections.append(other_runs_table(others))

    shown = {(row.key, METRICS[m].kind)
             for t in tables for row in t.rows for m in t.metrics}
    hidden = [
        r for key, rs in by_key.items() for r in rs
        if (key, r['kind']) not in shown
    ]
    if hidden:
        sections.append(
            'Results of paper runs that no table above shows:\n\n' +
            '\n'.join(f'- `{r["path"]}` ({r["kind"]}, '
                      f'{r["pretrain"]["name"]})'
                      for r in sorted(hidden, key=lambda r: r['path'])))
    return '\n\n'.join(sections) + '\n'


def main(args: argparse.Namespace) -> str:
    all_tables = load_paper_tables()
    numbers = [t.number for t in all_tables]
    unknown = sorted(set(args.tables) - set(numbers))
    if unknown:
        raise ValueError(f'--tables {unknown}: the paper tables are '
                         f'{numbers}')
    tables = [t for t in all_tables if t.number in args.tables]
    results = read_results(args.root)
    text = collect(results, tables, all_tables, root=args.root)
    print(text, end='')
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text)
        print(f'written to {osp.abspath(args.out)}', file=sys.stderr)
    return text


if __name__ == '__main__':
    try:
        main(get_args_parser().parse_args())
    except (FileNotFoundError, ResultFileError, ValueError) as e:
        raise SystemExit(f'error: {e}')
