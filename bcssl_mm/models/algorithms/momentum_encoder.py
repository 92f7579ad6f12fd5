"""A momentum encoder: the EMA copy of an algorithm's backbone and neck that
DINO calls its teacher and MoCo v3 its momentum encoder."""
from typing import Iterator, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS


@torch.no_grad()
def ema_update_(targets: Sequence[torch.Tensor],
                sources: Sequence[torch.Tensor], momentum: float) -> None:
    """``target <- m * target + (1 - m) * source`` for each pair, in place.

    Args:
        targets (Sequence[Tensor]): The momentum encoder's (teacher's)
            parameters.
        sources (Sequence[Tensor]): The online network's parameters, in the
            same order.
        momentum (float): m.
    """
    # NOTE: one multi-tensor call per operation instead of two Python calls
    # per parameter; the same arithmetic per element
    torch._foreach_mul_(list(targets), momentum)
    torch._foreach_add_(list(targets), list(sources), alpha=1. - momentum)


class MomentumEncoderMixin:
    """Builds, initialises and updates ``self.<momentum_attr>``, a
    ``ModuleDict(backbone=..., neck=...)`` that follows the online
    ``self.backbone`` and ``self.neck`` as an EMA of their parameters.

    It gets no gradients and is left out of the optimizer
    (``SelfSupOptimWrapperConstructor``); its buffers, BN running statistics
    included, are its own: only parameters are averaged, as in official DINO
    and MoCo v3.
    """

    momentum_attr = 'momentum_encoder'

    def build_momentum_encoder(self, backbone: dict, neck: dict) -> None:
        """Build the momentum encoder from configs (call after the online
        network is built)."""
        encoder = nn.ModuleDict(
            dict(backbone=MODELS.build(backbone), neck=MODELS.build(neck)))
        for p in encoder.parameters():
            p.requires_grad = False
        setattr(self, self.momentum_attr, encoder)

    def copy_online_to_momentum_encoder(self) -> None:
        """Make the momentum encoder a copy of the online network
        (parameters and buffers), after ``init_weights``."""
        encoder = getattr(self, self.momentum_attr)
        for part in ('backbone', 'neck'):
            encoder[part].load_state_dict(getattr(self, part).state_dict())

    def online_momentum_params(
            self) -> Iterator[Tuple[str, torch.Tensor, torch.Tensor]]:
        """Pairs (name, online param, momentum param), parameters only."""
        encoder = getattr(self, self.momentum_attr)
        for part in ('backbone', 'neck'):
            online = dict(getattr(self, part).named_parameters())
            for name, m in encoder[part].named_parameters():
                yield f'{part}.{name}', online[name], m

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        """``momentum encoder <- m * itself + (1 - m) * online network``,
        parameters only."""
        _, online, target = zip(*self.online_momentum_params())
        ema_update_(target, online, momentum)
