"""A malicious checkpoint is refused by every entry point of the toolkit
that loads one, and the code it carries never runs. The four converters
have the same test in test_model_converters.py, the D-MAE-Lite teacher in
test_dmae_lite.py, the Strict* mmdet backbones in test_strict_pretrained.py
and mmengine's remote schemes in test_torch_load.py."""
import os
import runpy
import shutil
import sys

import pytest
import torch
from test_robustness_tool import TINY_CLASSIFIER, make_classifier

from conftest import DEMO_CONFIG, ROOT, demo_cfg_options, run_tool

ONE_EPOCH = [
    'train_cfg.max_epochs=1', 'param_scheduler.1.T_max=1',
    'param_scheduler.1.end=1'
]


class MakesFile:

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': MakesFile(marker)}}, path)
    return str(path), marker


def _train(tmp_path, shapes_root, *extra, options=(), config=DEMO_CONFIG):
    return [
        sys.executable, 'tools/train.py', config, '--work-dir',
        str(tmp_path / 'work'), *extra, '--cfg-options', *ONE_EPOCH, *options,
        *demo_cfg_options(shapes_root)
    ]


LINEAR_DEMO = str(ROOT / 'configs' / 'dino' / 'benchmarks' /
                  'bcssl-atto-k9_linear-1xb64-coslr-30e_shapes.py')
# the demo Mask R-CNN fine-tuned from the DINO teacher (init_cfg)
DINO_INIT_DEMO = DEMO_CONFIG.replace('-scratch', '')
DINO_DEMO = str(ROOT / 'configs' / 'dino' /
                'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')


@pytest.mark.parametrize('entry', [
    'test.py', 'init_cfg', 'load_from', 'resume', 'resume auto',
    'visualize_cam.py', 'linear-probe init_cfg'
])
def test_entry_point_refuses_malicious_checkpoint(tmp_path, shapes_root,
                                                  shapes_cls_root, evil,
                                                  entry):
    path, marker = evil
    if entry == 'test.py':
        cmd = [
            sys.executable, 'tools/test.py', DEMO_CONFIG, path, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options',
            *demo_cfg_options(shapes_root)
        ]
    elif entry == 'init_cfg':
        # a user config fine-tuning from a downloaded backbone
        config = tmp_path / 'from_pretrained.py'
        config.write_text(
            f'_base_ = {DEMO_CONFIG!r}\n'
            'model = dict(backbone=dict(init_cfg=dict(_delete_=True, '
            f"type='Pretrained', checkpoint={path!r})))\n")
        cmd = _train(tmp_path, shapes_root, config=str(config))
    elif entry == 'load_from':
        cmd = _train(tmp_path, shapes_root, options=[f'load_from={path}'])
    elif entry == 'resume':
        cmd = _train(tmp_path, shapes_root, '--resume', path)
    elif entry == 'resume auto':
        # --resume without a path: the newest checkpoint of the work dir
        (tmp_path / 'work').mkdir()
        path = str(shutil.copy(path, tmp_path / 'work' / 'epoch_3.pth'))
        cmd = _train(tmp_path, shapes_root, '--resume')
    elif entry == 'linear-probe init_cfg':
        # LinearProbeClassifier loads its backbone in init_weights
        cls_root = f'{shapes_cls_root}cls/'
        cmd = [
            sys.executable, 'tools/train.py', LINEAR_DEMO, '--work-dir',
            str(tmp_path / 'work'), '--cfg-options', 'train_cfg.max_epochs=1',
            f'model.backbone.init_cfg.checkpoint={path}', *[
                f'{loader}.dataset.data_root={cls_root}'
                for loader in ('train_dataloader', 'val_dataloader',
                               'test_dataloader')
            ]
        ]
    else:
        cmd = [
            sys.executable, 'tools/analysis_tools/visualize_cam.py',
            '--img-dir', f'{shapes_root}val', '--max-images', '1', '--models',
            'bcssl_convnext_atto_k9', '--checkpoint',
            f'bcssl_convnext_atto_k9={path}', '--img-size', '64', '--out',
            str(tmp_path / 'work' / 'cam.png')
        ]
    with pytest.raises(AssertionError) as e:
        run_tool(cmd)
    msg = str(e.value)
    assert f'{path}: refused to load' in msg
    assert 'weights_only=True' in msg
    assert not marker.exists()
    assert not (tmp_path / 'work' / 'epoch_1.pth').exists()


