"""SelfPatch: neighbour selection and borders, the class-attention
aggregation, the patch loss against a direct computation, gradients and
centers, the BC-SSL stage-3 grids and a 2-process gloo step."""
import math
import os
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.models.necks import (ClassAttentionBlock, SelfPatchAggregator,
                                   neighbour_indices, select_neighbours)
from bcssl_mm.utils import load_from_local, teardown_distributed
from conftest import ROOT

TINY = dict(depths=[1, 1, 1, 1], channels=[8, 16, 16, 16])
SELFPATCH_T = (
    ROOT / 'configs' / 'selfpatch' /
    'selfpatch_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py')


def tiny_selfpatch(**kwargs) -> nn.Module:
    """SelfPatch on a tiny BC-SSL: patches from stage 3 (16 wide; 4 x 4 at
    64 px, 2 x 2 at 32 px), image token GAP + norm of stage 4."""
    cfg = dict(
        type='SelfPatch',
        backbone=dict(
            type='BCSSLConvNeXt',
            arch=TINY,
            kernel_size=3,
            drop_path_rate=0.1,
            out_indices=(2, 3),
            map_indices=(2, )),
        neck=dict(
            type='DINONeck',
            in_channels=16,
            out_channels=64,
            hidden_channels=32,
            bottleneck_channels=8),
        head=dict(type='DINOHead', loss=dict(type='DINOLoss', out_dim=64)),
        aggregator=dict(
            type='SelfPatchAggregator', embed_dims=16, num_heads=2),
        patch_neck=dict(
            type='DINONeck',
            in_channels=16,
            out_channels=32,
            hidden_channels=32,
            bottleneck_channels=8),
        patch_head=dict(
            type='PatchDINOHead', loss=dict(type='PatchDINOLoss', out_dim=32)),
        patch_index=0,
        image_token='backbone',
        student_patches='class_attention')
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def tiny_vit_selfpatch() -> nn.Module:
    """The official scheme: a ViT without CLS token, the image token pooled
    by the aggregator, the student's patches its normed tokens."""
    return tiny_selfpatch(
        backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=16,
                num_layers=1,
                num_heads=2,
                feedforward_channels=32),
            img_size=64,
            patch_size=16,
            with_cls_token=False,
            out_type='featmap',
            final_norm=False),
        patch_index=-1,
        image_token='class_attention',
        student_patches='norm')


def batch(n=2, n_local=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.rand(n, 3, 64, 64, generator=g) * 255 for _ in range(2)]
    views += [
        torch.rand(n, 3, 32, 32, generator=g) * 255 for _ in range(n_local)
    ]
    return dict(inputs=views, data_samples=[None] * n)


def optim_wrapper(model):
    from test_dino import optim_wrapper as dino_optim_wrapper
    return dino_optim_wrapper(model)


# ---------------------------------------------------------------- neighbours


def test_neighbours_inside_at_the_edges_and_in_the_corners():
    index, valid = neighbour_indices(3, 3)
    real = [set(index[p][valid[p]].tolist()) for p in range(9)]
    assert real[4] == {0, 1, 2, 3, 5, 6, 7, 8}  # the centre: all 8
    assert real[0] == {1, 3, 4}  # a corner: 3
    assert real[8] == {4, 5, 7}
    assert real[1] == {0, 2, 3, 4, 5}  # an edge: 5
    assert real[3] == {0, 1, 4, 6, 7}
    assert valid.sum(1).tolist() == [3, 5, 3, 5, 8, 5, 3, 5, 3]
    # invalid slots hold the patch itself
    assert (index[~valid] == torch.arange(9).repeat_interleave(8 -
                                                               valid.sum(1))
            ).all()


def test_wrap_around_takes_the_opposite_border_as_official():
    index, valid = neighbour_indices(4, 4, wrap_around=True)
    assert valid.all()
    # patch (0, 0): rows {3, 0, 1} x cols {3, 0, 1} modulo 4, minus itself
    assert set(index[0].tolist()) == {15, 12, 13, 3, 1, 7, 4, 5}
    # an interior patch is the same with and without wrap-around
    plain, plain_valid = neighbour_indices(4, 4)
    assert plain_valid[5].all()
    assert index[5].tolist() == plain[5].tolist()


def test_grids_that_are_not_square():
    index, valid = neighbour_indices(2, 3)
    real = [set(index[p][valid[p]].tolist()) for p in range(6)]
    assert real[0] == {1, 3, 4}
    assert real[1] == {0, 2, 3, 4, 5}
    with pytest.raises(ValueError, match='kernel_size'):
        neighbour_indices(3, 3, kernel_size=4)


