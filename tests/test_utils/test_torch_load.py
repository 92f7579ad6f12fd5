"""Checkpoints load with weights_only=True, admitting only mmengine's
training state; anything else is refused before it is built."""
import os

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import bcssl_mm  # noqa: F401  (registers the loader)
from bcssl_mm.utils import (NAMESPACE_SAFE_GLOBALS, CheckpointLoadError,
                            load_from_local)


class MakesFile:
    """Unpickling this creates ``path``: a stand-in for any code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, 'w'))


def write_malicious(path, marker) -> str:
    torch.save({
        'state_dict': {
            'w': torch.zeros(1)
        },
        'x': MakesFile(marker)
    }, path)
    return str(path)


@pytest.mark.parametrize(
    'load', [
        lambda f: load_from_local(f),
        lambda f: CheckpointLoader.load_checkpoint(f, map_location='cpu'),
        lambda f: load_from_local(
            f, extra_safe_globals=NAMESPACE_SAFE_GLOBALS),
    ],
    ids=['load_from_local', 'mmengine-CheckpointLoader', 'with-namespace'])
def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, load):
    marker = tmp_path / 'pwned'
    evil = write_malicious(tmp_path / 'evil.pth', marker)
    with pytest.raises(CheckpointLoadError) as e:
        load(evil)
    assert evil in str(e.value)
    assert 'open' in str(e.value)  # names the global it refused
    assert not marker.exists()


def test_mmengine_training_state_loads(tmp_path, monkeypatch):
    buf = HistoryBuffer()
    buf.update(np.float64(0.5))
    empty = HistoryBuffer()  # its arrays pickle as bytes()
    state = dict(
        state_dict={'w': torch.ones(2)},
        message_hub=dict(log_scalars={
            'loss': buf,
            'unused': empty
        }),
        rng=np.random.get_state(),
        scalar=np.float32(1.5),
        meta=dict(epoch=3, seed=np.int64(7)))
    torch.save(state, tmp_path / 'ok.pth')
    # as in a fresh process, where no HistoryBuffer was built yet
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    loaded = load_from_local(str(tmp_path / 'ok.pth'))
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['message_hub']['log_scalars']['loss'].current() == 0.5
    assert len(loaded['message_hub']['log_scalars']['unused'].data[0]) == 0
    np.testing.assert_array_equal(loaded['rng'][1], state['rng'][1])
    assert loaded['meta']['seed'] == 7
    # the allowlist is scoped to the call, not added to the process
    assert HistoryBuffer not in torch.serialization.get_safe_globals()
    with pytest.raises(Exception, match='HistoryBuffer'):
        torch.load(tmp_path / 'ok.pth', weights_only=True)


def test_bad_files_name_the_file(tmp_path):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointLoadError, match='empty.pth: empty file'):
        load_from_local(str(empty))
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    with pytest.raises(CheckpointLoadError, match='notes.pth'):
        load_from_local(str(text))
    torch.save({'w': torch.zeros(1000)}, tmp_path / 'whole.pth')
    data = (tmp_path / 'whole.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointLoadError, match='cut.pth'):
        load_from_local(str(tmp_path / 'cut.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_from_local(str(tmp_path / 'missing.pth'))
    assert os.listdir(tmp_path)  # nothing was removed


class ReachesFurther:
    """A HistoryBuffer attribute that is not one of its statistics."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'update'))


def test_getattr_is_limited_to_history_buffer_statistics(tmp_path):
    torch.save({'x': ReachesFurther()}, tmp_path / 'reach.pth')
    with pytest.raises(CheckpointLoadError, match='reach.pth'):
        load_from_local(str(tmp_path / 'reach.pth'))
