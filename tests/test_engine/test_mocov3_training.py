"""MoCo v3 training through mmengine's Runner and tools/train.py: the
momentum schedule, exact resume and a 2-process (gloo) step."""
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from bcssl_mm.utils import load_from_local, teardown_distributed
from conftest import ROOT, run_tool

MOCOV3_DEMO = str(ROOT / 'configs' / 'mocov3' /
                  'mocov3_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')
EPOCHS, ITERS_PER_EPOCH = 3, 2


def tiny_config(tmp_path: Path, data_root: str) -> str:
    """The demo MoCo v3 config shrunk: tiny backbone and heads, 32-px
    views, 8 images in batches of 4 (2 iterations per epoch), 3 epochs,
    no k-NN monitor."""
    path = tmp_path / 'mocov3_tiny.py'
    path.write_text(f"""
_base_ = {MOCOV3_DEMO!r}
crop = dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.2, 1.))
view_pipeline1 = [crop, dict(type='RandomFlip', prob=0.5)]
view_pipeline2 = [crop, dict(type='Solarize', thr=128, prob=0.5)]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1],
         transforms=[view_pipeline1, view_pipeline2]),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(data_root={data_root!r}, pipeline=train_pipeline))
model = dict(
    backbone=dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1],
                            channels=[8, 16, 16, 16]),
                  kernel_size=3),
    neck=dict(in_channels=16, hid_channels=32, out_channels=8),
    head=dict(predictor=dict(in_channels=8, hid_channels=32,
                             out_channels=8)))
train_cfg = dict(max_epochs={EPOCHS})
custom_hooks = [dict(type='MoCoV3Hook', momentum=0.99),
                dict(type='RNGStateHook')]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=-1))
""")
    return str(path)


def _train(config, work_dir, *args):
    return run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), *args
    ])


def _scalars(work_dir):
    logs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    rows = [json.loads(line) for f in logs for line in f.open()]
    return {r['iter']: r for r in rows if 'momentum' in r}


def test_schedule_and_resume_equal_uninterrupted_run(tmp_path, shapes_root):
    config = tiny_config(tmp_path, shapes_root)
    straight = tmp_path / 'straight'
    _train(config, straight)
    s = _scalars(straight)
    total = EPOCHS * ITERS_PER_EPOCH
    # mmengine logs iterations 1-based: iteration `it` ran index it - 1
    assert sorted(s) == list(range(1, total + 1))
    for it, row in s.items():
        want = 1 - 0.01 * (1 + math.cos(math.pi * (it - 1) / total)) / 2
        assert row['momentum'] == pytest.approx(want, rel=1e-9), it

    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copy(straight / 'epoch_1.pth', resumed / 'epoch_1.pth')
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_1.pth'))
    proc = _train(config, resumed, '--resume')
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr

    def state(path):
        return load_from_local(str(path), map_location='cpu')['state_dict']

    a, b = state(straight / 'epoch_3.pth'), state(resumed / 'epoch_3.pth')
    assert a.keys() == b.keys()
    key = 'momentum_encoder.backbone.stages.3.0.pointwise_conv1.weight'
    assert key in a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the momentum encoder did move after the resumed epoch
    assert not torch.equal(a[key], state(straight / 'epoch_1.pth')[key])
    r = _scalars(resumed)
    assert set(r) == set(range(ITERS_PER_EPOCH + 1, total + 1))
    for it in r:
        for name in ('lr', 'momentum', 'loss'):
            assert r[it][name] == pytest.approx(s[it][name], rel=1e-6), \
                (it, name)


def _dist_worker(rank, world_size, port, out_dir):
    from mmengine.dist import all_gather_object

    from bcssl_mm.engine.hooks import MoCoV3Hook
    from conftest import gloo_step_runner

    sys.path.insert(0, str(ROOT / 'tests' / 'test_models' / 'test_algorithms'))
    from test_mocov3 import batch, optim_wrapper, tiny_mocov3

    model, runner = gloo_step_runner(
        rank,
        world_size,
        port,
        tiny_mocov3,
        optim_wrapper,
        epoch=0,
        iter=3,
        max_iters=10)
    ddp, ow = runner.model, runner.optim_wrapper
    hook = MoCoV3Hook()
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    seen = []
    ce = model.head.loss_module.forward
    model.head.loss_module.forward = lambda logits, labels, **kw: (seen.append(
        (logits.shape, labels.clone())), ce(logits, labels, **kw))[1]
    ddp.train_step(batch(seed=rank), ow)  # different data on each rank
    hook.after_train_iter(runner, 0)  # BN statistics averaged
    out = dict(
        states=all_gather_object(
            {k: v.clone()
             for k, v in model.state_dict().items()}),
        seen=all_gather_object(seen),
        momentum=all_gather_object(runner.message_hub.get_info('momentum')))
    if rank == 0:
        torch.save(out, os.path.join(out_dir, 'dist.pth'))
    del ddp, ow, runner
    teardown_distributed()


def test_two_process_step_gathers_keys_and_keeps_ranks_identical(tmp_path):
    torch.multiprocessing.spawn(
        _dist_worker, args=(2, 29541, str(tmp_path)), nprocs=2)
    out = load_from_local(str(tmp_path / 'dist.pth'))
    s0, s1 = out['states']
    assert any(k.startswith('momentum_encoder.') for k in s0)
    for k in s0:  # parameters, momentum encoder and BN statistics
        assert torch.equal(s0[k], s1[k]), k
    # each of the two losses of each rank: 4 queries against 2 x 4 keys,
    # labels offset by 4 x rank
    for rank, seen in enumerate(out['seen']):
        assert len(seen) == 2
        for shape, labels in seen:
            assert tuple(shape) == (4, 8)
            assert labels.tolist() == [4 * rank + i for i in range(4)]
    # iteration 3 of 10: the same momentum on both ranks, from the schedule
    want = 1 - 0.01 * (1 + math.cos(math.pi * 3 / 10)) / 2
    assert out['momentum'] == [pytest.approx(want)] * 2
