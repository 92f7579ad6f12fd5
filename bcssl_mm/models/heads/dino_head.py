"""The loss head of DINO (https://arxiv.org/abs/2104.14294)."""
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

    def loss(self, student_out: torch.Tensor, teacher_out: torch.Tensor,
             num_student_views: int, teacher_temp: float) -> torch.Tensor:
        """The DINO loss of this batch; the center is updated afterwards,
        as in official DINO."""
        loss = self.loss_module(student_out, teacher_out, num_student_views,
                                teacher_temp)
        self.loss_module.update_center(teacher_out)
        return loss