def angle_grid(angles_deg):
    """(1, P, 2) unit tokens at the given angles: cosine similarity is the
    cosine of the angle between two patches."""
    a = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], dim=-1)[None]


# 3 x 3 grid; the centre (patch 4) at 0 degrees
ANGLES = [10, 80, 20, 170, 0, 30, 100, 40, 120]


def test_the_four_most_similar_neighbours_are_chosen():
    tokens = angle_grid(ANGLES)
    index, valid = neighbour_indices(3, 3)
    chosen, chosen_valid = select_neighbours(tokens, index, valid, 4)
    # the centre's closest by angle: 10 (p0), 20 (p2), 30 (p5), 40 (p7)
    assert chosen[0, 4].tolist() == [0, 2, 5, 7]
    assert chosen_valid[0, 4].all()
    # corner p0 (10 deg) has 3 neighbours: p4 (0), p1 (80), p3 (170)
    assert chosen[0, 0, :3].tolist() == [4, 1, 3]
    assert chosen_valid[0, 0].tolist() == [True, True, True, False]
    # edge p1 (80 deg): p6 is not a neighbour (no wrap); p2, p0, p5, p4 are
    assert chosen[0, 1].tolist() == [5, 2, 0, 4]


def test_wrap_around_changes_the_corner_choice():
    tokens = angle_grid(ANGLES)
    index, valid = neighbour_indices(3, 3, wrap_around=True)
    chosen, chosen_valid = select_neighbours(tokens, index, valid, 4)
    assert chosen_valid.all()
    # on a wrapped 3 x 3 grid every patch neighbours all 8 others: p0 (10
    # deg) now takes p2 (20) and p5 (30) from the far side too
    assert chosen[0, 0].tolist() == [4, 2, 5, 7]


def test_class_attention_block_against_its_formula():
    torch.manual_seed(0)
    block = ClassAttentionBlock(8, 2).double()
    for p in block.parameters():
        nn.init.normal_(p, std=0.3)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    cls = torch.randn(3, 1, 8, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 0, 0, 0, 1]],
                        dtype=torch.bool)
    out = block(x, cls, mask)
    for b in range(3):
        u = block.norm1(torch.cat([cls[b], x[b][mask[b]]]))  # kept tokens
        q = block.q(u[:1]).view(2, 4)
        k = block.k(u).view(-1, 2, 4)
        v = block.v(u).view(-1, 2, 4)
        heads = []
        for h in range(2):
            w = F.softmax(k[:, h] @ q[h] / 2., dim=0)  # sqrt(4) = 2
            heads.append(w @ v[:, h])
        c = cls[b] + block.proj(torch.cat(heads)[None])
        c = c + block.mlp(block.norm2(c))
        torch.testing.assert_close(out[b], c)


def test_aggregates_pool_the_chosen_neighbours_only():
    torch.manual_seed(0)
    agg = SelfPatchAggregator(4, 2, num_neighbours=4).double()
    agg.init_weights()
    tokens = torch.randn(2, 9, 4, dtype=torch.float64)
    out = agg.aggregate_neighbours(tokens, 3, 3)
    index, valid = neighbour_indices(3, 3)
    chosen, chosen_valid = select_neighbours(tokens, index, valid, 4)
    for b in range(2):
        for p in range(9):
            keep = chosen[b, p][chosen_valid[b, p]]
            assert len(keep) == min(4, int(valid[p].sum()))
            expected = agg.norm(agg._attend(tokens[b, keep][None]))[0, 0]
            torch.testing.assert_close(out[b, p], expected)


@pytest.mark.parametrize(
    'init_cfg',
    [None, dict(type='TruncNormal', layer='Linear', std=.02, bias=0.)])
def test_learned_token_starts_truncated_normal(init_cfg):
    torch.manual_seed(0)
    agg = SelfPatchAggregator(256, 2, init_cfg=init_cfg)
    agg.init_weights()
    token = agg.cls_token.detach()
    # std 0.02; bounds +-2 absolute, as timm's (and official SelfPatch's) call
    assert 0.015 < token.std() < 0.025 and token.abs().max() <= 2


def test_aggregator_grid_comes_from_the_map():
    agg = SelfPatchAggregator(4, 2)
    agg.init_weights()
    for h, w in [(14, 14), (6, 6), (3, 5)]:
        image, patches = agg(torch.randn(2, 4, h, w), 'neighbours')
        assert image.shape == (2, 4) and patches.shape == (2, h * w, 4)
    with pytest.raises(ValueError, match='patches must be'):
        agg(torch.randn(1, 4, 3, 3), 'mean')
    with pytest.raises(ValueError, match='without neighbours'):
        agg.aggregate_neighbours(torch.randn(1, 1, 4), 1, 1)


