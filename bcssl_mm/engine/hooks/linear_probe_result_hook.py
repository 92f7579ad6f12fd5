"""Record the linear probe's accuracy each epoch; write last and best."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from bcssl_mm.analysis.table import format_table
from bcssl_mm.evaluation.results import (backbone_init_checkpoint,
                                         pretrain_from_checkpoint,
                                         write_result)

HISTORY_FILE = 'linear.history.json'


@HOOKS.register_module()
class LinearProbeResultHook(Hook):
    """Keep the top-1 / top-5 of every validation; report last and best.

    The paper (https://arxiv.org/abs/2312.05695, §4.1) reports one linear
    accuracy; official DINO's ``eval_linear.py`` prints the best epoch's, a
    fixed-length protocol would take the last one. This hook keeps both:
    after each validation it appends the epoch's accuracies to
    ``<work_dir>/linear.history.json`` (so a resumed run keeps the epochs
    before it), and after training it writes ``<work_dir>/linear.result.json``
    (:func:`bcssl_mm.evaluation.results.write_result`, kind ``linear``) with
    ``top1``, ``top5`` (last validated epoch) and ``best_top1``,
    ``best_top5`` (the epoch of the highest top-1, the earliest of ties), and
    logs them as a table. ``top5`` keys are left out when the evaluator has
    no top-5 (fewer than 5 classes).

    Args:
        pretrain_name (str, optional): Names the pretraining run in the
            result (a config stem such as
            ``dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k``). By default it is
            read from the backbone checkpoint
            (``model.backbone.init_cfg.checkpoint``,
            :func:`~bcssl_mm.evaluation.results.pretrain_from_checkpoint`);
            give it for a backbone without one (random init).
        prefix (str): Prefix of the evaluator's metrics, ``accuracy`` for
            mmpretrain's ``Accuracy`` (``accuracy/top1``). Defaults to
            'accuracy'.
    """

    priority = 'LOW'

    def __init__(self,
                 pretrain_name: Optional[str] = None,
                 prefix: str = 'accuracy') -> None:
        self.pretrain_name = pretrain_name
        self.prefix = prefix
        self.history: List[Dict[str, float]] = []

    def before_train(self, runner) -> None:
        self.history = []
        path = osp.join(runner.work_dir, HISTORY_FILE)
        # a resumed run continues the history up to its checkpoint's epoch
        if runner.epoch > 0 and osp.isfile(path):
            with open(path) as f:
                self.history = [
                    r for r in json.load(f) if r['epoch'] <= runner.epoch
                ]

    def after_val_epoch(self,
                        runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        key = f'{self.prefix}/top1'
        if not metrics or key not in metrics:
            raise KeyError(f'LinearProbeResultHook: the validation metrics '
                           f'have no {key!r} (got {sorted(metrics or {})}); '
                           'set its prefix to the evaluator\'s')
        record = dict(epoch=runner.epoch, top1=float(metrics[key]))
        if f'{self.prefix}/top5' in metrics:
            record['top5'] = float(metrics[f'{self.prefix}/top5'])
        self.history = [r for r in self.history if r['epoch'] != runner.epoch
                        ] + [record]
        if is_main_process():
            path = osp.join(runner.work_dir, HISTORY_FILE)
            with open(f'{path}.tmp', 'w') as f:
                json.dump(self.history, f, indent=1)
            os.replace(f'{path}.tmp', path)

    def after_train(self, runner) -> None:
        if not self.history:
            raise RuntimeError(
                'LinearProbeResultHook: no validation ran, so there is no '
                'accuracy to report; validate at least once '
                '(train_cfg.val_interval <= max_epochs)')
        last = self.history[-1]
        # highest top-1; of equal ones the earliest
        best = max(self.history, key=lambda r: (r['top1'], -r['epoch']))
        metrics = {k: v for k, v in last.items() if k != 'epoch'}
        metrics.update(
            {f'best_{k}': v
             for k, v in best.items() if k != 'epoch'})
        checkpoint = backbone_init_checkpoint(runner.cfg)
        rows = [[
            name, r['epoch'], f'{r["top1"]:.2f}',
            f'{r["top5"]:.2f}' if 'top5' in r else None
        ] for name, r in (('last', last), ('best', best))]
        runner.logger.info(
            'linear probe accuracy (%):\n' +
            format_table(['', 'epoch', 'top-1', 'top-5'], rows, align='>'))
        if not is_main_process():
            return
        val_dataset = runner.cfg.get('val_dataloader', {}).get('dataset', {})
        path = write_result(
            runner.work_dir,
            'linear',
            metrics,
            pretrain_from_checkpoint(checkpoint, self.pretrain_name),
            source=dict(
                config=runner.cfg.filename,
                checkpoint=checkpoint,
                dataset=val_dataset.get('data_root'),
                last_epoch=last['epoch'],
                best_epoch=best['epoch']))
        runner.logger.info(f'linear probe result written to {path}')
