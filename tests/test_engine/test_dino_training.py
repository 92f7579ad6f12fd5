"""DINO training through mmengine's Runner and tools/train.py: schedules,
last-layer freezing, exact resume and a 2-process (gloo) step."""
import json
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from bcssl_mm.utils import load_from_local, teardown_distributed
from conftest import ROOT, TINY_DINO_MODEL, run_tool

DINO_DEMO = str(ROOT / 'configs' / 'dino' /
                'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')
# the demo config's schedules: 1 warm-up epoch, cosine to the end
EPOCHS, ITERS_PER_EPOCH, WARMUP = 3, 2, 1
BASE_LR = 1e-2


def tiny_config(tmp_path: Path, data_root: str) -> str:
    """The demo DINO config shrunk: tiny backbone and head, 64/32-px crops,
    8 images in batches of 4 (2 iterations per epoch), 3 epochs."""
    path = tmp_path / 'dino_tiny.py'
    path.write_text(f"""
_base_ = {DINO_DEMO!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='DINOMultiCrop', global_crop_size=64, local_crop_size=32,
         num_local_crops=2),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(data_root={data_root!r}, pipeline=train_pipeline))
{TINY_DINO_MODEL}optim_wrapper = dict(optimizer=dict(lr={BASE_LR}))
train_cfg = dict(max_epochs={EPOCHS})
custom_hooks = [
    dict(type='DINOHook', warmup_teacher_temp_epochs=2,
         freeze_last_layer_epochs=1),
    dict(type='RNGStateHook')
]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=-1))
""")
    return str(path)


class Recorder(Hook):
    """Records the schedules, the teacher temperature the loss received and
    whether the last layer moved."""

    def __init__(self):
        self.rows = []

    def before_train(self, runner):
        loss = runner.model.head.loss_module
        forward = loss.forward

        def spy(student, teacher, num_views, teacher_temp):
            self.rows[-1]['temp'] = teacher_temp
            return forward(student, teacher, num_views, teacher_temp)

        loss.forward = spy

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        groups = runner.optim_wrapper.optimizer.param_groups
        self._v = model.neck.last_layer.weight_v.detach().clone()
        self._w = model.neck.mlp[0].weight.detach().clone()
        self.rows.append(
            dict(
                it=runner.iter,
                epoch=runner.epoch,
                lr=groups[0]['lr'],
                wd=[g['weight_decay'] for g in groups]))

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        model = runner.model
        row = self.rows[-1]
        row['momentum'] = runner.message_hub.get_scalar(
            'train/teacher_momentum').current()
        row['last_layer_moved'] = not torch.equal(
            model.neck.last_layer.weight_v, self._v)
        row['mlp_moved'] = not torch.equal(model.neck.mlp[0].weight, self._w)


def test_schedules_and_last_layer_freezing(tmp_path, shapes_root):
    cfg = Config.fromfile(tiny_config(tmp_path, shapes_root))
    cfg.work_dir = str(tmp_path / 'work')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        runner = Runner.from_cfg(cfg)
        recorder = Recorder()
        runner.register_hook(recorder, priority='LOWEST')
        runner.train()

    rows = recorder.rows
    total = EPOCHS * ITERS_PER_EPOCH
    assert [r['it'] for r in rows] == list(range(total))
    warmup_iters = WARMUP * ITERS_PER_EPOCH
    for r in rows:
        it = r['it']
        # lr: DINO's np.linspace(0, lr, warmup_iters), then cosine to 1e-6
        if it < warmup_iters:
            want_lr = BASE_LR * it / (warmup_iters - 1)
        else:
            t = (it - warmup_iters) / (total - warmup_iters)
            want_lr = 1e-6 + (BASE_LR - 1e-6) * (1 + math.cos(math.pi * t)) / 2
        assert r['lr'] == pytest.approx(want_lr, rel=1e-6, abs=1e-9), it
        # weight decay: cosine 0.04 -> 0.4 on decayed groups, 0 elsewhere
        want_wd = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * it / total)) / 2
        decayed = [wd for wd in r['wd'] if wd != 0]
        assert decayed and all(wd == pytest.approx(want_wd, rel=1e-6)
                               for wd in decayed), it
        assert 0. in r['wd']  # biases and 1-D params
        # teacher momentum: 1 - 0.004 (cos(pi it / total) + 1) / 2
        want_m = 1 - 0.004 * (math.cos(math.pi * it / total) + 1) / 2
        assert r['momentum'] == pytest.approx(want_m, rel=1e-9), it
        # the loss's teacher temperature: linspace(0.04, 0.07, 2 epochs),
        # then 0.07
        want_t = [0.04, 0.07, 0.07][r['epoch']]
        assert r['temp'] == pytest.approx(want_t), it
        # last layer: frozen in epoch 0 only; the MLP trains throughout
        assert r['last_layer_moved'] == (r['epoch'] >= 1), it
        assert r['mlp_moved'], it


def _train(config, work_dir, *args, **env):
    return run_tool([
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(work_dir), *args
    ], **env)


def _ckpt(path):
    return load_from_local(str(path), map_location='cpu')


def _scalars(work_dir):
    logs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    rows = [json.loads(line) for f in logs for line in f.open()]
    return {r['iter']: r for r in rows if 'teacher_temp' in r}


