"""The linear-probe classifier of the DINO / BC-SSL evaluation protocol.

Paper §4.1 (https://arxiv.org/abs/2312.05695) and official DINO's
``eval_linear.py`` (docs/recipes.md §7): a pretrained backbone, frozen, and
one linear layer on its pooled output; only the linear layer trains.
"""
from typing import List, Optional

import torch.nn as nn
from mmengine.logging import MMLogger
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS

from ..utils import load_backbone_checkpoint


@MODELS.register_module()
class LinearProbeClassifier(ImageClassifier):
    """An ``ImageClassifier`` whose backbone (and neck) is frozen for good.

    The linear-probe protocol of DINO and BC-SSL
    (https://arxiv.org/abs/2312.05695, §4.1): the backbone is a fixed feature
    extractor and only the head learns. Unlike a backbone's own
    ``frozen_stages`` (mmpretrain's ConvNeXt leaves its output norm
    trainable), every backbone and neck parameter gets
    ``requires_grad=False``, and the backbone and neck stay in eval mode
    whatever :meth:`train` is called with, so BatchNorm normalises with its
    running statistics and never updates them, and drop path is off.

    A backbone ``init_cfg`` of type ``Pretrained`` is loaded strictly by
    :func:`load_backbone_checkpoint`: every key of the backbone, its output
    norm included, must be in the checkpoint with its shape, and no other
    key may be there; the error lists every mismatch. A probe of a partly
    random backbone would otherwise run for 100 epochs and report a wrong
    number.

    Args:
        backbone (dict): The backbone config; pooled output, e.g.
            ``BCSSLConvNeXt(gap_before_final_norm=True)`` or a ViT with
            ``out_type='cls_token'``.
        head (dict): The head, a ``LinearClsHead``.
        neck (dict, optional): A parameter-free pooling neck
            (``GlobalAveragePooling``) for backbones that return maps
            (ResNet, Swin). Defaults to None.
        pretrained (str, optional): mmpretrain's whole-model checkpoint
            argument. Defaults to None.
        train_cfg (dict, optional): mmpretrain's batch augmentations.
            Defaults to None.
        data_preprocessor (dict, optional): Defaults to
            ``ClsDataPreprocessor``.
        init_cfg (dict, optional): Initialisation of the whole model.
            Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 neck: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        for module in self.frozen_modules():
            for param in module.parameters():
                param.requires_grad = False
            module.eval()

    def frozen_modules(self) -> List[nn.Module]:
        """The backbone, and the neck if any."""
        return [self.backbone] + ([self.neck] if self.with_neck else [])

    def train(self, mode: bool = True) -> 'LinearProbeClassifier':
        """Set the head's mode; the backbone and neck stay in eval mode."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def init_weights(self) -> None:
        """Initialise the head; load the backbone's checkpoint strictly.

        Raises:
            FileNotFoundError: The backbone checkpoint does not exist.
            CheckpointMismatchError: Its keys or shapes differ from the
                backbone's (all of them are listed).
        """
        cfg = self.backbone.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        # NOTE: the backbone's own loader is skipped (mmengine's
        # PretrainedInit ignores mismatched keys; BCSSLConvNeXt's lets the
        # output norms be missing, which a detector needs and a probe must
        # not allow) and the checkpoint is loaded once, strictly, below
        self.backbone.init_cfg = None
        try:
            super().init_weights()
        finally:
            self.backbone.init_cfg = cfg
        load_backbone_checkpoint(
            self.backbone,
            cfg.get('checkpoint'),
            prefix=cfg.get('prefix'),
            map_location=cfg.get('map_location', 'cpu'),
            logger=MMLogger.get_current_instance())


__all__ = ['LinearProbeClassifier']
