"""Per-step values (DINO's teacher temperature, MoCo v3's momentum) handed
from a hook to the model's loss.

Values that change every iteration are arguments of the algorithms' ``loss``
(as DINOv2's ``forward_backward(images, teacher_temp)``). mmengine's
``train_step(data, optim_wrapper)`` has no room for them, so in training the
algorithm's ``forward`` reads the value that its hook computed for the
current iteration from the runtime info of mmengine's current
:class:`~mmengine.logging.MessageHub` (the channel through which mmengine's
loop hands ``epoch`` and ``iter`` to the rest of a run).
"""
from mmengine.logging import MessageHub


def get_step_value(key: str, hint: str) -> float:
    """The value its hook stored under runtime info ``key`` for this step.

    Args:
        key (str): The message hub runtime info key.
        hint (str): What to do when it is missing (which hook to add, which
            argument to pass), appended to the error.

    Raises:
        RuntimeError: Nothing was stored under ``key``.
    """
    value = MessageHub.get_current_instance().get_info(key)
    if value is None:
        raise RuntimeError(
            f'no {key!r} for this training step in the message hub: {hint}')
    return value


def set_step_value(key: str, value: float) -> None:
    """Store ``value`` for the next training steps, as the hooks do before
    every iteration (not checkpointed: they recompute it from the epoch or
    iteration, so a resumed run continues the schedule)."""
    MessageHub.get_current_instance().update_info(key, value, resumed=False)
