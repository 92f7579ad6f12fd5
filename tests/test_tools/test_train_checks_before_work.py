"""tools/train.py refuses a config that cannot run as meant before it builds
anything: one line naming the key, exit 1, no work directory. The checks
themselves are tested in tests/test_utils/test_config_check.py; these run
them through the command line, on the shipped configs."""
import sys

import pytest

from conftest import run_tool

DINO_T = 'configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'
DINO_DEMO = 'configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'


@pytest.mark.parametrize(
    'config, option, expected',
    [
        # the 10-epoch lr warm-up of the recipe in a 5-epoch run
        (DINO_T, 'train_cfg.max_epochs=5',
         'error: param_scheduler[1] (CosineAnnealingLR) begins at epoch 10, '
         'but the run ends at epoch 5 (train_cfg.max_epochs=5)'),
        (DINO_DEMO, 'load_form=teacher.pth',
         "top-level key 'load_form' is read by nothing (the Runner "
         "ignores it); did you mean 'load_from'?"),
        (DINO_DEMO, 'default_hooks.checkpoint.intreval=1',
         'error: default_hooks.checkpoint.intreval: CheckpointHook has no '
         "argument 'intreval'; did you mean 'interval'?"),
    ])
def test_refused_before_any_work(tmp_path, config, option, expected):
    work_dir = tmp_path / 'work'
    with pytest.raises(AssertionError) as e:
        run_tool([
            sys.executable, 'tools/train.py', config, '--work-dir',
            str(work_dir), '--cfg-options', option
        ])
    assert '(1):' in str(e.value)  # the exit status
    assert expected in str(e.value)
    assert 'Traceback' not in str(e.value)
    assert not work_dir.exists()
