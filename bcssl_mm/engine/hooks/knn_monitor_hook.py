"""k-NN accuracy of the teacher during pretraining, every few epochs."""
import time
from typing import Optional

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from bcssl_mm.evaluation.features import (build_dataset, build_preprocessor,
                                          dataset_labels, extract_features)
from bcssl_mm.evaluation.knn import TEMPERATURE, knn_classify
from .rng_state_hook import get_rng_state, set_rng_state


def monitored_backbone(model: nn.Module) -> nn.Module:
    """The backbone to evaluate: the teacher's for an algorithm with a
    ``teacher.backbone`` (DINO), else ``backbone``; DDP is unwrapped."""
    if is_model_wrapper(model):
        model = model.module
    teacher = getattr(model, 'teacher', None)
    if isinstance(teacher, nn.ModuleDict) and 'backbone' in teacher:
        return teacher['backbone']
    if teacher is not None and hasattr(teacher, 'backbone'):
        return teacher.backbone
    return model.backbone


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Log the weighted k-NN top-1 of the teacher backbone every
    ``interval`` epochs.

    The k-NN of :mod:`bcssl_mm.evaluation.knn` (DINO's protocol) runs on a
    labelled bank and query set, usually a held-out labelled set; the
    BC-SSL paper monitors ImageNet k-NN every 20 epochs (Appendix A.1,
    Fig. 3, https://arxiv.org/abs/2312.05695). Features come from the
    backbone in eval mode (running BN statistics), which is put back in its
    mode afterwards; under DDP each process extracts its shard and every
    process gets the same result. The top-1 is logged, stored as the message
    hub scalar ``knn/top1`` (and ``knn/top5``) and written to the
    visualizer's backends with the epoch as step. The datasets are built
    before training, so a wrong data root fails at once.

    The hook does nothing unless it is in ``custom_hooks``, and when it runs
    it leaves the training run unchanged: the RNG states (Python, numpy,
    torch) are restored after each evaluation, since building its data
    loaders draws from torch's generator, which would otherwise shift every
    later crop and drop-path draw of the run.

    Args:
        data (dict): ``preprocessor`` (mean, std, to_rgb), ``bank`` and
            ``query`` dataset configs, e.g. ``knn_data`` of
            ``configs/_base_/datasets/{imagenet,shapes_cls}_knn.py``.
        interval (int): Epochs between evaluations. Defaults to 20.
        at_end (bool): Also evaluate after the last epoch. Defaults to True.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.
        batch_size (int): Images per forward. Defaults to 64.
        num_workers (int): Data-loading processes. Defaults to 0.
        query_chunk (int): k-NN queries per block. Defaults to 1024.
        bank_chunk (int): k-NN bank items per block. Defaults to 65536.

    Attributes:
        history (list[dict]): ``epoch``, ``top1`` and ``top5`` of every
            evaluation of this run.
    """

    priority = 'LOW'

    def __init__(self,
                 data: dict,
                 interval: int = 20,
                 at_end: bool = True,
                 k: int = 20,
                 temperature: float = TEMPERATURE,
                 batch_size: int = 64,
                 num_workers: int = 0,
                 query_chunk: int = 1024,
                 bank_chunk: int = 65536) -> None:
        missing = [key for key in ('bank', 'query') if key not in data]
        if missing:
            raise KeyError(f'KNNMonitorHook: data has no {missing} dataset '
                           'config(s)')
        if interval < 1:
            raise ValueError(
                f'KNNMonitorHook: interval must be >= 1, got {interval}')
        self.data = data
        self.interval = interval
        self.at_end = at_end
        self.k = k
        self.temperature = temperature
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.query_chunk = query_chunk
        self.bank_chunk = bank_chunk
        self.history = []

    def before_train(self, runner) -> None:
        self.bank = build_dataset(self.data['bank'])
        self.query = build_dataset(self.data['query'])
        self.bank_labels, classes = dataset_labels(self.bank)
        self.query_labels, query_classes = dataset_labels(self.query)
        if query_classes != classes:
            raise ValueError('KNNMonitorHook: the query classes '
                             f'{query_classes} differ from the bank classes '
                             f'{classes}')
        self.num_classes = len(classes)
        if self.k > len(self.bank):
            raise ValueError(f'KNNMonitorHook: k = {self.k} is larger than '
                             f'the bank ({len(self.bank)} images)')
        self.preprocessor = build_preprocessor(
            self.data.get('preprocessor', {}))

    def after_train_epoch(self, runner) -> None:
        if self.every_n_epochs(runner, self.interval) or (
                self.at_end and self.is_last_train_epoch(runner)):
            self.evaluate(runner)

    def evaluate(self, runner) -> Optional[float]:
        """Run the k-NN now; log and return the top-1 (%)."""
        start = time.perf_counter()
        backbone = monitored_backbone(runner.model)
        device = next(backbone.parameters()).device
        extract = dict(
            backbone=backbone,
            preprocessor=self.preprocessor,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            device=device)
        rng_state = get_rng_state()
        try:
            bank = extract_features(dataset=self.bank, **extract)
            query = extract_features(dataset=self.query, **extract)
        finally:
            set_rng_state(rng_state)
        metrics = knn_classify(
            bank,
            self.bank_labels,
            query,
            self.query_labels,
            self.num_classes,
            ks=[self.k],
            temperature=self.temperature,
            query_chunk=self.query_chunk,
            bank_chunk=self.bank_chunk)
        top1, top5 = metrics[f'top1_k{self.k}'], metrics[f'top5_k{self.k}']
        epoch = runner.epoch + 1
        runner.message_hub.update_scalar('knn/top1', top1)
        runner.message_hub.update_scalar('knn/top5', top5)
        runner.visualizer.add_scalars({
            'knn/top1': top1,
            'knn/top5': top5
        },
                                      step=epoch)
        seconds = time.perf_counter() - start
        runner.logger.info(
            f'Epoch(knn) [{epoch}] knn/top1: {top1:.2f}  knn/top5: '
            f'{top5:.2f}  (k={self.k}, T={self.temperature}, bank '
            f'{len(self.bank)}, queries {len(self.query)}, {seconds:.1f} s)')
        self.history.append(dict(epoch=epoch, top1=top1, top5=top5))
        return top1
