import copy

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.engine.hooks import cosine_momentum
from bcssl_mm.engine.optimizers import clip_grad_per_tensor_
from bcssl_mm.models.algorithms import embed_views, set_step_teacher_temp

TINY = dict(depths=[1, 1, 1, 1], channels=[8, 16, 16, 16])


def tiny_dino(**kwargs) -> nn.Module:
    cfg = dict(
        type='DINO',
        backbone=dict(
            type='BCSSLConvNeXt', arch=TINY, kernel_size=3,
            drop_path_rate=0.1),
        neck=dict(
            type='DINONeck',
            in_channels=16,
            out_channels=64,
            hidden_channels=32,
            bottleneck_channels=8),
        head=dict(type='DINOHead', loss=dict(type='DINOLoss', out_dim=64)))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def optim_wrapper(model, **kwargs):
    cfg = dict(
        type='DINOOptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.04),
        clip_grad=dict(type='per_tensor', max_norm=3.0),
        constructor='DINOOptimWrapperConstructor',
        paramwise_cfg=dict(
            norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.))
    cfg.update(kwargs)
    return build_optim_wrapper(model, cfg)


def batch(n=4, n_local=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.rand(n, 3, 64, 64, generator=g) * 255 for _ in range(2)]
    views += [
        torch.rand(n, 3, 32, 32, generator=g) * 255 for _ in range(n_local)
    ]
    return dict(inputs=views, data_samples=[None] * n)


def train_step(model, data, ow, teacher_temp=0.04):
    """``model.train_step`` as the runner calls it with ``DINOHook``, which
    sets the step's teacher temperature in the message hub first."""
    set_step_teacher_temp(teacher_temp)
    return model.train_step(data, ow)


def test_teacher_starts_as_student_without_drop_path_or_grads():
    model = tiny_dino()
    assert model.teacher['backbone'].stages[3][0].drop_path.__class__ \
        is nn.Identity  # teacher built with drop_path_rate 0
    assert model.backbone.stages[3][0].drop_path.__class__ is not \
        nn.Identity
    for name, s, t in model.online_momentum_params():
        torch.testing.assert_close(s, t, msg=name)
        assert not t.requires_grad
    assert all(not p.requires_grad for p in model.teacher.parameters())


def test_teacher_after_one_step():
    model = tiny_dino()
    model.train()
    ow = optim_wrapper(model)
    teacher_before = {
        n: t.detach().clone()
        for n, _, t in model.online_momentum_params()
    }
    bn = 'backbone.stages.0.0.dw_norm.running_mean'
    train_step(model, batch(), ow)
    # the teacher got no gradient, the student did and moved
    assert all(p.grad is None for p in model.teacher.parameters())
    moved = [
        n for n, s, _ in model.online_momentum_params()
        if not torch.equal(s, teacher_before[n])
    ]
    assert moved
    # own BN statistics: updated on the global crops, not the student's
    t_buffers = dict(model.teacher.named_buffers())
    s_buffers = dict(model.named_buffers())
    assert not torch.allclose(t_buffers[bn], s_buffers[bn])
    assert not torch.allclose(t_buffers[bn], torch.zeros_like(t_buffers[bn]))
    t_buffers_before = {k: v.clone() for k, v in t_buffers.items()}

    m = cosine_momentum(0, 10)
    model.update_teacher(m)
    for n, s, t in model.online_momentum_params():
        torch.testing.assert_close(
            t, m * teacher_before[n] + (1 - m) * s, msg=n)
    # the EMA leaves buffers alone
    for k, v in model.teacher.named_buffers():
        assert torch.equal(v, t_buffers_before[k]), k


def test_teacher_sees_global_crops_only():
    model = tiny_dino()
    model.train()
    seen = []
    model.teacher['backbone'].register_forward_hook(
        lambda mod, inp, out: seen.append(tuple(inp[0].shape)))
    model.loss(batch(n=2, n_local=3)['inputs'], None, teacher_temp=0.04)
    assert seen == [(4, 3, 64, 64)]  # 2 views x 2 images, one call


def test_embed_views_one_call_per_resolution():
    calls = []

    class Backbone(nn.Module):

        def forward(self, x):
            calls.append(tuple(x.shape))
            return (x.mean(dim=(2, 3), keepdim=True).expand(-1, -1, 2, 2), )

    views = [torch.rand(2, 3, 8, 8) for _ in range(2)]
    views += [torch.rand(2, 3, 4, 4) for _ in range(3)]
    out = embed_views(Backbone(), views)
    assert calls == [(4, 3, 8, 8), (6, 3, 4, 4)]
    # view-major order and pooled (N, C)
    assert out.shape == (10, 3)
    torch.testing.assert_close(out[4:6], views[2].mean(dim=(2, 3)))


