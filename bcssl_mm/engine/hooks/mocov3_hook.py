"""MoCo v3's per-iteration momentum schedule."""
from mmengine.registry import HOOKS

from bcssl_mm.models.algorithms import set_step_momentum
from .momentum_hook import MomentumScheduleHook


@HOOKS.register_module()
class MoCoV3Hook(MomentumScheduleHook):
    """Drives the momentum encoder of :class:`BCSSLMoCoV3`.

    Before every iteration it stores the momentum of that iteration,
    ``1 - (1 - m0) * (1 + cos(pi * it / total)) / 2`` (official MoCo v3's
    ``adjust_moco_momentum`` per iteration), as message hub runtime info
    ``'momentum'``, which :meth:`BCSSLMoCoV3.forward` passes to the loss; the
    model updates its momentum encoder with it before computing the keys.
    The value is a function of the runner's iteration, so a resumed run
    continues the schedule exactly. With plain BN on several processes it
    also averages the BN running statistics over the processes after every
    step (:class:`MomentumScheduleHook`). Paper:
    https://arxiv.org/abs/2104.02057.

    Args:
        momentum (float): Momentum at iteration 0. Defaults to 0.99 (the
            official 100- and 300-epoch value; 0.996 for 1000 epochs).
        end_momentum (float): Momentum reached at the end. Defaults to 1.
    """

    def __init__(self,
                 momentum: float = 0.99,
                 end_momentum: float = 1.) -> None:
        super().__init__(momentum, end_momentum)

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not hasattr(model, 'update_momentum_encoder'):
            raise TypeError(
                'MoCoV3Hook (custom_hooks) needs a BCSSLMoCoV3 model, got '
                f'model.type {type(model).__name__}')
        super().before_train(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        momentum = self.current_momentum(runner)
        set_step_momentum(momentum)
        runner.message_hub.update_scalar('train/momentum', momentum)