# ---------------------------------------------------------------- the loss


def test_patch_loss_against_a_direct_computation():
    loss = MODELS.build(
        dict(
            type='PatchDINOLoss',
            out_dim=5,
            student_temp=0.1,
            center_momentum=0.9))
    loss.center.copy_(torch.linspace(-1, 1, 5)[None])
    g = torch.Generator().manual_seed(0)
    # a global view (4 patches) and a local view (1 patch), 2 images
    student = [torch.randn(2, 4, 5, generator=g), torch.randn(2, 1, 5)]
    teacher = [torch.randn(2, 4, 5, generator=g), torch.randn(2, 1, 5)]
    out = loss(student, teacher, teacher_temp=0.05)
    per_view = []
    for s, t in zip(student, teacher):
        terms = []
        for n in range(2):
            for p in range(s.shape[1]):
                q = torch.exp((t[n, p] - loss.center[0]) / 0.05)
                q = q / q.sum()
                log_p = s[n, p] / 0.1 - torch.logsumexp(s[n, p] / 0.1, 0)
                terms.append(-(q * log_p).sum())
        per_view.append(sum(terms) / len(terms))  # mean over images, patches
    torch.testing.assert_close(out, sum(per_view) / 2)  # mean over views
    with pytest.raises(ValueError, match='same view'):
        loss([student[0]], [teacher[1]], 0.05)


def test_patch_head_center_is_the_mean_over_all_patches():
    head = MODELS.build(
        dict(type='PatchDINOHead', loss=dict(type='PatchDINOLoss', out_dim=3)))
    c0 = torch.tensor([[1., 2., 3.]])
    head.loss_module.center.copy_(c0)
    teacher = [torch.randn(2, 4, 3), torch.randn(2, 1, 3)]
    head.loss([torch.randn(2, 4, 3), torch.randn(2, 1, 3)], teacher, 0.04)
    every_patch = torch.cat([teacher[0].reshape(8, 3), teacher[1][:, 0]])
    torch.testing.assert_close(head.loss_module.center,
                               0.9 * c0 + 0.1 * every_patch.mean(0))


# ------------------------------------------------------------ the algorithm


@pytest.mark.parametrize('build', [tiny_selfpatch, tiny_vit_selfpatch])
def test_losses_and_both_centers_follow_their_own_rules(build):
    torch.manual_seed(0)
    model = build()
    # eval mode: no drop path and BN on running statistics, so that the
    # outputs computed here are the ones the loss sees
    model.eval()
    views = model.data_preprocessor(batch(), True)['inputs']
    c_image = torch.full_like(model.head.loss_module.center, 0.5)
    c_patch = torch.full_like(model.patch_head.loss_module.center, -0.5)
    model.head.loss_module.center.copy_(c_image)
    model.patch_head.loss_module.center.copy_(c_patch)
    student = dict(
        backbone=model.backbone,
        aggregator=model.aggregator,
        neck=model.neck,
        patch_neck=model.patch_neck)
    with torch.no_grad():
        s_image, s_patch = model.embed(student, views, teacher=False)
        t_image, t_patch = model.embed(model.teacher, views, teacher=True)
        losses = model.loss(views, None, teacher_temp=0.04)
    # the image loss: DINO's on the global crops' teacher outputs
    image_only = MODELS.build(dict(type='DINOLoss', out_dim=64))
    image_only.center.copy_(c_image)
    torch.testing.assert_close(
        losses['loss_image'],
        image_only(s_image, t_image[:2 * 2], len(views), 0.04))
    patch_only = MODELS.build(dict(type='PatchDINOLoss', out_dim=32))
    patch_only.center.copy_(c_patch)
    torch.testing.assert_close(losses['loss_patch'],
                               0.1 * patch_only(s_patch, t_patch, 0.04))
    # each center moved towards its own teacher outputs: the image center
    # over every view's image output (official SelfPatch), the patch
    # center over every patch of every view
    torch.testing.assert_close(model.head.loss_module.center,
                               0.9 * c_image + 0.1 * t_image.mean(0))
    every_patch = torch.cat([t.reshape(-1, 32) for t in t_patch])
    torch.testing.assert_close(model.patch_head.loss_module.center,
                               0.9 * c_patch + 0.1 * every_patch.mean(0))
    # patch outputs per view: 4 x 4 patches at 64 px, 2 x 2 at 32 px
    assert [tuple(t.shape)
            for t in t_patch] == [(2, 16, 32)] * 2 + [(2, 4, 32)] * 2