def _files_under(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


@pytest.mark.parametrize('entry', [
    'test.py pretrain name', 'visualize_erf.py', 'knn_eval.py',
    'knn_eval.py --load-features', 'robustness.py', 'robustness.py init_cfg',
    'linear_probe_features.py'
])
def test_tool_main_refuses_malicious_file(tmp_path, shapes_root,
                                          shapes_cls_root, evil, monkeypatch,
                                          entry):
    """``python tools/<script> ...`` run in this process (each subprocess
    would cost seconds of imports), through the script's ``__main__``."""
    path, marker = evil
    work = str(tmp_path / 'work')
    val = f'{shapes_cls_root}cls/val'
    if entry == 'test.py pretrain name':
        # the detector checkpoint is fine; the result would be named from
        # the meta of the backbone's init checkpoint, read before testing
        good = str(tmp_path / 'detector.pth')
        torch.save({'state_dict': {}}, good)
        script, argv = 'test.py', [
            DINO_INIT_DEMO, good, '--work-dir', work, '--cfg-options',
            f'model.backbone.init_cfg.checkpoint={path}',
            *demo_cfg_options(shapes_root)
        ]
    elif entry == 'visualize_erf.py':
        script, argv = 'analysis_tools/visualize_erf.py', [
            '--random', '2', '--models', 'bcssl_convnext_atto_k3',
            '--checkpoint', f'bcssl_convnext_atto_k3={path}', '--img-size',
            '64', '--batch-size', '2', '--out-dir', work
        ]
    elif entry.startswith('knn_eval.py'):
        knn = [
            '--dataset', 'shapes_cls', '--data-root', f'{shapes_cls_root}cls/',
            '--nb-knn', '1', '--num-workers', '0', '--batch-size', '5',
            '--work-dir', work
        ]
        if entry == 'knn_eval.py':
            script, argv = 'benchmarks/knn_eval.py', [DINO_DEMO, path, *knn]
        else:
            cache = tmp_path / 'feats'
            cache.mkdir()
            for split in ('train', 'val'):
                shutil.copy(path, cache / f'{split}.pt')
            path = str(cache / 'train.pt')
            script, argv = 'benchmarks/knn_eval.py', [
                DINO_DEMO, '--load-features',
                str(cache), *knn
            ]
    elif entry.startswith('robustness.py'):
        corrupted = tmp_path / 'corrupted'
        shutil.copytree(val, corrupted / 'gaussian_noise' / '1')
        if entry == 'robustness.py':
            config = tmp_path / 'probe.py'
            config.write_text(
                TINY_CLASSIFIER.format(num_classes=3, data_root=val))
            argv = [str(config), path]
        else:
            # a good classifier whose pretraining run is named from its
            # backbone's init checkpoint, before any evaluation
            config, good = make_classifier(str(tmp_path), val, 3, 0, 'probe')
            argv = [
                config, good, '--cfg-options',
                'model.backbone.init_cfg.type=Pretrained',
                f'model.backbone.init_cfg.checkpoint={path}'
            ]
        script = 'benchmarks/robustness.py'
        argv += ['--corrupted', str(corrupted), '--work-dir', work]
    else:
        cache = tmp_path / 'work'
        cache.mkdir()
        for split in ('val', 'train'):
            shutil.copy(path, cache / f'{split}.pt')
        path = str(cache / 'train.pt')
        script, argv = 'benchmarks/linear_probe_features.py', [
            str(cache), '--epochs', '1'
        ]
    before = set(_files_under(tmp_path / 'work'))
    monkeypatch.setattr(sys, 'argv', [script, *argv])
    with pytest.raises(SystemExit) as e:  # the script's own error line
        runpy.run_path(str(ROOT / 'tools' / script), run_name='__main__')
    msg = str(e.value)
    assert msg.startswith('error: ')
    assert f'{path}: refused to load' in msg
    assert 'weights_only=True' in msg
    assert not marker.exists()
    assert set(_files_under(tmp_path / 'work')) == before
