"""Checkpoint the random number generators so that resuming is exact."""
import random
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


def get_rng_state() -> dict:
    """The states of Python's, numpy's and torch's (CPU and CUDA) RNGs."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore states returned by :func:`get_rng_state`."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save every rank's RNG states in checkpoints and restore them on resume.

    mmengine checkpoints hold the seed but not the generators' states, so a
    resumed run draws different augmentations, RPN/RoI samples and drop-path
    masks from the run it continues. With this hook (and data loaded in the
    main process, ``num_workers=0``; worker processes are re-seeded by
    mmengine when they start), a run interrupted at an epoch boundary and
    resumed ends with the same weights as one left alone.

    The hook also makes validation leave the training generators untouched,
    so the state saved with a checkpoint is the one the next epoch starts
    from whether or not validation ran in between.

    States are restored only when resuming (``runner.iter > 0`` at
    ``before_train``), not when fine-tuning from ``load_from``, and only if
    the world size is unchanged.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._resumed: Optional[List[dict]] = None
        self._before_val: Optional[dict] = None
        # (iteration, every rank's states) gathered where all ranks meet
        self._gathered: Optional[Tuple[int, List[dict]]] = None

    def _gather(self, runner) -> None:
        if get_dist_info()[1] > 1:
            self._gathered = (runner.iter, all_gather_object(get_rng_state()))

    # Runner.save_checkpoint, and so before_save_checkpoint, runs on rank 0
    # only, so the other ranks' states are gathered beforehand in the hooks
    # that end an epoch (or iteration), which run before CheckpointHook's
    # (priority VERY_LOW) and consume no random numbers.
    def after_train_epoch(self, runner) -> None:
        self._gather(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            self._gather(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_dist_info()[1] == 1:
            checkpoint['rng_states'] = [get_rng_state()]
        elif self._gathered is not None and self._gathered[0] == runner.iter:
            checkpoint['rng_states'] = self._gathered[1]
        else:
            runner.logger.warning('RNGStateHook: no RNG states gathered at '
                                  f'iter {runner.iter}; resuming from this '
                                  'checkpoint will not be exact')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed = checkpoint.get('rng_states')

    def before_train(self, runner) -> None:
        states, self._resumed = self._resumed, None
        if states is None or runner.iter == 0:
            return
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            runner.logger.warning(
                f'RNGStateHook: checkpoint holds RNG states of {len(states)} '
                f'processes but {world_size} are running; not restoring them')
            return
        set_rng_state(states[rank])
        runner.logger.info('RNGStateHook: restored the RNG states saved at '
                           f'iter {runner.iter}')

    def before_val(self, runner) -> None:
        self._before_val = get_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_rng_state(self._before_val)
            self._before_val = None
