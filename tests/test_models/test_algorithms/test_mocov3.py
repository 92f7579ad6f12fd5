"""MoCo v3: the loss against its formula, the momentum encoder, the LARS
exclusions, the frozen ViT patch projection."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.engine.hooks import cosine_momentum
from bcssl_mm.models.algorithms import set_step_momentum

TINY = dict(depths=[1, 1, 1, 1], channels=[8, 16, 16, 16])
TINY_VIT = dict(
    embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
T = 0.2


def mlp(in_channels, num_layers, last_bn):
    return dict(
        type='NonLinearNeck',
        in_channels=in_channels,
        hid_channels=32,
        out_channels=8,
        num_layers=num_layers,
        with_bias=False,
        with_last_bn=last_bn,
        with_last_bn_affine=False,
        with_last_bias=False,
        with_avg_pool=False,
        norm_cfg=dict(type='BN1d'))


def tiny_mocov3(backbone=None, in_channels=16, **head_kwargs) -> nn.Module:
    backbone = backbone or dict(type='BCSSLConvNeXt', arch=TINY, kernel_size=3)
    model = MODELS.build(
        dict(
            type='BCSSLMoCoV3',
            backbone=backbone,
            neck=mlp(in_channels, 3, True),
            head=dict(
                type='BCSSLMoCoV3Head',
                predictor=mlp(8, 2, True),
                temperature=T,
                **head_kwargs)))
    model.init_weights()
    return model


def optim_wrapper(model, optimizer=None, **paramwise_cfg):
    return build_optim_wrapper(
        model,
        dict(
            optimizer=optimizer
            or dict(type='AdamW', lr=1e-2, weight_decay=0.1),
            constructor='SelfSupOptimWrapperConstructor',
            paramwise_cfg=paramwise_cfg))


def batch(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.rand(n, 3, size, size, generator=g) * 255 for _ in '12']
    return dict(inputs=views, data_samples=[None] * n)


def contrastive(q, k_all, rank, temperature):
    """Official MoCo v3's contrastive_loss, written out pair by pair."""
    q, k_all = F.normalize(q, dim=1), F.normalize(k_all, dim=1)
    n = q.shape[0]
    total = 0.
    for i in range(n):
        logits = torch.stack([q[i] @ k for k in k_all]) / temperature
        total = total - torch.log_softmax(logits, 0)[i + n * rank]
    return total / n * (2 * temperature)


def test_head_loss_equals_formula_with_rank_offset(monkeypatch):
    from mmpretrain.models.heads import mocov3_head
    model = tiny_mocov3()
    head = model.head.eval()  # fixed BN statistics for the direct formula
    g = torch.Generator().manual_seed(1)
    q = torch.randn(5, 8, generator=g)
    k_mine = torch.randn(5, 8, generator=g)
    k_other = torch.randn(5, 8, generator=g)
    # this process is rank 1 of 2: keys of rank 0 come first
    monkeypatch.setattr(mocov3_head, 'get_rank', lambda: 1)
    monkeypatch.setattr(mocov3_head, 'all_gather',
                        lambda t: [F.normalize(k_other, dim=1), t])
    got = head.loss(q, k_mine)
    pred = head.predictor([q])[0]
    want = contrastive(pred, torch.cat([k_other, k_mine]), 1, T)
    torch.testing.assert_close(got, want)
    # the 2T factor: the same logits at rank 0 without it differ by 1 / 2T
    monkeypatch.setattr(mocov3_head, 'get_rank', lambda: 0)
    monkeypatch.setattr(mocov3_head, 'all_gather', lambda t: [t])
    unscaled = F.cross_entropy(
        F.normalize(pred, dim=1) @ F.normalize(k_mine, dim=1).T / T,
        torch.arange(5))
    torch.testing.assert_close(head.loss(q, k_mine), unscaled * 2 * T)


def test_head_refuses_a_scaled_loss_config():
    with pytest.raises(ValueError, match='loss_weight'):
        tiny_mocov3(loss=dict(type='CrossEntropyLoss', loss_weight=2 * T))


def test_symmetric_loss_and_momentum_encoder_after_one_step():
    model = tiny_mocov3()
    model.train()
    data = batch()
    views = model.data_preprocessor(data, True)['inputs']
    m = 0.9
    # a step that already moved the base encoder, so that the EMA shows
    set_step_momentum(m)
    ow = optim_wrapper(model)
    model.train_step(batch(seed=5), ow)

    ref = copy.deepcopy(model)
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    set_step_momentum(m)
    loss = model.train_step(data, ow)['loss']

    # the momentum encoder: m * itself + (1 - m) * base, parameters only
    for name, q, k in ref.online_momentum_params():
        part, key = name.split('.', 1)
        want = m * base_before[f'momentum_encoder.{name}'] + (
            1 - m) * base_before[name]
        got = dict(model.momentum_encoder[part].named_parameters())[key]
        torch.testing.assert_close(got, want, msg=name)
        assert not got.requires_grad and got.grad is None
    # its BN statistics are its own: those of its forwards on both views
    ref.update_momentum_encoder(m)
    enc = ref.momentum_encoder
    with torch.no_grad():
        k1 = ref.project(enc['backbone'], enc['neck'], views[0])
        k2 = ref.project(enc['backbone'], enc['neck'], views[1])
    state = model.state_dict()
    stats = [k for k in state if k.endswith('running_mean')]
    mom_stats = [k for k in stats if k.startswith('momentum_encoder.')]
    assert mom_stats
    for key in mom_stats:
        want = ref.state_dict()[key]
        torch.testing.assert_close(state[key], want, msg=key)
        # and not the base encoder's (mmpretrain's CosineEMA copies those)
        assert not torch.allclose(state[key],
                                  state[key[len('momentum_encoder.'):]]), key
    # the symmetric loss on the same inputs, before the optimizer step
    q1 = ref.project(ref.backbone, ref.neck, views[0])
    q2 = ref.project(ref.backbone, ref.neck, views[1])
    want = ref.head.loss(q1, k2) + ref.head.loss(q2, k1)
    torch.testing.assert_close(loss, want)


