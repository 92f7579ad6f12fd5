"""MoCo v3 on mmpretrain, for BC-SSL, ResNet-50 and ViT.

Paper: "An Empirical Study of Training Self-Supervised Vision Transformers"
(https://arxiv.org/abs/2104.02057); official code
github.com/facebookresearch/moco-v3; recipes in docs/recipes.md §8.

The training step is split between three registered pieces, as DINO's:

- :class:`BCSSLMoCoV3` (this module): the two encoders, the momentum update
  and the symmetric loss;
- :class:`bcssl_mm.models.heads.BCSSLMoCoV3Head`: predictor and contrastive
  loss with keys gathered over processes, scaled by ``2 T``;
- :class:`bcssl_mm.engine.MoCoV3Hook`: the cosine momentum schedule
  0.99 -> 1 per iteration and, with plain BN on several processes, the
  averaging of BN running statistics.

LARS without decay or adaptation on every parameter of at most one
dimension is ``SelfSupOptimWrapperConstructor``'s ``flat_cfg``.
"""
import copy
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils import get_step_value, pool_backbone_output, set_step_value
from .momentum_encoder import MomentumEncoderMixin

# runtime info key of the momentum of the step, set by MoCoV3Hook
MOMENTUM_KEY = 'momentum'


def step_momentum() -> float:
    """The momentum of the current training step, which ``MoCoV3Hook``
    computes before every iteration (see
    :mod:`bcssl_mm.models.utils.step_values`)."""
    return get_step_value(
        MOMENTUM_KEY, 'MoCo v3 needs MoCoV3Hook in custom_hooks (it sets the '
        'momentum before each iteration), or call BCSSLMoCoV3.loss(inputs, '
        'data_samples, momentum) directly')


def set_step_momentum(momentum: float) -> None:
    """Set the momentum that the next training steps pass to the loss, as
    ``MoCoV3Hook`` does before every iteration."""
    set_step_value(MOMENTUM_KEY, momentum)


@MODELS.register_module()
class BCSSLMoCoV3(MomentumEncoderMixin, BaseSelfSupervisor):
    """MoCo v3: a base encoder and its momentum encoder, symmetric InfoNCE.

    Inputs are two augmented views (mmpretrain ``MultiView`` with BYOL's
    asymmetric pipelines). Each view goes through the base encoder
    (backbone, projector ``neck``, predictor ``head.predictor``) and,
    without gradient, through the momentum encoder (backbone and projector).
    The loss is ``ctr(q1, k2) + ctr(q2, k1)`` (:class:`BCSSLMoCoV3Head`).

    The momentum encoder is a second copy of the backbone and projector
    built from the same configs. It starts as a copy of the base encoder and
    is updated at each step, before the keys are computed, as
    ``k <- m * k + (1 - m) * q`` over the parameters only, with the momentum
    ``m`` of the step an argument of :meth:`loss` (in training,
    :meth:`forward` reads the value of ``MoCoV3Hook``). It runs in train
    mode, so its BN layers normalise with batch statistics and keep running
    statistics of their own, as official MoCo v3's.

    Each view goes through each encoder on its own, as officially, so that
    BN statistics are per view. Pooled features come from the backbone's
    own output (:func:`~bcssl_mm.models.utils.pool_backbone_output`: the
    final-normed CLS token of a ViT, GAP + final norm of BC-SSL, GAP of a
    ResNet), as in DINO and evaluation, so the projector takes vectors.

    It departs from mmpretrain's ``MoCoV3`` where that departs from official
    MoCo v3: mmpretrain's ``CosineEMA(update_buffers=False)`` copies the
    base encoder's buffers, BN running statistics included, into the
    momentum encoder at every step, while official MoCo v3 updates only the
    parameters, as this class does. mmpretrain's head needs the ``2 T``
    scaling in its loss config; :class:`BCSSLMoCoV3Head` applies it. The
    momentum comes from the runner's iteration through ``MoCoV3Hook``, so a
    resumed run continues the schedule exactly.

    Args:
        backbone (dict): Backbone config (for ViT, mmpretrain ``MoCoV3ViT``
            with ``stop_grad_conv1=True``: frozen random patch projection
            and fixed sin-cos position embedding).
        neck (dict): Projector config (mmpretrain ``NonLinearNeck``).
        head (dict): :class:`BCSSLMoCoV3Head` config.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        momentum_backbone = copy.deepcopy(backbone)
        momentum_neck = copy.deepcopy(neck)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.build_momentum_encoder(
            backbone=momentum_backbone, neck=momentum_neck)

    def init_weights(self) -> None:
        """Initialise the base encoder, then copy it into the momentum
        encoder (parameters and buffers)."""
        super().init_weights()
        self.copy_online_to_momentum_encoder()

    def update_momentum_encoder(self, momentum: float) -> None:
        """``momentum encoder <- m * itself + (1 - m) * base encoder``,
        parameters only (BN statistics stay the momentum encoder's own)."""
        self.momentum_update(momentum)

    @staticmethod
    def project(backbone: nn.Module, neck: nn.Module,
                view: torch.Tensor) -> torch.Tensor:
        """(N, D) projection of ``view``: pooled backbone features through
        the projector."""
        return neck((pool_backbone_output(backbone(view)), ))[0]

    def extract_feat(self, inputs: torch.Tensor):
        """Base encoder backbone features: MoCo v3 evaluates and transfers
        the base encoder."""
        return self.backbone(inputs)

    def forward(self,
                inputs: Union[torch.Tensor, List[torch.Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """mmengine's entry point; ``mode='loss'`` passes the momentum of the
        current step (:func:`step_momentum`) to :meth:`loss`."""
        if mode == 'loss':
            return self.loss(inputs, data_samples, step_momentum())
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs: List[torch.Tensor],
             data_samples: Optional[List[DataSample]],
             momentum: float) -> Dict[str, torch.Tensor]:
        """Symmetric MoCo v3 loss of a batch of two views.

        Args:
            inputs (list[Tensor]): Two views (N, 3, H, W).
            data_samples (list[DataSample], optional): Unused.
            momentum (float): Momentum of this step's encoder update, done
                before the keys are computed (official order).
        """
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                'MoCo v3 expects a list of 2 views, as produced by '
                "mmpretrain's MultiView(num_views=[1, 1]); got "
                f'{type(inputs).__name__} of length '
                f'{len(inputs) if isinstance(inputs, (list, tuple)) else "-"}')
        view_1, view_2 = inputs
        q1 = self.project(self.backbone, self.neck, view_1)  # (N, D)
        q2 = self.project(self.backbone, self.neck, view_2)
        with torch.no_grad():
            self.update_momentum_encoder(momentum)
            k_backbone, k_neck = (self.momentum_encoder['backbone'],
                                  self.momentum_encoder['neck'])
            k1 = self.project(k_backbone, k_neck, view_1)  # (N, D)
            k2 = self.project(k_backbone, k_neck, view_2)
        loss = self.head.loss(q1, k2) + self.head.loss(q2, k1)
        return dict(loss=loss)
