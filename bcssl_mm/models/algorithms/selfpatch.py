"""SelfPatch: DINO plus a patch-level task, for ViTs and BC-SSL maps.

Paper: "Patch-level Representation Learning for Self-supervised Vision
Transformers" (Yun et al., CVPR 2022, https://arxiv.org/abs/2206.07990);
recipe and the official code's details in docs/recipes.md §9; the side by
side check against official SelfPatch in docs/selfpatch.md.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils import pool_backbone_output
from .dino import DINO, group_views

IMAGE_TOKENS = ('class_attention', 'backbone')
STUDENT_PATCHES = ('norm', 'class_attention')


@MODELS.register_module()
class SelfPatch(DINO):
    """DINO's image-level self-distillation plus SelfPatch's patch-level one.

    Per view, the backbone's patch tokens (a feature map ``(N, C, H, W)``,
    output ``patch_index`` of the backbone; the grid is the map's) go
    through :class:`~bcssl_mm.models.necks.SelfPatchAggregator`:

    - **image level**: the image token (``image_token='class_attention'``:
      the aggregator's learned token pooled over all patches, replacing the
      ViT's CLS token, official; ``'backbone'``: the backbone's own pooled
      last output, e.g. BC-SSL's GAP + final norm of the last stage) goes
      through ``neck`` (65536-d) into DINO's loss (``head``, its center);
      the teacher's image outputs of the global crops are the targets;
    - **patch level**: in every view, global and local, the teacher
      aggregates for each patch its ``num_neighbours`` most similar
      neighbours; the student's patch ``i`` (``student_patches='norm'``:
      its token, normed, official; ``'class_attention'``: its token pooled
      alone by the same blocks) goes through ``patch_neck`` (4096-d) and
      is matched to the teacher's aggregate of ``i``'s neighbours by
      :class:`~bcssl_mm.models.losses.PatchDINOLoss` (``patch_head``, its
      own center), added with ``patch_loss_weight`` (0.1).

    The teacher therefore forwards the local crops too. As in official
    SelfPatch, the image-level center moves towards the teacher's image
    outputs of all views (DINO: the global crops only); only the global
    ones are targets.

    With ``image_token='backbone'`` nothing on the student side would pass
    through the class-attention blocks with ``student_patches='norm'``:
    they would get no gradient, and the teacher (their EMA) would
    aggregate neighbours with the blocks' random initialisation forever.
    That combination is refused; use ``student_patches='class_attention'``,
    which trains the blocks through the patch loss (both sides then apply
    the same function: to the patch alone, to its neighbours).

    The teacher is the EMA of everything but the loss heads: backbone,
    aggregator, both projections (:class:`MomentumEncoderMixin`).
    ``DINOHook`` drives the schedules and freezes both projections' last
    layers in the first epoch, as official SelfPatch.

    Args:
        backbone (dict): Backbone config; ``patch_index`` selects its
            (N, C, H, W) patch-token output.
        neck (dict): Image-level :class:`DINONeck` config (65536).
        head (dict): Image-level :class:`DINOHead` config.
        aggregator (dict): :class:`SelfPatchAggregator` config.
        patch_neck (dict): Patch-level :class:`DINONeck` config (4096).
        patch_head (dict): :class:`PatchDINOHead` config.
        patch_loss_weight (float): Defaults to 0.1.
        patch_index (int): Backbone output with the patch tokens. Defaults
            to 0.
        image_token (str): 'class_attention' (official) or 'backbone'.
        student_patches (str): 'norm' (official) or 'class_attention'.
        num_teacher_views (int): Leading global crops. Defaults to 2.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 aggregator: dict,
                 patch_neck: dict,
                 patch_head: dict,
                 patch_loss_weight: float = 0.1,
                 patch_index: int = 0,
                 image_token: str = 'class_attention',
                 student_patches: str = 'norm',
                 num_teacher_views: int = 2,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if image_token not in IMAGE_TOKENS:
            raise ValueError(f'SelfPatch: image_token must be one of '
                             f'{IMAGE_TOKENS}, got {image_token!r}')
        if student_patches not in STUDENT_PATCHES:
            raise ValueError(f'SelfPatch: student_patches must be one of '
                             f'{STUDENT_PATCHES}, got {student_patches!r}')
        if image_token == 'backbone' and student_patches == 'norm':
            raise ValueError(
                "SelfPatch: image_token='backbone' with "
                "student_patches='norm' leaves the class-attention blocks "
                'without gradient (the teacher would aggregate with their '
                "random init); set student_patches='class_attention'")
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            num_teacher_views=num_teacher_views,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.aggregator = MODELS.build(aggregator)
        self.patch_neck = MODELS.build(patch_neck)
        self.patch_head = MODELS.build(patch_head)
        self.build_momentum_encoder(
            aggregator=aggregator, patch_neck=patch_neck)
        self.patch_loss_weight = patch_loss_weight
        self.patch_index = patch_index
        self.image_token = image_token
        self.student_patches = student_patches

    def last_layers(self) -> List[nn.Module]:
        """Both projections' last layers (official SelfPatch freezes every
        parameter named ``last_layer`` in the first epoch)."""
        return [self.neck.last_layer, self.patch_neck.last_layer]

    def embed(self, parts, views: Sequence[torch.Tensor],
              teacher: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Image and patch projections of ``views`` through ``parts``
        (the student's modules or the teacher's ``ModuleDict``).

        Returns:
            tuple: (V * N, D) image projections, view-major, and V patch
            projections (N, P_v, D_p).
        """
        patches_mode = 'neighbours' if teacher else self.student_patches
        pool = self.image_token == 'class_attention'
        images, patches = [], []
        for group in group_views(views):
            outs = parts['backbone'](torch.cat(group))
            feat_map = outs[self.patch_index]
            if feat_map.dim() != 4:
                raise ValueError(
                    f'SelfPatch: backbone output {self.patch_index} '
                    f'(patch_index) has shape {tuple(feat_map.shape)}; '
                    'expected a (N, C, H, W) map of patch tokens (ViT: '
                    "out_type='featmap'; BCSSLConvNeXt: map_indices)")
            image, patch = parts['aggregator'](feat_map, patches_mode, pool)
            images.append(image if pool else pool_backbone_output(outs))
            patches.extend(patch.chunk(len(group)))
        image_out = parts['neck']((torch.cat(images), ))[0]
        # one projection call for the patches of all views
        flat = torch.cat([p.reshape(-1, p.shape[-1]) for p in patches])
        flat_out = parts['patch_neck']((flat, ))[0]
        sizes = [p.shape[0] * p.shape[1] for p in patches]
        patch_out = [
            out.reshape(p.shape[0], p.shape[1], -1)
            for out, p in zip(flat_out.split(sizes), patches)
        ]
        return image_out, patch_out

    def loss(self, inputs: List[torch.Tensor],
             data_samples: Optional[List[DataSample]],
             teacher_temp: float) -> Dict[str, torch.Tensor]:
        """Image-level and weighted patch-level losses of multi-crop views.

        Args:
            inputs (list[Tensor]): V views (N, 3, H_v, W_v), the first
                ``num_teacher_views`` of them global crops.
            data_samples (list[DataSample], optional): Unused.
            teacher_temp (float): Teacher temperature of this step (both
                losses).

        Returns:
            dict: ``loss_image`` and ``loss_patch`` (already weighted); the
            runner optimises their sum.
        """
        self.check_views(inputs)
        with torch.no_grad():
            teacher_image, teacher_patch = self.embed(
                self.teacher, inputs, teacher=True)
        # the online modules the teacher mirrors, by the same names
        student = {name: getattr(self, name) for name in self.teacher}
        student_image, student_patch = self.embed(
            student, inputs, teacher=False)
        loss_image = self.head.loss(
            student_image,
            teacher_image[:len(inputs[0]) * self.num_teacher_views],
            len(inputs),
            teacher_temp,
            center_out=teacher_image)
        loss_patch = self.patch_head.loss(student_patch, teacher_patch,
                                          teacher_temp)
        return dict(
            loss_image=loss_image,
            loss_patch=self.patch_loss_weight * loss_patch)