@pytest.mark.parametrize('build', [tiny_selfpatch, tiny_vit_selfpatch])
def test_student_gets_gradients_and_the_teacher_none(build):
    model = build()
    model.train()
    views = model.data_preprocessor(batch(), True)['inputs']
    losses = model.loss(views, None, teacher_temp=0.04)
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if name.startswith('teacher.'):
            assert not p.requires_grad and p.grad is None, name
        elif p.requires_grad:
            assert p.grad is not None, name  # every student part trains
    # the teacher mirrors backbone, aggregator and both projections
    assert set(
        model.teacher) == {'backbone', 'aggregator', 'neck', 'patch_neck'}
    assert model.last_layers() == [
        model.neck.last_layer, model.patch_neck.last_layer
    ]


def test_patch_loss_gradient_reaches_the_backbone_alone():
    """With the image loss cut, the patch loss alone still trains the
    backbone's stage 3 and the aggregator (weight 0.1 scales it)."""
    model = tiny_selfpatch()
    model.train()
    views = model.data_preprocessor(batch(), True)['inputs']
    model.loss(views, None, teacher_temp=0.04)['loss_patch'].backward()
    assert model.backbone.stages[2][0].depthwise_conv.weight.grad.abs().sum(
    ) > 0
    assert model.aggregator.blocks[0].q.weight.grad.abs().sum() > 0
    assert model.backbone.stages[3][0].depthwise_conv.weight.grad is None
    assert model.neck.last_layer.weight_v.grad is None


def test_refuses_settings_that_cannot_train():
    with pytest.raises(ValueError, match='without gradient'):
        tiny_selfpatch(student_patches='norm')
    with pytest.raises(ValueError, match='image_token'):
        tiny_selfpatch(image_token='cls')
    model = tiny_selfpatch(patch_index=1)  # the pooled stage-4 vector
    views = model.data_preprocessor(batch(), True)['inputs']
    with pytest.raises(ValueError, match='patch_index'):
        model.loss(views, None, teacher_temp=0.04)
    with pytest.raises(ValueError, match='more than 2 views'):
        model.loss(views[:2], None, teacher_temp=0.04)


def test_bcssl_t_config_takes_stage_3_grids_at_224_and_96():
    cfg = Config.fromfile(str(SELFPATCH_T))
    cfg.model.backbone.dw_norm_cfg = dict(type='BN')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        backbone = MODELS.build(cfg.model.backbone).eval()
    with torch.no_grad():
        for size, grid in [(224, 14), (96, 6)]:
            outs = backbone(torch.randn(1, 3, size, size))
            assert outs[cfg.model.patch_index].shape == (1, 384, grid, grid)
            # the last stage still runs: GAP + final norm, the image token
            assert outs[-1].shape == (1, 768)
    assert cfg.model.aggregator.embed_dims == 384
    assert cfg.model.image_token == 'backbone'


# ------------------------------------------------------------- distributed


def _dist_worker(rank, world_size, port, out_dir):
    from mmengine.dist import all_gather_object

    from bcssl_mm.engine.hooks import DINOHook
    from conftest import gloo_step_runner

    sys.path.insert(0, str(ROOT / 'tests' / 'test_models' / 'test_algorithms'))
    from test_dino import optim_wrapper as dino_optim_wrapper

    model, runner = gloo_step_runner(
        rank,
        world_size,
        port,
        tiny_selfpatch,
        dino_optim_wrapper,
        epoch=0,
        iter=0,
        max_iters=10,
        max_epochs=100)
    ddp, ow = runner.model, runner.optim_wrapper
    hook = DINOHook(teacher_temp=0.04, warmup_teacher_temp_epochs=0)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    frozen = len(ow.frozen_params)
    ddp.train_step(batch(seed=rank), ow)  # different data on each rank
    hook.after_train_iter(runner, 0)
    out = dict(
        frozen=frozen,
        states=all_gather_object(
            {k: v.clone()
             for k, v in model.state_dict().items()}))
    if rank == 0:
        torch.save(out, os.path.join(out_dir, 'dist.pth'))
    del ddp, ow, runner
    teardown_distributed()


def test_two_process_step_keeps_ranks_identical(tmp_path):
    torch.multiprocessing.spawn(
        _dist_worker, args=(2, 29543, str(tmp_path)), nprocs=2)
    out = load_from_local(str(tmp_path / 'dist.pth'))
    # both projections' last layers (g and v each) frozen in epoch 0
    assert out['frozen'] == 4
    s0, s1 = out['states']
    assert s0.keys() == s1.keys()
    for key in ('head.loss_module.center', 'patch_head.loss_module.center',
                'teacher.aggregator.cls_token'):
        assert key in s0
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
