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
    ``ModuleDict`` that follows online parts of the model (``backbone`` and
    ``neck``, and whatever else an algorithm adds, e.g. SelfPatch's
    aggregator and patch projection) as an EMA of their parameters. Each
    entry mirrors the online module of the same name (``self.<name>``).

    It gets no gradients and is left out of the optimizer
    (``SelfSupOptimWrapperConstructor``); its buffers, BN running statistics
    included, are its own: only parameters are averaged, as in official DINO
    and MoCo v3.
    """

    momentum_attr = 'momentum_encoder'

    def build_momentum_encoder(self, **parts: dict) -> None:
        """Build the momentum copies of online parts from their configs,
        ``name=config`` (call after the online parts are built); a second
        call adds parts to the same encoder."""
        encoder = getattr(self, self.momentum_attr, None)
        if encoder is None:
            encoder = nn.ModuleDict()
            setattr(self, self.momentum_attr, encoder)
        for name, cfg in parts.items():
            module = MODELS.build(cfg)
            for p in module.parameters():
                p.requires_grad = False
            encoder[name] = module

    def copy_online_to_momentum_encoder(self) -> None:
        """Make the momentum encoder a copy of the online network
        (parameters and buffers), after ``init_weights``."""
        for part, module in getattr(self, self.momentum_attr).items():
            module.load_state_dict(getattr(self, part).state_dict())

    def online_momentum_params(
            self) -> Iterator[Tuple[str, torch.Tensor, torch.Tensor]]:
        """Pairs (name, online param, momentum param), parameters only."""
        for part, module in getattr(self, self.momentum_attr).items():
            online = dict(getattr(self, part).named_parameters())
            for name, m in module.named_parameters():
                yield f'{part}.{name}', online[name], m

    @torch.no_grad()
    def momentum_update(self, momentum: float) -> None:
        """``momentum encoder <- m * itself + (1 - m) * online network``,
        parameters only."""
        _, online, target = zip(*self.online_momentum_params())
        ema_update_(target, online, momentum)
