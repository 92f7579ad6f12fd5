"""DINO's per-iteration schedules and the teacher's EMA update."""
import math
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def teacher_momentum(it: int, total: int, base: float = 0.996,
                     end: float = 1.) -> float:
    """``end - (end - base) * (cos(pi * it / total) + 1) / 2``: DINO's
    cosine schedule from ``base`` at iteration 0 towards ``end``."""
    return end - (end - base) * (math.cos(math.pi * it / total) + 1) / 2


def teacher_temperature(epoch: int, warmup_temp: float = 0.04,
                        temp: float = 0.07, warmup_epochs: int = 30) -> float:
    """Linear from ``warmup_temp`` at epoch 0 to ``temp`` at epoch
    ``warmup_epochs - 1``, then ``temp``: official DINO's
    ``np.linspace(warmup_temp, temp, warmup_epochs)`` indexed by epoch."""
    if epoch >= warmup_epochs:
        return temp
    if warmup_epochs == 1:
        return temp
    return warmup_temp + (temp - warmup_temp) * epoch / (warmup_epochs - 1)


@HOOKS.register_module()
class DINOHook(Hook):
    """Drives DINO's schedules and the teacher update during training.

    Every iteration, before the step: sets the model's teacher temperature
    for the epoch and, during the first ``freeze_last_layer_epochs`` epochs,
    hands the projection head's last layer to the optimizer wrapper as
    frozen (its gradients are dropped). After the step: updates the teacher
    with the momentum of that iteration. All values are functions of the
    runner's epoch and iteration, so a resumed run continues the schedules
    exactly. Paper: https://arxiv.org/abs/2104.14294; docs/recipes.md §2.

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

    def current_momentum(self, runner) -> float:
        return teacher_momentum(runner.iter, runner.max_iters, self.momentum,
                                self.end_momentum)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        model = self._model(runner)
        model.teacher_temp = teacher_temperature(
            runner.epoch, self.warmup_teacher_temp, self.teacher_temp,
            self.warmup_teacher_temp_epochs)
        if runner.epoch < self.freeze_last_layer_epochs:
            runner.optim_wrapper.frozen_params = [
                p for p in model.neck.last_layer.parameters()
                if p.requires_grad
            ]
        else:
            runner.optim_wrapper.frozen_params = []
        runner.message_hub.update_scalar('train/teacher_temp',
                                         model.teacher_temp)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        # runner.iter is still the index of the iteration just run
        momentum = self.current_momentum(runner)
        self._model(runner).update_teacher(momentum)
        runner.message_hub.update_scalar('train/teacher_momentum', momentum)
