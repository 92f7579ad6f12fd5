"""DINO self-distillation on mmpretrain, for BC-SSL and the paper's baselines.

Paper: "Emerging Properties in Self-Supervised Vision Transformers"
(https://arxiv.org/abs/2104.14294); recipe of the BC-SSL paper
(https://arxiv.org/abs/2312.05695) in docs/recipes.md §2.

The training step is split between three registered pieces, so that it works
unchanged with and without DDP and with AMP:

- :class:`DINO` (this module): student and teacher forwards, the loss, and the
  teacher's EMA update (:meth:`DINO.update_teacher`);
- :class:`bcssl_mm.engine.DINOHook`: the per-iteration schedules (teacher
  momentum, teacher temperature, last-layer freezing), the call to
  ``update_teacher`` after each optimizer step and, with plain BN on several
  processes, the averaging of BN running statistics;
- :class:`bcssl_mm.engine.DINOOptimWrapper`: per-tensor gradient clipping and
  dropping the last layer's gradients while it is frozen.

Weight decay follows mmpretrain's ``CosineAnnealingWeightDecay`` scheduler,
which leaves groups with zero weight decay (biases, 1-D parameters) at zero.
"""
import copy
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils import get_step_value, pool_backbone_output, set_step_value
from .momentum_encoder import MomentumEncoderMixin

# runtime info key of the teacher temperature, set by DINOHook
TEACHER_TEMP_KEY = 'teacher_temp'


def group_views(views: Sequence[torch.Tensor]) -> List[List[torch.Tensor]]:
    """Runs of consecutive views of the same size (all global crops, then
    all local crops), each to be concatenated into one backbone call, as
    official DINO's ``MultiCropWrapper``."""
    groups: List[List[torch.Tensor]] = []
    for view in views:
        if groups and groups[-1][0].shape[-2:] == view.shape[-2:]:
            groups[-1].append(view)
        else:
            groups.append([view])
    return groups


def embed_views(backbone: nn.Module,
                views: Sequence[torch.Tensor]) -> torch.Tensor:
    """Pooled features of ``views``, one backbone call per resolution
    (:func:`group_views`), pooled by
    :func:`~bcssl_mm.models.utils.pool_backbone_output`, as in evaluation.

    Args:
        backbone (nn.Module): Returns a tuple of (N, C) or (N, C, H, W).
        views (Sequence[Tensor]): V tensors (N, 3, H_v, W_v).

    Returns:
        Tensor: (V * N, C), view-major.
    """
    return torch.cat([
        pool_backbone_output(backbone(torch.cat(group)))
        for group in group_views(views)
    ])


def step_teacher_temp() -> float:
    """The teacher temperature of the current training step, which
    ``DINOHook`` computes from its schedule before every iteration (see
    :mod:`bcssl_mm.models.utils.step_values`). Outside a runner, call
    :meth:`DINO.loss` with ``teacher_temp`` or :func:`set_step_teacher_temp`
    before ``train_step``."""
    return get_step_value(
        TEACHER_TEMP_KEY,
        'DINO needs DINOHook in custom_hooks (it sets the teacher '
        'temperature before each iteration), or call DINO.loss(inputs, '
        'data_samples, teacher_temp) directly')


def set_step_teacher_temp(temp: float) -> None:
    """Set the teacher temperature that the next training steps pass to the
    loss, as ``DINOHook`` does before every iteration."""
    set_step_value(TEACHER_TEMP_KEY, temp)


