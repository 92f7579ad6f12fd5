"""DINO's per-iteration schedules and the teacher's EMA update."""
import math
from typing import List

import torch
import torch.nn as nn
from mmengine.dist import all_reduce_params, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm

from bcssl_mm.models.algorithms import TEACHER_TEMP_KEY


def teacher_momentum(it: int,
                     total: int,
                     base: float = 0.996,
                     end: float = 1.) -> float:
    """``end - (end - base) * (cos(pi * it / total) + 1) / 2``: DINO's
    cosine schedule from ``base`` at iteration 0 towards ``end``."""
    return end - (end - base) * (math.cos(math.pi * it / total) + 1) / 2


def teacher_temperature(epoch: int,
                        warmup_temp: float = 0.04,
                        temp: float = 0.07,
                        warmup_epochs: int = 30) -> float:
    """Linear from ``warmup_temp`` at epoch 0 to ``temp`` at epoch
    ``warmup_epochs - 1``, then ``temp``: official DINO's
    ``np.linspace(warmup_temp, temp, warmup_epochs)`` indexed by epoch."""
    if epoch >= warmup_epochs:
        return temp
    if warmup_epochs == 1:
        return temp
    return warmup_temp + (temp - warmup_temp) * epoch / (warmup_epochs - 1)


def plain_bn_running_stats(model: nn.Module) -> List[torch.Tensor]:
    """``running_mean`` and ``running_var`` of the plain (not SyncBN)
    BatchNorm layers of ``model``: the statistics that differ between
    processes."""
    return [
        buf for m in model.modules() if isinstance(m, _BatchNorm)
        and not isinstance(m, nn.SyncBatchNorm) and m.track_running_stats
        for buf in (m.running_mean, m.running_var)
    ]


@HOOKS.register_module()
class DINOHook(Hook):
    """Drives DINO's schedules and the teacher update during training.

    Every iteration, before the step: stores the teacher temperature of the
    epoch as message hub runtime info ``'teacher_temp'``, which
    :meth:`DINO.forward` passes to the loss as an argument, and, during the
    first ``freeze_last_layer_epochs`` epochs, hands the projection head's
    last layer to the optimizer wrapper as frozen (its gradients are
    dropped). After the step: updates the teacher with the momentum of that
    iteration. All values are functions of the runner's epoch and iteration,
    so a resumed run continues the schedules exactly. Paper:
    https://arxiv.org/abs/2104.14294; values of docs/recipes.md §2.

    With plain BN (not SyncBN) on several processes, it also averages the
    BN running statistics of student and teacher over the processes after
    every step, so that all ranks hold, and rank 0 saves, the same
    statistics (mmengine's DDP wrapper does not broadcast buffers). Training
    itself is unchanged: both networks run in train mode and normalise with
    batch statistics. As the running statistics are exponential moving
    averages, a linear map of the batch statistics, averaging them every
    step gives the average over processes of what each process would have
    kept (for the variance: the mean of the per-process variances, not the
    variance of all processes' batches that SyncBN would track); the cost is
    one all-reduce of a few thousand numbers per step.

    Needs a :class:`DINO` model, an epoch-based loop and a
    ``DINOOptimWrapper`` / ``DINOAmpOptimWrapper``.

    Args:
        momentum (float): Teacher momentum at iteration 0. Defaults to 0.996.
        end_momentum (float): Momentum reached at the end. Defaults to 1.
        warmup_teacher_temp (float): Teacher temperature at epoch 0.
            Defaults to 0.04.
        teacher_temp (float): Teacher temperature after the warm-up.
            Defaults to 0.07.
        warmup_teacher_temp_epochs (int): Warm-up epochs. Defaults to 30.
        freeze_last_layer_epochs (int): Epochs during which the last layer
            gets no update. Defaults to 1.
    """

    priority = 'NORMAL'

    def __init__(self,
                 momentum: float = 0.996,
                 end_momentum: float = 1.,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.07,
                 warmup_teacher_temp_epochs: int = 30,
                 freeze_last_layer_epochs: int = 1) -> None:
        if not 0. <= momentum <= end_momentum <= 1.:
            raise ValueError('DINOHook: need 0 <= momentum <= end_momentum '
                             f'<= 1, got {momentum!r}, {end_momentum!r}')
        self.momentum = momentum
        self.end_momentum = end_momentum
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        self._bn_stats: List[torch.Tensor] = []

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not hasattr(model, 'update_teacher'):
            raise TypeError('DINOHook (custom_hooks) needs a DINO model, got '
                            f'model.type {type(model).__name__}')
        if not hasattr(runner.optim_wrapper, 'frozen_params'):
            raise TypeError(
                'DINOHook needs optim_wrapper.type DINOOptimWrapper or '
                'DINOAmpOptimWrapper (last-layer freezing, per-tensor '
                f'clipping), got {type(runner.optim_wrapper).__name__}')
        self._bn_stats = (
            plain_bn_running_stats(model) if get_world_size() > 1 else [])

    def current_momentum(self, runner) -> float:
        return teacher_momentum(runner.iter, runner.max_iters, self.momentum,
                                self.end_momentum)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        model = self._model(runner)
        temp = teacher_temperature(runner.epoch, self.warmup_teacher_temp,
                                   self.teacher_temp,
                                   self.warmup_teacher_temp_epochs)
        # recomputed every iteration, so not restored from a checkpoint
        runner.message_hub.update_info(TEACHER_TEMP_KEY, temp, resumed=False)
        runner.message_hub.update_scalar('train/teacher_temp', temp)
        if runner.epoch < self.freeze_last_layer_epochs:
            runner.optim_wrapper.frozen_params = [
                p for p in model.neck.last_layer.parameters()
                if p.requires_grad
            ]
        else:
            runner.optim_wrapper.frozen_params = []

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        # runner.iter is still the index of the iteration just run
        momentum = self.current_momentum(runner)
        self._model(runner).update_teacher(momentum)
        if self._bn_stats:
            all_reduce_params(self._bn_stats, op='mean')
        runner.message_hub.update_scalar('train/teacher_momentum', momentum)
