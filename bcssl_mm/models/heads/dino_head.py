"""The loss head of DINO (https://arxiv.org/abs/2104.14294)."""
from typing import Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DINOHead(BaseModule):
    """Applies :class:`DINOLoss` to student and teacher projections and then
    updates its center.

    The projection MLP is :class:`DINONeck`; this head holds the loss and its
    state (the center), mmpretrain's split between neck and head.

    Args:
        loss (dict): Config of the loss. Defaults to ``DINOLoss`` with
            ``out_dim`` 65536.
        init_cfg (dict, optional): Unused; mmengine convention.
    """

    def __init__(self,
                 loss: dict = dict(type='DINOLoss', out_dim=65536),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_module = MODELS.build(loss)

    def loss(self,
             student_out: torch.Tensor,
             teacher_out: torch.Tensor,
             num_student_views: int,
             teacher_temp: float,
             center_out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The DINO loss of this batch; the center is updated afterwards,
        as in official DINO.

        Args:
            student_out (Tensor): (V * N, D), all views.
            teacher_out (Tensor): (G * N, D), the global views.
            num_student_views (int): V.
            teacher_temp (float): Teacher temperature of this step.
            center_out (Tensor, optional): The teacher outputs whose mean
                the center moves towards. Defaults to ``teacher_out``
                (SelfPatch passes the teacher's outputs of all views).
        """
        loss = self.loss_module(student_out, teacher_out, num_student_views,
                                teacher_temp)
        self.loss_module.update_center(
            teacher_out if center_out is None else center_out)
        return loss


@MODELS.register_module()
class PatchDINOHead(DINOHead):
    """SelfPatch's patch-level loss head: :class:`PatchDINOLoss`, then the
    update of its own center over all patches of all views.

    Args:
        loss (dict): Defaults to ``PatchDINOLoss`` with ``out_dim`` 4096.
        init_cfg (dict, optional): Unused; mmengine convention.
    """

    def __init__(self,
                 loss: dict = dict(type='PatchDINOLoss', out_dim=4096),
                 init_cfg=None) -> None:
        super().__init__(loss=loss, init_cfg=init_cfg)

    def loss(self, student_out: Sequence[torch.Tensor],
             teacher_out: Sequence[torch.Tensor],
             teacher_temp: float) -> torch.Tensor:
        """The patch loss of this batch (per view (N, P_v, D) outputs); the
        center is updated afterwards, as in official SelfPatch."""
        loss = self.loss_module(student_out, teacher_out, teacher_temp)
        self.loss_module.update_center(
            torch.cat([t.reshape(-1, t.shape[-1]) for t in teacher_out]))
        return loss
