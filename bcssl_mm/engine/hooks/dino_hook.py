"""DINO's per-iteration schedules and the teacher's EMA update."""
import logging
from typing import List

from mmengine.logging import print_log
from mmengine.registry import HOOKS

from bcssl_mm.models.algorithms import set_step_teacher_temp
from .momentum_hook import MomentumScheduleHook


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


@HOOKS.register_module()
class DINOHook(MomentumScheduleHook):
    """Drives DINO's schedules and the teacher update during training.

    Every iteration, before the step: stores the teacher temperature of the
    epoch as message hub runtime info ``'teacher_temp'``, which
    :meth:`DINO.forward` passes to the loss as an argument, and, during the
    first ``freeze_last_layer_epochs`` epochs, hands the projection heads'
    last layers (``model.last_layers()``) to the optimizer wrapper as frozen
    (their gradients are dropped). After the step: updates the teacher with
    the momentum of that iteration. All values are functions of the
    runner's epoch and iteration, so a resumed run continues the schedules
    exactly. Paper:
    https://arxiv.org/abs/2104.14294; values of docs/recipes.md §2.

    With plain BN on several processes it also averages the BN running
    statistics of student and teacher over the processes after every step
    (:class:`MomentumScheduleHook`).

    Needs a :class:`DINO` model, an epoch-based loop and a
    ``DINOOptimWrapper`` / ``DINOAmpOptimWrapper``. Before training it warns
    about schedules that the run is too short for
    (:meth:`schedule_warnings`).

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

    def __init__(self,
                 momentum: float = 0.996,
                 end_momentum: float = 1.,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.07,
                 warmup_teacher_temp_epochs: int = 30,
                 freeze_last_layer_epochs: int = 1) -> None:
        super().__init__(momentum, end_momentum)
        self.warmup_teacher_temp = warmup_teacher_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.freeze_last_layer_epochs = freeze_last_layer_epochs

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
        super().before_train(runner)
        for message in self.schedule_warnings(runner.max_epochs):
            print_log(message, logger='current', level=logging.WARNING)

    def schedule_warnings(self, max_epochs: int) -> List[str]:
        """What a run of ``max_epochs`` epochs cuts short: a teacher
        temperature warm-up that never reaches ``teacher_temp``, or a last
        layer that stays frozen for the whole run."""
        found = []
        if (self.warmup_teacher_temp_epochs > max_epochs
                and self.warmup_teacher_temp != self.teacher_temp):
            last = teacher_temperature(max_epochs - 1,
                                       self.warmup_teacher_temp,
                                       self.teacher_temp,
                                       self.warmup_teacher_temp_epochs)
            found.append(
                'DINOHook: the teacher temperature warm-up '
                '(warmup_teacher_temp_epochs='
                f'{self.warmup_teacher_temp_epochs}) is longer than the run '
                '(train_cfg.max_epochs='
                f'{max_epochs}): the temperature ends at {last:.4g} and never '
                f'reaches teacher_temp={self.teacher_temp}; shorten '
                'warmup_teacher_temp_epochs to run the recipe\'s schedule in '
                'fewer epochs')
        if self.freeze_last_layer_epochs >= max_epochs:
            found.append(
                'DINOHook: the last layer is frozen for the whole run '
                f'(freeze_last_layer_epochs={self.freeze_last_layer_epochs}, '
                f'train_cfg.max_epochs={max_epochs}): the prototypes never '
                'train')
        return found

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        model = self._model(runner)
        temp = teacher_temperature(runner.epoch, self.warmup_teacher_temp,
                                   self.teacher_temp,
                                   self.warmup_teacher_temp_epochs)
        set_step_teacher_temp(temp)
        runner.message_hub.update_scalar('train/teacher_temp', temp)
        if runner.epoch < self.freeze_last_layer_epochs:
            runner.optim_wrapper.frozen_params = [
                p for layer in model.last_layers() for p in layer.parameters()
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
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        runner.message_hub.update_scalar('train/teacher_momentum', momentum)
