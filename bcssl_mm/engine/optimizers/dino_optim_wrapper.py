"""Optimizer wrappers with DINO's gradient handling (per-tensor clipping,
cancelled last-layer gradients), for fp32 and AMP."""
from typing import List, Optional

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

from .selfsup_constructor import SelfSupOptimWrapperConstructor


def clip_grad_per_tensor_(params: List[torch.Tensor],
                          max_norm: float) -> torch.Tensor:
    """Scale each gradient by ``max_norm / (||g|| + 1e-6)`` where that is
    below 1.

    Official DINO's ``clip_gradients``: every parameter tensor is clipped on
    its own, unlike ``torch.nn.utils.clip_grad_norm_``'s global norm.
    Gradients within the bound are left untouched (one host sync for all
    tensors instead of official DINO's one per tensor).

    Returns:
        Tensor: The global norm of the gradients before clipping (for logs).
    """
    grads = [p.grad.detach() for p in params]
    norms = torch.stack([g.norm(2) for g in grads])  # (P, )
    coefs = max_norm / (norms + 1e-6)  # (P, )
    for i in (coefs < 1).nonzero().flatten().tolist():
        grads[i].mul_(coefs[i])
    return norms.norm(2)


class DINOOptimWrapperMixin:
    """Adds to an mmengine optimizer wrapper:

    - ``clip_grad=dict(type='per_tensor', max_norm=3.0)``: per-tensor
      clipping (:func:`clip_grad_per_tensor_`); ``'norm'`` and ``'value'``
      work as in mmengine;
    - ``frozen_params``: parameters whose gradients are set to ``None``
      before each step, so the optimizer leaves them (and their moments and
      weight decay) untouched; ``DINOHook`` fills it with the projection
      head's last layer during the first epoch(s).
    """

    def __init__(self, *args, clip_grad: Optional[dict] = None, **kwargs):
        self.clip_per_tensor = None
        if clip_grad is not None and clip_grad.get('type') == 'per_tensor':
            if 'max_norm' not in clip_grad:
                raise KeyError("optim_wrapper.clip_grad of type 'per_tensor' "
                               f'needs max_norm, got {clip_grad!r}')
            self.clip_per_tensor = float(clip_grad['max_norm'])
            clip_grad = dict(clip_grad, type='norm')
        super().__init__(*args, clip_grad=clip_grad, **kwargs)
        self.frozen_params: List[torch.nn.Parameter] = []

    def _clip_grad(self) -> None:
        if self.clip_per_tensor is None:
            return super()._clip_grad()
        params = [
            p for group in self.optimizer.param_groups for p in group['params']
            if p.requires_grad and p.grad is not None
        ]
        if params:
            norm = clip_grad_per_tensor_(params, self.clip_per_tensor)
            self.message_hub.update_scalar('train/grad_norm', float(norm))

    def step(self, **kwargs) -> None:
        for p in self.frozen_params:
            p.grad = None
        super().step(**kwargs)


@OPTIM_WRAPPERS.register_module()
class DINOOptimWrapper(DINOOptimWrapperMixin, OptimWrapper):
    """:class:`OptimWrapper` with DINO's gradient handling
    (:class:`DINOOptimWrapperMixin`). Paper: https://arxiv.org/abs/2104.14294.

    Args:
        optimizer (Optimizer): The optimizer.
        clip_grad (dict, optional): ``dict(type='per_tensor', max_norm=3.0)``
            for DINO, or mmengine's ``'norm'`` / ``'value'``.
        **kwargs: Other :class:`OptimWrapper` arguments.
    """


@OPTIM_WRAPPERS.register_module()
class DINOAmpOptimWrapper(DINOOptimWrapperMixin, AmpOptimWrapper):
    """:class:`AmpOptimWrapper` with DINO's gradient handling; gradients are
    unscaled before they are clipped, as in official DINO. Paper:
    https://arxiv.org/abs/2104.14294.

    Args:
        clip_grad (dict, optional): As for :class:`DINOOptimWrapper`.
        **kwargs: :class:`AmpOptimWrapper` arguments (``loss_scale``, ...).
    """


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DINOOptimWrapperConstructor(SelfSupOptimWrapperConstructor):
    """The name DINO configs use for :class:`SelfSupOptimWrapperConstructor`
    (the student's parameters only). Paper: https://arxiv.org/abs/2104.14294.
    """
