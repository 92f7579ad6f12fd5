"""A malicious checkpoint is refused by every entry point of the toolkit
that loads one, and the code it carries never runs. The three converters
have the same test in test_model_converters.py."""
import sys

import pytest
import torch

from conftest import DEMO_CONFIG, demo_cfg_options, run_tool

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


@pytest.mark.parametrize(
    'entry',
    ['test.py', 'init_cfg', 'load_from', 'resume', 'visualize_cam.py'])
def test_entry_point_refuses_malicious_checkpoint(tmp_path, shapes_root, evil,
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