def test_momentum_schedule_at_chosen_iterations():
    total = 1000
    assert cosine_momentum(0, total, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(total // 2, total, 0.99) == pytest.approx(0.995)
    assert cosine_momentum(total, total, 0.99) == pytest.approx(1.)
    # official adjust_moco_momentum(epoch + i / iters, args) at 1/4
    assert cosine_momentum(250, total,
                           0.99) == pytest.approx(1 - 0.5 *
                                                  (1 + 2**-0.5) * 0.01)


def test_momentum_encoder_is_not_optimized():
    model = tiny_mocov3()
    ow = optim_wrapper(model)
    optimized = {id(p) for g in ow.optimizer.param_groups for p in g['params']}
    assert not any(
        id(p) in optimized for p in model.momentum_encoder.parameters())
    assert all(id(p) in optimized for p in model.backbone.parameters())


@pytest.mark.parametrize('backbone,names', [
    (dict(type='ResNet', depth=18, out_indices=(3, )),
     ('bn1.weight', 'layer1.0.bn2.bias', 'layer2.0.downsample.1.weight')),
    (dict(type='BCSSLConvNeXt', arch=TINY, kernel_size=3),
     ('downsample_layers.1.0.weight', 'stages.0.0.gamma',
      'stages.0.0.dw_norm.weight', 'norm3.bias',
      'stages.1.0.pointwise_conv1.bias')),
])
def test_lars_excludes_every_flat_parameter(backbone, names):
    in_channels = 512 if backbone['type'] == 'ResNet' else 16
    model = tiny_mocov3(backbone, in_channels)
    ow = optim_wrapper(
        model,
        dict(type='MoCoV3LARS', lr=0.5, momentum=0.9, weight_decay=1e-2),
        flat_cfg=dict(decay_mult=0., lars_exclude=True))
    by_param = {
        id(p): g
        for g in ow.optimizer.param_groups for p in g['params']
    }
    params = dict(model.backbone.named_parameters())
    for name in names:  # ResNet / ConvNeXt names, all 1-D
        group = by_param[id(params[name])]
        assert params[name].ndim == 1
        assert group['lars_exclude'] and group['weight_decay'] == 0, name
    for p in model.parameters():
        if id(p) in by_param and p.ndim > 1:
            group = by_param[id(p)]
            assert not group.get('lars_exclude', False)
            assert group['weight_decay'] == 1e-2
    # two steps at two learning rates: an excluded parameter moves by
    # momentum SGD, a matrix by official MoCo v3's LARS:
    # d = g + wd p, d *= eta ||p|| / ||d||, buf = 0.9 buf + d, p -= lr buf
    set_step_momentum(0.99)
    model.train()
    flat = names[0]
    matrix = next(n for n, p in params.items() if p.ndim > 1)
    want = {n: params[n].detach().clone() for n in (flat, matrix)}
    buf = {n: torch.zeros_like(w) for n, w in want.items()}
    for lr, seed in ((0.5, 0), (1.5, 1)):
        ow.optimizer.zero_grad()
        model.loss(
            model.data_preprocessor(batch(seed=seed), True)['inputs'], None,
            0.99)['loss'].backward()
        for n, w in want.items():
            d = params[n].grad.clone()
            if n == matrix:
                d = d + 1e-2 * w
                d = d * 0.001 * w.norm() / d.norm()
            buf[n] = 0.9 * buf[n] + d
            want[n] = w - lr * buf[n]
        for group in ow.optimizer.param_groups:
            group['lr'] = lr
        ow.optimizer.step()
        for n, w in want.items():
            torch.testing.assert_close(params[n].detach(), w, msg=n)


def test_vit_patch_projection_gets_no_gradient():
    vit = dict(
        type='MoCoV3ViT',
        arch=TINY_VIT,
        img_size=32,
        patch_size=16,
        stop_grad_conv1=True,
        out_type='cls_token')
    model = tiny_mocov3(vit, 32)
    proj = model.backbone.patch_embed.projection
    assert not model.backbone.pos_embed.requires_grad  # fixed sin-cos
    ow = optim_wrapper(model)
    fc = model.backbone.layers[0].ffn.layers[0][0]
    before = proj.weight.detach().clone(), fc.weight.detach().clone()
    set_step_momentum(0.99)
    model.train()
    model.loss(model.data_preprocessor(batch(), True)['inputs'], None,
               0.99)['loss'].backward()
    assert proj.weight.grad is None and proj.bias.grad is None
    assert fc.weight.grad is not None
    ow.step()
    assert torch.equal(proj.weight, before[0])
    assert not torch.equal(fc.weight, before[1])


def test_train_step_without_momentum_names_the_hook():
    from mmengine.logging import MessageHub
    model = tiny_mocov3()
    MessageHub.get_instance('mocov3_test_without_momentum')  # a fresh hub
    with pytest.raises(RuntimeError, match='needs MoCoV3Hook in custom_hooks'):
        model.train_step(batch(), optim_wrapper(model))


def test_loss_needs_two_views():
    model = tiny_mocov3()
    with pytest.raises(ValueError, match='list of 2 views'):
        model.loss([torch.rand(2, 3, 32, 32)] * 3, None, 0.99)