@MODELS.register_module()
class DINO(MomentumEncoderMixin, BaseSelfSupervisor):
    """DINO: a student and its EMA teacher, cross-view distillation.

    Inputs are the multi-crop views ``[global_1, global_2, local_1, ...]``
    (``DINOMultiCrop``). The teacher sees the global crops, the student all
    crops; the loss is :class:`DINOLoss` through :class:`DINOHead`.

    The teacher is a second copy of the backbone and neck built from the same
    configs, except that stochastic depth is off (official DINO builds its
    teacher without ``drop_path_rate``). It starts as a copy of the student,
    then follows it as an EMA of the parameters only, with no gradients. It
    runs in train mode on the global crops, under ``torch.no_grad`` in the
    same module as the student (official DINO wraps it in a DDP of its own),
    so it normalises with batch statistics and keeps running statistics of
    its own. Those running statistics only serve after training (evaluation,
    the extracted backbone). With SyncBN (the multi-GPU configs) they are
    the same on every process. With plain BN on several processes each
    process would keep its own, because mmengine wraps the model with
    ``broadcast_buffers=False``, and only rank 0's would be saved; so
    ``DINOHook`` averages the plain-BN running statistics of student and
    teacher over the processes after every step.

    The teacher temperature of a step is an argument of :meth:`loss`; in
    training :meth:`forward` reads the value that ``DINOHook`` computed for
    the current epoch (:func:`step_teacher_temp`).

    Pooled features come from the backbone's own output (for BC-SSL: GAP then
    the final LayerNorm, mmpretrain ConvNeXt's ``gap_before_final_norm``;
    official ConvNeXt does the same).

    The teacher is a :class:`MomentumEncoderMixin` momentum encoder
    (``self.teacher``).

    Args:
        backbone (dict): Backbone config (student; the teacher is built from
            it with ``drop_path_rate=0``).
        neck (dict): :class:`DINONeck` config.
        head (dict): :class:`DINOHead` config.
        num_teacher_views (int): Leading views that are global crops and go
            through the teacher. Defaults to 2.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    momentum_attr = 'teacher'

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 num_teacher_views: int = 2,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        teacher_backbone = copy.deepcopy(backbone)
        if 'drop_path_rate' in teacher_backbone:
            teacher_backbone['drop_path_rate'] = 0.
        teacher_neck = copy.deepcopy(neck)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.build_momentum_encoder(
            backbone=teacher_backbone, neck=teacher_neck)
        self.num_teacher_views = num_teacher_views

    def init_weights(self) -> None:
        """Initialise the student, then copy it into the teacher."""
        super().init_weights()
        self.copy_online_to_momentum_encoder()

    def update_teacher(self, momentum: float) -> None:
        """``teacher <- m * teacher + (1 - m) * student``, parameters only
        (buffers such as BN statistics stay the teacher's own)."""
        self.momentum_update(momentum)

    def last_layers(self) -> List[nn.Module]:
        """The projection heads' last layers (the prototypes), which
        ``DINOHook`` keeps frozen during the first epochs."""
        return [self.neck.last_layer]

    def extract_feat(self, inputs: torch.Tensor):
        """Teacher backbone features: DINO evaluates the teacher."""
        return self.teacher['backbone'](inputs)

    def check_views(self, inputs) -> None:
        """Refuse anything but a list of more than ``num_teacher_views``
        views."""
        if (not isinstance(inputs, (list, tuple))
                or len(inputs) <= self.num_teacher_views):
            raise ValueError(
                f'{type(self).__name__} expects a list of more than '
                f'{self.num_teacher_views} views (global crops first), as '
                f'produced by DINOMultiCrop; got {type(inputs).__name__} of '
                'length '
                f'{len(inputs) if isinstance(inputs, (list, tuple)) else "-"}')

    def forward(self,
                inputs: Union[torch.Tensor, List[torch.Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """mmengine's entry point; ``mode='loss'`` passes the teacher
        temperature of the current step (:func:`step_teacher_temp`) to
        :meth:`loss`."""
        if mode == 'loss':
            return self.loss(inputs, data_samples, step_teacher_temp())
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs: List[torch.Tensor],
             data_samples: Optional[List[DataSample]],
             teacher_temp: float) -> Dict[str, torch.Tensor]:
        """DINO loss of a batch of multi-crop views.

        Args:
            inputs (list[Tensor]): V views (N, 3, H_v, W_v), the first
                ``num_teacher_views`` of them global crops.
            data_samples (list[DataSample], optional): Unused.
            teacher_temp (float): Teacher temperature of this step.
        """
        self.check_views(inputs)
        with torch.no_grad():
            teacher_out = self.teacher['neck']((embed_views(
                self.teacher['backbone'],
                inputs[:self.num_teacher_views]), ))[0]  # (G * N, D)
        student_out = self.neck((embed_views(self.backbone,
                                             inputs), ))[0]  # (V * N, D)
        loss = self.head.loss(student_out, teacher_out, len(inputs),
                              teacher_temp)
        return dict(loss=loss)
