"""D-MAE-Lite: MAE pretraining of a small ViT with attention distillation
from a frozen MAE teacher.

MAE-Lite (Wang et al., ICML 2023, https://arxiv.org/abs/2205.10063;
official wangsr126/mae-lite ``projects/mae_lite/mae_lite_distill_exp.py``);
docs/recipes.md §10 and docs/maelite.md.
"""
import os.path as osp
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils import load_backbone_checkpoint

ATTN_TARGETS = ('logits', 'probs')


def attention_distill_loss(student: torch.Tensor, teacher: torch.Tensor,
                           adapter: nn.Module, target: str) -> torch.Tensor:
    """MSE between the adapted student attention and the teacher's.

    Args:
        student (Tensor): (B, H_s, N, N) pre-softmax attention logits.
        teacher (Tensor): (B, H_t, N, N) pre-softmax attention logits.
        adapter (nn.Module): Maps H_s heads to H_t (a 1x1 conv over heads).
        target (str): 'logits': the logits themselves (official D-MAE-Lite
            hooks the attention before its softmax); 'probs': both sides'
            softmax over the keys, the adapter applied to the student's
            probabilities.

    Returns:
        Tensor: the mean over every element (B, heads, queries, keys),
        official ``nn.MSELoss()``; computed in fp32.
    """
    if target == 'probs':
        student, teacher = student.softmax(-1), teacher.softmax(-1)
    adapted = adapter(student)
    if adapted.shape != teacher.shape:
        raise ValueError(
            f'adapted student attention {tuple(adapted.shape)} does not match '
            f'the teacher\'s {tuple(teacher.shape)}')
    return F.mse_loss(adapted.float(), teacher.detach().float())


@MODELS.register_module()
class DMAELite(MAE):
    """mmpretrain's ``MAE`` plus D-MAE-Lite's attention distillation.

    A frozen teacher encoder (an MAE-pretrained, larger ViT: MAE-Base in the
    paper) sees the same visible patches as the student, in the same order:
    the student's :meth:`~bcssl_mm.models.backbones.AttnMAEViT.forward_masked`
    draws the permutation, the teacher reuses it. The loss is the student's
    MAE loss (normalised pixels of the masked patches) plus
    ``attn_loss_weight`` x the MSE between the student's last-block
    attention, mapped from its heads to the teacher's by a 1x1 convolution
    (the head adapter), and the teacher's last-block attention, all heads,
    the class token's row and column included. No hidden-state
    distillation (the official default).

    What is matched (``attn_target``): 'logits' (default): the pre-softmax
    ``Q K^T / sqrt(d_head)`` of each model, as official D-MAE-Lite, whose
    ``AttnCatcher`` hooks the attention before its softmax; 'probs': the
    attention probabilities (softmax over the keys).

    The teacher gets no gradient, stays in eval mode and is left out of the
    optimizer (``SelfSupOptimWrapperConstructor`` skips ``teacher.*``). Its
    weights come from ``teacher_checkpoint`` (keys ``backbone.*``, e.g.
    tools/model_converters/mae_to_mmpretrain.py on the official
    ``mae_pretrain_vit_base.pth``), loaded strictly in :meth:`init_weights`
    after every random initialisation (``MAEViT.init_weights`` would
    otherwise overwrite its position embedding, patch embedding and class
    token); a resumed run then takes them from its own checkpoint.

    Args:
        backbone (dict): Student ``AttnMAEViT`` config.
        neck (dict): ``MAEPretrainDecoder`` config.
        head (dict): ``MAEPretrainHead`` config.
        teacher (dict): Teacher ``AttnMAEViT`` config (same patch size and
            mask ratio as the student).
        teacher_checkpoint (str, optional): Backbone checkpoint of the
            teacher. Without it the teacher keeps a random initialisation
            (tests only).
        attn_loss_weight (float): Defaults to 1.0.
        student_layer (int): Student block whose attention is distilled.
            Defaults to -1 (the last, official ``distill_attn_idx=(12,)``).
        teacher_layer (int): Teacher block. Defaults to -1.
        attn_target (str): 'logits' (official) or 'probs'.
        head_adapter (bool): Always use the 1x1 head adapter (official
            ``use_attn_adapter=True``); without it, it is used only when the
            head counts differ. Defaults to True.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 teacher: dict,
                 teacher_checkpoint: Optional[str] = None,
                 attn_loss_weight: float = 1.,
                 student_layer: int = -1,
                 teacher_layer: int = -1,
                 attn_target: str = 'logits',
                 head_adapter: bool = True,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if attn_target not in ATTN_TARGETS:
            raise ValueError(f'DMAELite: attn_target must be one of '
                             f'{ATTN_TARGETS}, got {attn_target!r}')
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.teacher = MODELS.build(teacher).requires_grad_(False)
        for name, net in (('backbone', self.backbone), ('teacher',
                                                        self.teacher)):
            if not hasattr(net, 'forward_masked'):
                raise TypeError(
                    f'DMAELite: {name} must be an AttnMAEViT (shared mask, '
                    f'attention maps), got {type(net).__name__}')
        if self.teacher.patch_resolution != self.backbone.patch_resolution:
            raise ValueError(
                'DMAELite: teacher and student must cut the same patches: '
                f'grids {self.teacher.patch_resolution} vs '
                f'{self.backbone.patch_resolution}')
        student_heads = self.backbone.layers[0].attn.num_heads
        teacher_heads = self.teacher.layers[0].attn.num_heads
        if head_adapter or student_heads != teacher_heads:
            # PyTorch's default init, as official (not the identity)
            self.attn_adapter = nn.Conv2d(
                student_heads, teacher_heads, kernel_size=1, bias=False)
        else:
            self.attn_adapter = nn.Identity()
        self.teacher_checkpoint = teacher_checkpoint
        self.attn_loss_weight = attn_loss_weight
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.attn_target = attn_target

    def init_weights(self) -> None:
        """Initialise the student, the decoder and the adapter, then load
        the teacher."""
        super().init_weights()
        if self.teacher_checkpoint is not None:
            if not osp.isfile(self.teacher_checkpoint):
                raise FileNotFoundError(
                    f'model.teacher_checkpoint {self.teacher_checkpoint!r} '
                    'does not exist: convert the teacher with '
                    'tools/model_converters/mae_to_mmpretrain.py or extract '
                    'it with tools/model_converters/extract_backbone.py')
            load_backbone_checkpoint(self.teacher, self.teacher_checkpoint)

    def train(self, mode: bool = True) -> 'DMAELite':
        """The teacher stays in eval mode (no dropout, no drop path)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """``loss_rec``: the student's MAE loss; ``loss_attn``: the weighted
        attention distillation loss."""
        student = self.backbone.forward_masked(
            inputs, attn_layers=(self.student_layer, ))
        with torch.no_grad():
            teacher = self.teacher.forward_masked(
                inputs,
                ids_shuffle=student.ids_shuffle,
                attn_layers=(self.teacher_layer, ))
        pred = self.neck(student.latent, student.ids_restore)
        loss_rec = self.head.loss(pred, inputs, student.mask)
        loss_attn = attention_distill_loss(
            next(iter(student.attn_logits.values())),
            next(iter(teacher.attn_logits.values())), self.attn_adapter,
            self.attn_target)
        return dict(
            loss_rec=loss_rec, loss_attn=self.attn_loss_weight * loss_attn)
