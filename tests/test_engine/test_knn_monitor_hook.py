"""KNNMonitorHook in short DINO runs: the logged top-1 is the teacher's
k-NN, and an absent or not-yet-due hook does nothing."""
import json
from pathlib import Path

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from bcssl_mm.evaluation.features import (build_dataset, build_eval_backbone,
                                          build_preprocessor, dataset_labels,
                                          extract_features)
from bcssl_mm.evaluation.knn import knn_classify
from conftest import ROOT, TINY_DINO_MODEL

DINO_DIR = ROOT / 'configs' / 'dino'
DINO_DEMO = DINO_DIR / 'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'
K = 5


def run(tmp_path: Path, train_root: str, cls_root: str, epochs: int,
        **hook) -> Runner:
    """The demo DINO config shrunk (tiny model, 64/32-px crops, 8 images in
    batches of 4); KNNMonitorHook(**hook) on ``cls_root`` after DINOHook."""
    path = tmp_path / 'dino_knn.py'
    path.write_text(f"""
_base_ = {str(DINO_DEMO)!r}
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='DINOMultiCrop', global_crop_size=64, local_crop_size=32,
         num_local_crops=2),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(data_root={train_root!r}, pipeline=train_pipeline))
{TINY_DINO_MODEL}train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1))
""")
    cfg = Config.fromfile(str(path))
    for split in ('bank', 'query'):
        cfg.knn_data[split].data_root = cls_root
    cfg.custom_hooks = [
        dict(type='DINOHook'),
        dict(type='KNNMonitorHook', data=cfg.knn_data, **hook)
    ]
    cfg.work_dir = str(tmp_path / 'work')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        runner = Runner.from_cfg(cfg)
        runner.train()
    return runner


def test_logs_the_teachers_knn_top1(tmp_path, shapes_root, shapes_cls_root):
    cls_root = shapes_cls_root + 'cls/'
    runner = run(tmp_path, shapes_root, cls_root, 2, interval=1, k=K)
    hook = next(
        h for h in runner.hooks if type(h).__name__ == 'KNNMonitorHook')
    assert [h['epoch'] for h in hook.history] == [1, 2]
    top1 = runner.message_hub.get_scalar('knn/top1').current()
    assert top1 == hook.history[-1]['top1']
    # the teacher is back in training mode (DINO runs it so)
    assert runner.model.teacher['backbone'].training

    # the same number from the saved teacher, outside the run
    data = runner.cfg.knn_data
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        backbone = build_eval_backbone(runner.cfg.model,
                                       str(tmp_path / 'work' / 'epoch_2.pth'))
        feats, labels = [], []
        for split in ('bank', 'query'):
            dataset = build_dataset(data[split])
            feats.append(
                extract_features(backbone, dataset,
                                 build_preprocessor(data.preprocessor)))
            labels.append(dataset_labels(dataset)[0])
    want = knn_classify(feats[0], labels[0], feats[1], labels[1], 3, (K, ))
    assert top1 == want[f'top1_k{K}']

    # in the log and the visualizer's scalars
    log = next((tmp_path / 'work').glob('*/*.log')).read_text()
    assert 'Epoch(knn) [2] knn/top1:' in log
    scalars = next((tmp_path / 'work').glob('*/vis_data/scalars.json'))
    rows = [json.loads(line) for line in scalars.open()]
    assert [r['step'] for r in rows if 'knn/top1' in r] == [1, 2]


def test_does_nothing_when_off_or_not_due(tmp_path, shapes_root,
                                          shapes_cls_root):
    cls_root = shapes_cls_root + 'cls/'
    runner = run(
        tmp_path, shapes_root, cls_root, 2, interval=3, at_end=False, k=K)
    hook = next(
        h for h in runner.hooks if type(h).__name__ == 'KNNMonitorHook')
    assert hook.history == []
    assert 'knn/top1' not in runner.message_hub.log_scalars
    # off unless configured: the ImageNet recipe does not run it
    hooks = Config.fromfile(
        str(DINO_DIR /
            'dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py')).custom_hooks
    assert 'KNNMonitorHook' not in [h['type'] for h in hooks]


def test_monitoring_leaves_the_run_unchanged(tmp_path, shapes_root,
                                             shapes_cls_root):
    """The same 2 epochs with an evaluation after each and with none give
    the same weights: the hook restores the RNG states it consumes."""
    import torch
    cls_root = shapes_cls_root + 'cls/'
    (tmp_path / 'on').mkdir()
    (tmp_path / 'off').mkdir()
    on = run(tmp_path / 'on', shapes_root, cls_root, 2, interval=1, k=K)
    off = run(
        tmp_path / 'off',
        shapes_root,
        cls_root,
        2,
        interval=3,
        at_end=False,
        k=K)
    state_on, state_off = on.model.state_dict(), off.model.state_dict()
    assert state_on.keys() == state_off.keys()
    for key in state_on:
        assert torch.equal(state_on[key], state_off[key]), key