def test_loss_rejects_single_tensor():
    with pytest.raises(ValueError, match='list of more than 2 views'):
        tiny_dino().loss(torch.rand(2, 3, 32, 32), None, 0.04)


def test_teacher_temp_reaches_the_loss_as_an_argument():
    model = tiny_dino()
    model.train()
    assert not hasattr(model, 'teacher_temp')  # no model attribute
    seen = []
    forward = model.head.loss_module.forward
    model.head.loss_module.forward = lambda s, t, v, temp: (seen.append(
        temp), forward(s, t, v, temp))[1]
    inputs = batch()['inputs']
    set_step_teacher_temp(0.055)
    model(inputs, None, mode='loss')  # what train_step calls
    model.loss(inputs, None, teacher_temp=0.07)
    assert seen == [0.055, 0.07]
    # the temperature changes the loss
    a = copy.deepcopy(model)
    torch.manual_seed(0)
    loss_a = a.loss(inputs, None, teacher_temp=0.04)['loss']
    torch.manual_seed(0)
    loss_b = model.loss(inputs, None, teacher_temp=0.07)['loss']
    assert not torch.allclose(loss_a, loss_b)


def test_train_step_without_teacher_temp_names_the_hook():
    model = tiny_dino()
    MessageHub.get_instance('dino_test_without_teacher_temp')  # a fresh hub
    with pytest.raises(RuntimeError, match='needs DINOHook in custom_hooks'):
        model.train_step(batch(), optim_wrapper(model))


def test_extract_feat_uses_teacher():
    model = tiny_dino()
    with torch.no_grad():
        for p in model.teacher['backbone'].parameters():
            p.mul_(2.)
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(
        model.extract_feat(x)[0], model.teacher['backbone'](x)[0])
    assert not torch.allclose(model.extract_feat(x)[0], model.backbone(x)[0])


def test_clip_grad_per_tensor():
    a = nn.Parameter(torch.zeros(3))
    b = nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([3., 4., 0.])  # norm 5 > 3: scaled
    b.grad = torch.tensor([0.6, 0.8])  # norm 1 < 3: kept
    total = clip_grad_per_tensor_([a, b], 3.0)
    torch.testing.assert_close(a.grad,
                               torch.tensor([3., 4., 0.]) * 3 / (5 + 1e-6))
    torch.testing.assert_close(b.grad, torch.tensor([0.6, 0.8]))
    assert total.item() == pytest.approx(26**0.5)


def test_frozen_params_are_not_updated():
    model = tiny_dino()
    ow = optim_wrapper(model)
    last = list(model.neck.last_layer.parameters())
    ow.frozen_params = [p for p in last if p.requires_grad]
    before = [p.detach().clone() for p in last]
    mlp_before = model.neck.mlp[0].weight.detach().clone()
    train_step(model, batch(), ow)
    for p, p0 in zip(last, before):
        assert torch.equal(p, p0)
        assert p not in ow.optimizer.state  # no Adam moments either
    assert not torch.equal(model.neck.mlp[0].weight, mlp_before)
    ow.frozen_params = []
    train_step(model, batch(seed=1), ow)
    assert not torch.equal(model.neck.last_layer.weight_v, before[1])


def test_norm_last_layer_fixes_weight_g():
    model = tiny_dino(
        neck=dict(
            type='DINONeck',
            in_channels=16,
            out_channels=64,
            hidden_channels=32,
            bottleneck_channels=8,
            norm_last_layer=True))
    assert not model.neck.last_layer.weight_g.requires_grad
    w = model.neck.last_layer.weight
    torch.testing.assert_close(w.norm(dim=1), torch.ones(64))


def test_unknown_clip_type_still_errors():
    with pytest.raises(KeyError, match='max_norm'):
        optim_wrapper(tiny_dino(), clip_grad=dict(type='per_tensor'))
    model = copy.deepcopy(tiny_dino())
    ow = optim_wrapper(model, clip_grad=dict(type='norm', max_norm=1.0))
    assert ow.clip_per_tensor is None


def test_constructor_leaves_the_teacher_out():
    model = tiny_dino()
    ow = optim_wrapper(model)
    optimized = {id(p) for g in ow.optimizer.param_groups for p in g['params']}
    assert not optimized & {id(p) for p in model.teacher.parameters()}
    student = [
        p for n, p in model.named_parameters()
        if not n.startswith('teacher.') and p.requires_grad
    ]
    assert {id(p) for p in student} <= optimized
