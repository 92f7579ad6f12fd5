"""MoCo v3's predictor and contrastive loss, scaled as the official code."""
import torch
from mmpretrain.models.heads import MoCoV3Head
from mmpretrain.registry import MODELS


@MODELS.register_module()
class BCSSLMoCoV3Head(MoCoV3Head):
    """mmpretrain's :class:`MoCoV3Head` with the loss scaled by ``2 * T``.

    For a query batch ``q`` (N, C) of this process and keys ``k`` gathered
    from all P processes (P * N, C), both L2-normalised after the
    predictor / as given, the loss is the cross-entropy of the logits
    ``q @ k.T / T`` with labels ``arange(N) + N * rank``, times ``2 * T``
    (official MoCo v3's ``contrastive_loss``). mmpretrain's head leaves the
    scaling to the loss config (``loss_weight=2 * temperature``), so the
    temperature is written twice and nothing checks that the two agree;
    here it is applied from ``temperature`` and the loss must be plain
    (``loss_weight`` 1). Paper: https://arxiv.org/abs/2104.02057.

    Args:
        predictor (dict): Predictor config (mmpretrain ``NonLinearNeck``).
        loss (dict): Loss config, ``CrossEntropyLoss`` with ``loss_weight``
            1. Defaults to ``dict(type='CrossEntropyLoss')``.
        temperature (float): T. Defaults to 1.0.
    """

    def __init__(self,
                 predictor: dict,
                 loss: dict = dict(type='CrossEntropyLoss'),
                 temperature: float = 1.0) -> None:
        if loss.get('loss_weight', 1.) != 1.:
            raise ValueError(
                f'BCSSLMoCoV3Head: model.head.loss.loss_weight is '
                f"{loss['loss_weight']!r}; the head scales the loss by "
                f'2 * temperature itself (= {2 * temperature!r}), so leave '
                'loss_weight at 1')
        if temperature <= 0:
            raise ValueError('BCSSLMoCoV3Head: model.head.temperature must '
                             f'be > 0, got {temperature!r}')
        super().__init__(
            predictor=predictor, loss=loss, temperature=temperature)

    def loss(self, base_out: torch.Tensor,
             momentum_out: torch.Tensor) -> torch.Tensor:
        """``2 T * CE(normalize(pred(q)) @ gather(normalize(k)).T / T,
        arange(N) + N * rank)``.

        Args:
            base_out (Tensor): (N, C) projections of the base encoder.
            momentum_out (Tensor): (N, C) projections of the momentum
                encoder of the other view, without gradient.
        """
        return super().loss(base_out, momentum_out) * (2 * self.temperature)
