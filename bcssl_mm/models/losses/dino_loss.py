"""DINO's self-distillation loss with its centering state.

Paper: "Emerging Properties in Self-Supervised Vision Transformers"
(https://arxiv.org/abs/2104.14294), Algorithm 1; recipe of docs/recipes.md §2.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmpretrain.registry import MODELS


def dino_pairs(num_teacher_views: int,
               num_student_views: int) -> Sequence[tuple]:
    """The (teacher view, student view) pairs the loss sums over: every pair
    but a view with itself."""
    return [(i, v) for i in range(num_teacher_views)
            for v in range(num_student_views) if v != i]


@MODELS.register_module()
class DINOLoss(nn.Module):
    """Cross-entropy between centred, sharpened teacher and student outputs.

    For teacher view ``i`` (global crops only) and student view ``v`` (all
    crops) with ``v != i``::

        H(i, v) = mean_n sum_k -softmax((t_i - c) / T_t)_k
                                * log_softmax(s_v / T_s)_k

    and the loss is the mean of ``H`` over those pairs. After the loss the
    center ``c`` (a buffer, so it is checkpointed) moves towards the batch
    mean of the teacher outputs, all-reduced over processes:
    ``c <- m c + (1 - m) mean(t)``.

    Args:
        out_dim (int): Output dimension of the projection head (65536).
        student_temp (float): Student temperature ``T_s``. Defaults to 0.1.
        center_momentum (float): Momentum ``m`` of the center. Defaults to
            0.9.
    """

    def __init__(self,
                 out_dim: int,
                 student_temp: float = 0.1,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer('center', torch.zeros(1, out_dim))

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor,
                num_student_views: int, teacher_temp: float) -> torch.Tensor:
        """Compute the loss (the center is not updated here).

        Args:
            student_out (Tensor): (V * N, D), views stacked in order: the
                ``num_teacher_views`` global crops first, then local crops.
            teacher_out (Tensor): (G * N, D) for the G global crops.
            num_student_views (int): V.
            teacher_temp (float): Teacher temperature ``T_t`` of this epoch.
        """
        num_teacher_views = teacher_out.shape[0] * num_student_views \
            // student_out.shape[0]
        # fp32 softmax / log-softmax under AMP
        student = (student_out.float() /
                   self.student_temp).chunk(num_student_views)
        teacher = F.softmax(
            (teacher_out.float() - self.center) / teacher_temp,
            dim=-1).detach().chunk(num_teacher_views)
        pairs = dino_pairs(num_teacher_views, num_student_views)
        total = sum(
            torch.sum(-teacher[i] *
                      F.log_softmax(student[v], dim=-1), dim=-1).mean()
            for i, v in pairs)
        return total / len(pairs)

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """``c <- m c + (1 - m) mean(teacher_out)`` over all processes."""
        batch_center = teacher_out.float().sum(dim=0, keepdim=True)
        all_reduce(batch_center)  # sum over processes; no-op single-process
        batch_center = batch_center / (teacher_out.shape[0] * get_world_size())
        # NOTE: official DINO's order of operations, so the center (and the
        # losses after it) match official DINO's bit for bit
        self.center.copy_(self.center * self.center_momentum + batch_center *
                          (1 - self.center_momentum))
