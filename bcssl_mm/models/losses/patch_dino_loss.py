"""SelfPatch's patch-level loss: DINO's cross-entropy per patch, same view.

Paper: "Patch-level Representation Learning for Self-supervised Vision
Transformers" (https://arxiv.org/abs/2206.07990), Eq. (3); docs/recipes.md
§9.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from .dino_loss import DINOLoss


@MODELS.register_module()
class PatchDINOLoss(DINOLoss):
    """DINO's centred, sharpened cross-entropy between each student patch
    and the teacher's aggregate of that patch's neighbours, in the same view.

    For view ``v`` with ``P_v`` patches::

        L_v = mean_{n, p} sum_k -softmax((t_{v,n,p} - c) / T_t)_k
                                 * log_softmax(s_{v,n,p} / T_s)_k

    and the loss is the mean of ``L_v`` over the views (global and local
    crops alike; official SelfPatch). The center ``c`` (its own, 4096-d in
    the recipe), the temperatures and the center update are
    :class:`DINOLoss`'s; the center moves towards the mean over all patches
    of all views: call ``update_center`` with the flattened teacher outputs.

    Args:
        out_dim (int): Output dimension of the patch projection (4096).
        student_temp (float): Defaults to 0.1.
        center_momentum (float): Defaults to 0.9.
    """

    def forward(self, student_out: Sequence[torch.Tensor],
                teacher_out: Sequence[torch.Tensor],
                teacher_temp: float) -> torch.Tensor:
        """The loss (the center is not updated here).

        Args:
            student_out (Sequence[Tensor]): Per view, (N, P_v, D).
            teacher_out (Sequence[Tensor]): Per view, (N, P_v, D), the
                teacher's neighbour aggregates, in the same order.
            teacher_temp (float): Teacher temperature ``T_t``.
        """
        if len(student_out) != len(teacher_out) or not student_out:
            raise ValueError(
                f'PatchDINOLoss: {len(student_out)} student and '
                f'{len(teacher_out)} teacher views; expected the same '
                'non-zero number')
        total = 0.
        for s, t in zip(student_out, teacher_out):
            if s.shape != t.shape:
                raise ValueError(f'PatchDINOLoss: student patches '
                                 f'{tuple(s.shape)} vs teacher '
                                 f'{tuple(t.shape)} in the same view')
            # fp32 softmax / log-softmax under AMP
            q = F.softmax(
                (t.float() - self.center) / teacher_temp, dim=-1).detach()
            total = total + torch.sum(
                -q * F.log_softmax(s.float() / self.student_temp, dim=-1),
                dim=-1).mean()
        return total / len(student_out)
