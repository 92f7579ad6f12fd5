"""LinearProbeResultHook keeps every validation and writes last and best."""
import json
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from bcssl_mm.engine.hooks import LinearProbeResultHook
from bcssl_mm.evaluation.results import read_result


def fake_runner(work_dir, epoch=0, checkpoint=None):
    backbone = dict(type='BCSSLConvNeXt')
    if checkpoint is not None:
        backbone['init_cfg'] = dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    cfg = Config(
        dict(
            model=dict(backbone=backbone),
            val_dataloader=dict(dataset=dict(data_root='data/x/'))))
    return SimpleNamespace(
        work_dir=str(work_dir),
        epoch=epoch,
        cfg=cfg,
        logger=MMLogger.get_instance('test_linear_probe_result_hook'))


def validate(hook, runner, epoch, top1, top5):
    runner.epoch = epoch
    hook.after_val_epoch(runner, {
        'accuracy/top1': top1,
        'accuracy/top5': top5
    })


def test_writes_last_and_best_epoch(tmp_path):
    hook = LinearProbeResultHook(pretrain_name='random_bcssl-atto-k9_init_'
                                 'shapes')
    runner = fake_runner(tmp_path)
    hook.before_train(runner)
    # best top-1 at epoch 2 (70), tied again at epoch 4: the earliest wins
    for epoch, top1, top5 in [(1, 50., 80.), (2, 70., 90.), (3, 60., 95.),
                              (4, 70., 99.), (5, 65., 97.)]:
        validate(hook, runner, epoch, top1, top5)
    hook.after_train(runner)
    result = read_result(str(tmp_path / 'linear.result.json'))
    assert result['kind'] == 'linear'
    assert result['metrics'] == dict(
        top1=65., top5=97., best_top1=70., best_top5=90.)
    assert result['pretrain']['name'] == 'random_bcssl-atto-k9_init_shapes'
    assert (result['source']['last_epoch'],
            result['source']['best_epoch']) == (5, 2)


def test_pretrain_from_the_backbone_checkpoint_and_resume(tmp_path):
    ckpt = tmp_path / 'teacher.pth'
    torch.save(
        dict(
            meta=dict(
                experiment_name='dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k'
                '_20261124_063000',
                epoch=100),
            state_dict={}), ckpt)
    runner = fake_runner(tmp_path, checkpoint=str(ckpt))
    hook = LinearProbeResultHook()
    hook.before_train(runner)
    for epoch, top1 in [(1, 40.), (2, 80.), (3, 50.)]:
        validate(hook, runner, epoch, top1, top1 + 10)
    # resumed from the epoch-2 checkpoint: epoch 3 is run again
    resumed = LinearProbeResultHook()
    runner.epoch = 2
    resumed.before_train(runner)
    validate(resumed, runner, 3, 55., 65.)
    resumed.after_train(runner)
    result = read_result(str(tmp_path / 'linear.result.json'))
    assert result['metrics'] == dict(
        top1=55., top5=65., best_top1=80., best_top5=90.)
    assert result['pretrain'] == dict(
        name='dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k',
        method='dino',
        backbone='bcssl-t-k9',
        epochs=100,
        data='in1k',
        checkpoint_epoch=100)
    history = json.loads((tmp_path / 'linear.history.json').read_text())
    assert [r['epoch'] for r in history] == [1, 2, 3]


def test_missing_metric_and_no_validation_are_errors(tmp_path):
    hook = LinearProbeResultHook()
    runner = fake_runner(tmp_path)
    hook.before_train(runner)
    with pytest.raises(KeyError, match='accuracy/top1'):
        hook.after_val_epoch(runner, {'acc/top1': 1.})
    with pytest.raises(RuntimeError, match='no validation ran'):
        hook.after_train(runner)
