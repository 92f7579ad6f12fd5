"""Checkpoints are written atomically; --resume falls back to the newest
complete checkpoint when last_checkpoint is empty or dangling."""
import os

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

import bcssl_mm  # noqa: F401  (registers the backend)
from bcssl_mm.utils import (AtomicLocalBackend, find_resume_checkpoint,
                            is_complete_checkpoint)


def test_mmengine_saves_through_the_atomic_backend(tmp_path):
    assert isinstance(
        get_file_backend(str(tmp_path / 'x.pth')), AtomicLocalBackend)
    save_checkpoint({'w': torch.ones(3)}, str(tmp_path / 'epoch_1.pth'))
    assert is_complete_checkpoint(str(tmp_path / 'epoch_1.pth'))
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no temporary left


def test_a_write_killed_midway_leaves_no_partial_checkpoint(
        tmp_path, monkeypatch):
    target = tmp_path / 'epoch_2.pth'
    save_checkpoint({'w': torch.zeros(3)}, str(target))
    old = target.read_bytes()

    def killed(*args):
        raise KeyboardInterrupt  # the moment between write and rename

    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'w': torch.ones(10**5)}, str(target))
    assert target.read_bytes() == old
    assert os.listdir(tmp_path) == ['epoch_2.pth']


def _ckpt(path, n=10):
    torch.save({'w': torch.arange(n)}, path)
    return str(path)


def test_resume_falls_back_to_newest_complete_checkpoint(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None  # fresh start
    _ckpt(tmp_path / 'epoch_1.pth')
    e2 = _ckpt(tmp_path / 'epoch_2.pth')
    data = open(_ckpt(tmp_path / 'epoch_3.pth', 10**4), 'rb').read()
    (tmp_path / 'epoch_3.pth').write_bytes(data[:len(data) // 2])
    assert not is_complete_checkpoint(str(tmp_path / 'epoch_3.pth'))
    pointer = tmp_path / 'last_checkpoint'
    for content in ('', str(tmp_path / 'gone.pth'),
                    str(tmp_path / 'epoch_3.pth')):
        pointer.write_text(content)
        assert find_resume_checkpoint(str(tmp_path)) == e2
    pointer.write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path /
                                                        'epoch_1.pth')


def test_resume_with_nothing_complete_says_what_it_found(tmp_path):
    (tmp_path / 'epoch_1.pth').write_bytes(b'PK\x03\x04 cut')
    (tmp_path / 'last_checkpoint').write_text('')
    with pytest.raises(FileNotFoundError, match='epoch_1.pth'):
        find_resume_checkpoint(str(tmp_path))
