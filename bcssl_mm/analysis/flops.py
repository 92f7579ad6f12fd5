"""Multiply-add counting of the analysis tools (mmengine's FlopAnalyzer)."""
from typing import List

import numpy as np
import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs: List, outputs: List) -> int:
    """Multiply-adds of ``aten::scaled_dot_product_attention``.

    ``Q K^T`` and ``A V``: ``B * L * S * (E + Ev)`` for query
    ``(B, .., L, E)``, key ``(B, .., S, E)`` and value ``(B, .., S, Ev)``;
    the softmax and scaling are not counted, as for every elementwise op of
    ``FlopAnalyzer``.
    """
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = int(np.prod(q[:-2]))
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count_macs(model: nn.Module, img_size: int = 224) -> int:
    """Multiply-adds of ``model`` on one ``img_size`` x ``img_size`` image.

    mmengine's ``FlopAnalyzer`` (fvcore's counting: convs, linears,
    ``matmul``/``bmm``/``einsum``, norms). It counts attention written as
    ``matmul`` (mmpretrain's Swin window attention) but has no handle for the
    fused ``aten::scaled_dot_product_attention`` (mmpretrain's and timm's ViT)
    and would silently drop it; ``sdpa_flop_jit`` counts it here.

    Args:
        model (nn.Module): Model in eval mode taking ``(1, 3, S, S)``.
        img_size (int): Input side ``S``. Defaults to 224.
    """
    analyzer = FlopAnalyzer(model, torch.randn(1, 3, img_size, img_size))
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return int(analyzer.total())
