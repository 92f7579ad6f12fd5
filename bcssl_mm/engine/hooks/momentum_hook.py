"""The cosine momentum schedule of a momentum encoder (DINO's teacher, MoCo
v3's key encoder) and what every such run needs from a hook."""
import math
from typing import List

import torch
import torch.nn as nn
from mmengine.dist import all_reduce_params, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.nn.modules.batchnorm import _BatchNorm


def cosine_momentum(it: int,
                    total: int,
                    base: float = 0.996,
                    end: float = 1.) -> float:
    """``end - (end - base) * (cos(pi * it / total) + 1) / 2``: the cosine
    schedule from ``base`` at iteration 0 towards ``end`` of DINO's teacher
    and MoCo v3's momentum encoder (``adjust_moco_momentum`` with
    ``epoch + i / iters_per_epoch``, i.e. ``it / total``)."""
    return end - (end - base) * (math.cos(math.pi * it / total) + 1) / 2


def plain_bn_running_stats(model: nn.Module) -> List[torch.Tensor]:
    """``running_mean`` and ``running_var`` of the plain (not SyncBN)
    BatchNorm layers of ``model``: the statistics that differ between
    processes."""
    return [
        buf for m in model.modules() if isinstance(m, _BatchNorm)
        and not isinstance(m, nn.SyncBatchNorm) and m.track_running_stats
        for buf in (m.running_mean, m.running_var)
    ]


class MomentumScheduleHook(Hook):
    """Base of the hooks that drive a momentum encoder.

    It holds the cosine momentum schedule (:func:`cosine_momentum`, a
    function of the runner's iteration, so a resumed run continues it
    exactly) and, with plain BN (not SyncBN) on several processes, averages
    the BN running statistics of the whole model (online network and
    momentum encoder) over the processes after every step, so that all
    ranks hold, and rank 0 saves, the same statistics (mmengine's DDP
    wrapper does not broadcast buffers). Training itself is unchanged: the
    networks normalise with batch statistics. As the running statistics are
    exponential moving averages, a linear map of the batch statistics,
    averaging them every step gives the average over processes of what each
    process would have kept (for the variance: the mean of the per-process
    variances, not the variance of all processes' batches that SyncBN would
    track); the cost is one all-reduce of a few thousand numbers per step.

    Args:
        momentum (float): Momentum at iteration 0.
        end_momentum (float): Momentum reached at the end. Defaults to 1.
    """

    priority = 'NORMAL'

    def __init__(self, momentum: float, end_momentum: float = 1.) -> None:
        if not 0. <= momentum <= end_momentum <= 1.:
            raise ValueError(
                f'{type(self).__name__}: need 0 <= momentum <= end_momentum '
                f'<= 1, got {momentum!r}, {end_momentum!r}')
        self.momentum = momentum
        self.end_momentum = end_momentum
        self._bn_stats: List[torch.Tensor] = []

    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def current_momentum(self, runner) -> float:
        """The momentum of the iteration ``runner.iter``."""
        return cosine_momentum(runner.iter, runner.max_iters, self.momentum,
                               self.end_momentum)

    def before_train(self, runner) -> None:
        self._bn_stats = (
            plain_bn_running_stats(self._model(runner))
            if get_world_size() > 1 else [])

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if self._bn_stats:
            all_reduce_params(self._bn_stats, op='mean')
