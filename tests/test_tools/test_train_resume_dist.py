"""End-to-end runs of tools/train.py, tools/test.py and tools/dist_train.sh on
the demo config with a tiny generated dataset (8 train / 4 val images)."""
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from bcssl_mm.evaluation.results import read_result
from bcssl_mm.utils import load_from_local
from conftest import DEMO_CONFIG, demo_cfg_options, run_tool

# 3 epochs of 2 iterations, validation after each epoch (which must not
# perturb the training RNG stream), every checkpoint kept
SHORT = [
    'train_cfg.max_epochs=3', 'train_cfg.val_interval=1',
    'param_scheduler.1.T_max=3', 'param_scheduler.1.end=3',
    'default_hooks.checkpoint.max_keep_ckpts=-1',
    'default_hooks.logger.interval=1'
]


def _train(work_dir, data_root, *args):
    return run_tool([
        sys.executable, 'tools/train.py', DEMO_CONFIG, '--work-dir',
        str(work_dir), *args, '--cfg-options', *SHORT,
        *demo_cfg_options(data_root)
    ])


def _weights(path):
    return load_from_local(str(path), map_location='cpu')['state_dict']


KILL_HOOK = '''
import os, signal
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillAtIterHook(Hook):
    def __init__(self, at_iter):
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at_iter:
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _assert_same_weights(a_path, b_path):
    a, b = _weights(a_path), _weights(b_path)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_equals_uninterrupted_run_and_test_prints_table(
        tmp_path, shapes_root):
    straight = tmp_path / 'straight'
    _train(straight, shapes_root)

    # an interrupted run: its work dir holds what the first two epochs wrote
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        shutil.copy(straight / name, resumed / name)
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_2.pth'))
    proc = _train(resumed, shapes_root, '--resume')
    assert 'resumed epoch: 2' in proc.stdout + proc.stderr
    assert 'restored the RNG states' in proc.stdout + proc.stderr

    _assert_same_weights(straight / 'epoch_3.pth', resumed / 'epoch_3.pth')
    # and training did move the weights after the resume
    a = _weights(straight / 'epoch_3.pth')
    c = _weights(straight / 'epoch_2.pth')
    assert not torch.equal(a['backbone.stages.3.1.gamma'],
                           c['backbone.stages.3.1.gamma'])

    # killed (SIGKILL) after the first of epoch 3's two iterations, then
    # resumed: epoch 3 is redone from epoch_2.pth and ends where the
    # uninterrupted run ended
    (tmp_path / 'kill_hook.py').write_text(KILL_HOOK)
    killing = tmp_path / 'killing.py'
    killing.write_text(
        f'_base_ = {DEMO_CONFIG!r}\n'
        "custom_imports = dict(imports=['mmpretrain.models', 'bcssl_mm', "
        "'kill_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='RNGStateHook'), "
        "dict(type='KillAtIterHook', at_iter=5)]\n")
    killed = tmp_path / 'killed'
    proc = subprocess.run([
        sys.executable, 'tools/train.py',
        str(killing), '--work-dir',
        str(killed), '--cfg-options', *SHORT, *demo_cfg_options(shapes_root)
    ],
                          cwd=osp.dirname(osp.dirname(osp.dirname(__file__))),
                          env=dict(os.environ, PYTHONPATH=str(tmp_path)),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (killed / 'epoch_2.pth').exists()
    assert not (killed / 'epoch_3.pth').exists()
    (killed / 'last_checkpoint').write_text('')  # and a damaged pointer
    proc = _train(killed, shapes_root, '--resume')
    log = proc.stdout + proc.stderr
    assert 'resuming from the newest complete checkpoint' in log
    assert 'resumed epoch: 2' in log
    _assert_same_weights(straight / 'epoch_3.pth', killed / 'epoch_3.pth')

    out = tmp_path / 'preds.pkl'
    proc = run_tool([
        sys.executable, 'tools/test.py', DEMO_CONFIG,
        str(resumed / 'last_checkpoint'), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(out), '--pretrain-name', 'random_bcssl-atto-k9_init_shapes',
        '--cfg-options', *demo_cfg_options(shapes_root)
    ])
    table = proc.stdout[proc.stdout.index('COCO results of'):]
    assert '| bbox |' in table and '| segm |' in table
    assert 'AP50' in table
    assert osp.getsize(out) > 0
    # the result file for collect_results.py holds the numbers printed
    result = read_result(str(tmp_path / 'test' / 'coco.result.json'))
    assert result['kind'] == 'coco'
    assert result['pretrain']['name'] == 'random_bcssl-atto-k9_init_shapes'
    assert result['pretrain']['backbone'] == 'bcssl-atto-k9'
    for iou_type in ('bbox', 'segm'):
        cells = next(line for line in table.splitlines()
                     if f'| {iou_type} |' in line).strip('|').split('|')
        for column, cell in zip(('mAP', 'mAP_50', 'mAP_75'), cells[1:4]):
            value = result['metrics'][f'coco/{iou_type}_{column}']
            assert cell.strip() == f'{100 * value:.1f}', (iou_type, column)


def test_dist_train_two_cpu_processes(tmp_path, shapes_root):
    work_dir = tmp_path / 'dist'
    proc = run_tool([
        'bash', 'tools/dist_train.sh', DEMO_CONFIG, '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
        'param_scheduler.1.T_max=1', 'param_scheduler.1.end=1',
        'train_cfg.val_interval=1', *demo_cfg_options(shapes_root)
    ],
                    PORT='29517')
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    assert "'world_size': 2" in log or 'world_size: 2' in log or \
        'GPU number: 2' in log
    assert (work_dir / 'epoch_1.pth').is_file()
    assert 'coco/bbox_mAP' in log

    # and distributed evaluation of that checkpoint, results gathered on rank 0
    proc = run_tool([
        'bash', 'tools/dist_test.sh', DEMO_CONFIG,
        str(work_dir / 'last_checkpoint'), '2', '--work-dir',
        str(tmp_path / 'dist_test'), '--cfg-options',
        *demo_cfg_options(shapes_root)
    ],
                    PORT='29518')
    assert proc.stdout.count('COCO results of') == 1  # printed by rank 0
    assert '| bbox |' in proc.stdout and '| segm |' in proc.stdout


def test_train_stops_on_mismatched_checkpoint(tmp_path, shapes_root):
    from bcssl_mm.models import BCSSLConvNeXt

    ckpt = tmp_path / 'k7_teacher.pth'
    sd = BCSSLConvNeXt('atto', kernel_size=7).state_dict()
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in sd.items()}}, ckpt)
    # a user config inheriting the demo, fine-tuning from a pretrained backbone
    config = tmp_path / 'demo_pretrained.py'
    config.write_text(
        f'_base_ = {DEMO_CONFIG!r}\n'
        'model = dict(backbone=dict(init_cfg=dict(\n'
        f"    _delete_=True, type='Pretrained', checkpoint={str(ckpt)!r},\n"
        "    prefix='backbone.')))\n")
    work_dir = tmp_path / 'work'
    with pytest.raises(AssertionError) as e:
        run_tool([
            sys.executable, 'tools/train.py',
            str(config), '--work-dir',
            str(work_dir), '--cfg-options', *SHORT,
            *demo_cfg_options(shapes_root)
        ])
    msg = str(e.value)
    assert 'error: ' in msg and 'Traceback' not in msg
    assert 'stages.0.0.depthwise_conv.weight: checkpoint (40, 1, 7, 7) ' \
        'vs model (40, 1, 9, 9)' in msg
    assert not (work_dir / 'epoch_1.pth').exists()

    # tools/test.py refuses the k7 checkpoint for the k9 config as well
    # (mmengine's test-time load alone is not strict)
    full = {f'backbone.{k}': v for k, v in sd.items()}
    torch.save({'state_dict': full}, tmp_path / 'k7_model.pth')
    with pytest.raises(AssertionError) as e:
        run_tool([
            sys.executable, 'tools/test.py', DEMO_CONFIG,
            str(tmp_path / 'k7_model.pth'), '--work-dir',
            str(tmp_path / 'test'), '--cfg-options',
            *demo_cfg_options(shapes_root)
        ])
    msg = str(e.value)
    assert 'does not match the model of' in msg
    assert 'size mismatch for backbone.stages.0.0.depthwise_conv.weight' \
        in msg
    assert 'missing keys in source state_dict' in msg and 'rpn_head' in msg
    assert 'COCO results' not in msg
