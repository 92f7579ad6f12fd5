"""LARS with official MoCo v3's arithmetic."""
from typing import Callable, Iterable, Optional

import torch
from mmengine.registry import OPTIMIZERS


@OPTIMIZERS.register_module()
class MoCoV3LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017, https://arxiv.org/abs/1708.03888) as official
    MoCo v3's ``moco/optimizer.py`` computes it.

    For a parameter ``p`` with gradient ``g`` in a group with learning rate
    ``lr``, weight decay ``wd``, momentum ``mu`` and trust coefficient
    ``eta``:

    - ``d = g + wd * p``;
    - unless the group has ``lars_exclude=True``:
      ``d = d * eta * ||p|| / ||d||`` (ratio 1 where either norm is 0);
    - ``buf = mu * buf + d``, ``p = p - lr * buf``.

    Official MoCo v3 excludes every parameter with ``p.ndim <= 1`` from both
    decay and adaptation; here the exclusion comes from the parameter
    groups, set by shape with ``SelfSupOptimWrapperConstructor``'s
    ``paramwise_cfg=dict(flat_cfg=dict(decay_mult=0., lars_exclude=True))``.

    It differs from mmpretrain's ``LARS`` in two ways, both measured side by
    side with official MoCo v3 (docs/recipes.md §8): mmpretrain divides by
    ``||g|| + wd * ||p||`` instead of ``||g + wd * p||`` (a difference of
    order ``wd``), and it scales ``d`` by the learning rate before the
    momentum buffer instead of after, so its past steps keep the learning
    rate they were taken with. During the linear warm-up, where the
    learning rate grows by ``1 / warm-up iterations`` of its peak every
    step, that makes its steps smaller than official MoCo v3's.

    Args:
        params (Iterable): Parameters or parameter groups.
        lr (float): Learning rate.
        weight_decay (float): Weight decay. Defaults to 0.
        momentum (float): Momentum. Defaults to 0.9.
        trust_coefficient (float): ``eta``. Defaults to 0.001.
    """

    def __init__(self,
                 params: Iterable,
                 lr: float,
                 weight_decay: float = 0.,
                 momentum: float = 0.9,
                 trust_coefficient: float = 0.001) -> None:
        for name, value in (('lr', lr), ('weight_decay', weight_decay),
                            ('momentum', momentum), ('trust_coefficient',
                                                     trust_coefficient)):
            if value < 0:
                raise ValueError(
                    f'MoCoV3LARS: {name} must be >= 0, got {value!r}')
        super().__init__(
            params,
            dict(
                lr=lr,
                weight_decay=weight_decay,
                momentum=momentum,
                trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=group['weight_decay'])
                if not group.get('lars_exclude', False):
                    p_norm, d_norm = torch.norm(p), torch.norm(d)
                    ratio = torch.where(
                        (p_norm > 0) & (d_norm > 0),
                        group['trust_coefficient'] * p_norm / d_norm,
                        torch.ones_like(p_norm))
                    d = d.mul(ratio)
                state = self.state[p]
                if 'momentum_buffer' not in state:
                    state['momentum_buffer'] = torch.zeros_like(p)
                buf = state['momentum_buffer']
                buf.mul_(group['momentum']).add_(d)
                p.add_(buf, alpha=-group['lr'])
        return loss
