"""Warn when a linear lr warm-up is too short or too long to do its job."""
from typing import List

from mmengine.hooks import Hook
from mmengine.optim import LinearLR
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LRWarmupCheckHook(Hook):
    """Check each ``LinearLR`` of the built schedule before training.

    mmengine's ``LinearLR`` with ``n = end - begin`` steps multiplies the lr
    by ``start_factor + (end_factor - start_factor) * k / n`` at step
    ``k < n``, and a chained scheduler after it (``CosineAnnealingLR``)
    continues from the lr it left. So the lr peaks at
    ``start + (end - start) * (n - 1) / n`` times its configured value: with
    one iteration per epoch and a one-epoch warm-up (``n = 1``) it stays at
    ``start_factor`` (5e-13 for DINO) for the whole run. Whether that happens
    depends on the dataset size, known only once the dataloader is built, so
    this is a hook; ``tools/train.py`` adds it to every run.

    Args:
        min_peak (float): Warn when the warm-up reaches less than this
            fraction of its ``end_factor``. Defaults to 0.5.
    """

    priority = 'VERY_LOW'

    def __init__(self, min_peak: float = 0.5) -> None:
        self.min_peak = min_peak
        self.warnings: List[str] = []

    def before_train(self, runner) -> None:
        schedulers = runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for sched in schedulers:
            if not isinstance(sched, LinearLR):
                continue
            unit = 'epoch' if sched.by_epoch else 'iteration'
            steps = sched.end - sched.begin
            total = runner.max_epochs if sched.by_epoch else runner.max_iters
            reached = sched.start_factor + (
                sched.end_factor - sched.start_factor) * (steps - 1) / steps
            if sched.begin == 0 and sched.end >= total:
                self._warn(
                    runner, f'the LinearLR lr warm-up lasts the whole run '
                    f'({total} {unit}s): the lr never reaches its '
                    'configured value')
            elif reached < self.min_peak * sched.end_factor:
                self._warn(
                    runner, f'the LinearLR lr warm-up lasts {steps} {unit}(s) '
                    f'({len(runner.train_dataloader)} iteration(s) per '
                    f'epoch), so the lr peaks at {reached:.3g} x its '
                    'configured value and the schedule after it continues '
                    'from there: use more warm-up epochs or a larger '
                    'dataset (fewer GPUs / a smaller batch)')

    def _warn(self, runner, message: str) -> None:
        self.warnings.append(message)
        runner.logger.warning(message)