def test_resume_equals_uninterrupted_run(tmp_path, shapes_root):
    config = tiny_config(tmp_path, shapes_root)
    straight = tmp_path / 'straight'
    _train(config, straight)

    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copy(straight / 'epoch_1.pth', resumed / 'epoch_1.pth')
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_1.pth'))
    proc = _train(config, resumed, '--resume')
    assert 'resumed epoch: 1' in proc.stdout + proc.stderr

    a = _ckpt(straight / 'epoch_3.pth')['state_dict']
    b = _ckpt(resumed / 'epoch_3.pth')['state_dict']
    assert a.keys() == b.keys()
    assert 'head.loss_module.center' in a
    assert any(k.startswith('teacher.backbone.') for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the teacher and the center did move after the resumed epoch
    c = _ckpt(straight / 'epoch_1.pth')['state_dict']
    for k in ('head.loss_module.center',
              'teacher.backbone.stages.3.0.pointwise_conv1.weight'):
        assert not torch.equal(a[k], c[k]), k
    # the schedules continue where they were: same logged values per iter
    s, r = _scalars(straight), _scalars(resumed)
    assert set(r) == {3, 4, 5, 6}  # iterations of epochs 2 and 3 (1-based)
    for it in r:
        for key in ('lr', 'teacher_temp', 'teacher_momentum', 'loss'):
            assert r[it][key] == pytest.approx(s[it][key], rel=1e-6), \
                (it, key)


def _dist_worker(rank, world_size, port, out_dir):
    from mmengine.dist import all_gather_object

    from bcssl_mm.engine.hooks import DINOHook
    from conftest import gloo_step_runner

    sys.path.insert(0, str(ROOT / 'tests' / 'test_models' / 'test_algorithms'))
    from test_dino import batch, optim_wrapper, tiny_dino

    model, runner = gloo_step_runner(
        rank,
        world_size,
        port,
        tiny_dino,
        optim_wrapper,
        epoch=1,
        iter=0,
        max_iters=10,
        max_epochs=100)
    ddp, ow = runner.model, runner.optim_wrapper
    hook = DINOHook()
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    seen = []
    update = model.head.loss_module.update_center
    model.head.loss_module.update_center = lambda t: (seen.append(t.detach(
    ).clone()), update(t))
    ddp.train_step(batch(seed=rank), ow)  # different data on each rank
    bn_stats = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.endswith(('running_mean', 'running_var'))
    }
    hook.after_train_iter(runner, 0)  # EMA, then BN statistics averaged
    out = dict(
        states=all_gather_object(
            {k: v.clone()
             for k, v in model.state_dict().items()}),
        bn_stats=all_gather_object(bn_stats),
        teacher_outs=all_gather_object(seen[0]))
    if rank == 0:
        torch.save(out, os.path.join(out_dir, 'dist.pth'))
    # the wrapper's reducer holds the group: drop it before the teardown
    # (destroying the group from its finaliser deadlocked once with a gloo
    # worker thread freeing the last all_gather)
    del ddp, ow, runner
    teardown_distributed()


def test_two_process_step_keeps_ranks_identical(tmp_path):
    torch.multiprocessing.spawn(
        _dist_worker, args=(2, 29531, str(tmp_path)), nprocs=2)
    out = load_from_local(str(tmp_path / 'dist.pth'))
    s0, s1 = out['states']
    assert s0.keys() == s1.keys()
    assert 'head.loss_module.center' in s0
    # everything, BN running statistics of student and teacher included
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    # each rank's BN layers saw its own batch; DINOHook averaged them
    b0, b1 = out['bn_stats']
    teacher_bn = 'teacher.backbone.stages.0.0.dw_norm.running_mean'
    assert teacher_bn in b0
    assert any(k.startswith('backbone.') for k in b0)  # the student's too
    assert not torch.allclose(b0[teacher_bn], b1[teacher_bn])
    for k in b0:
        torch.testing.assert_close(s0[k], (b0[k] + b1[k]) / 2, msg=k)
    # the center is the mean teacher output over both ranks' batches
    t0, t1 = out['teacher_outs']
    assert not torch.allclose(t0.mean(0), t1.mean(0))
    torch.testing.assert_close(s0['head.loss_module.center'],
                               0.1 * torch.cat([t0, t1]).mean(0, keepdim=True))


def test_dist_train_tool_runs_dino(tmp_path, shapes_root):
    config = tiny_config(tmp_path, shapes_root)
    work_dir = tmp_path / 'dist'
    proc = run_tool([
        'bash', 'tools/dist_train.sh', config, '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=2',
        'train_dataloader.batch_size=2'
    ],
                    PORT='29533')
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert (work_dir / 'epoch_2.pth').is_file()


def test_hook_warns_about_schedules_the_run_cuts_short():
    from bcssl_mm.engine.hooks import DINOHook

    # the recipe's 30-epoch temperature warm-up in a 10-epoch run
    hook = DINOHook(
        warmup_teacher_temp=0.04,
        teacher_temp=0.07,
        warmup_teacher_temp_epochs=30)
    (message, ) = hook.schedule_warnings(10)
    assert 'warmup_teacher_temp_epochs=30' in message
    assert 'train_cfg.max_epochs=10' in message
    # epoch 9 of linspace(0.04, 0.07, 30)
    assert f'ends at {0.04 + 0.03 * 9 / 29:.4g}' in message
    assert hook.schedule_warnings(30) == []
    # a constant temperature has nothing to reach
    assert DINOHook(
        teacher_temp=0.04,
        warmup_teacher_temp_epochs=30).schedule_warnings(10) == []
    (message, ) = DINOHook(
        warmup_teacher_temp_epochs=1,
        freeze_last_layer_epochs=2).schedule_warnings(2)
    assert 'freeze_last_layer_epochs=2' in message
    assert 'never train' in message
