"""Checkpoints load with weights_only=True, admitting only mmengine's
training state; anything else is refused before it is built."""
import os
import shutil
import sys
import types
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import (CheckpointLoader, get_external_models,
                                        get_torchvision_models)

import bcssl_mm  # noqa: F401  (registers the loader)
from bcssl_mm.utils import (NAMESPACE_SAFE_GLOBALS, CheckpointLoadError,
                            load_from_local, torch_load)


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


def test_every_mmengine_scheme_loads_through_bcssl_mm():
    # mmengine's own loaders unpickle with torch's (or torch.hub's) default
    schemes = CheckpointLoader._schemes
    assert {
        '', 'http://', 'https://', 'torchvision://', 'modelzoo://',
        'open-mmlab://', 'openmmlab://', 'mmcls://', 'pavi://',
        r'(\S+\:)?s3://', r'(\S+\:)?petrel://'
    } <= set(schemes)
    for prefix, loader in schemes.items():
        assert loader.__module__ == 'bcssl_mm.utils.torch_load', prefix


@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    """torch.hub's download copies ``served[url]``; returns the URLs asked
    for and the cache folder torch.hub would use."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    served, asked = {}, []

    def download(url, dst, hash_prefix=None, progress=True):
        asked.append(url)
        shutil.copy(served[url], dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    return served, asked, tmp_path / 'torch' / 'hub' / 'checkpoints'


def _url_of(scheme: str) -> str:
    if scheme.startswith('http'):
        return scheme
    if scheme.startswith('torchvision://'):
        return get_torchvision_models()[scheme[len('torchvision://'):]]
    return get_external_models()[scheme[len('open-mmlab://'):]]


REMOTE = [
    'https://example.org/models/evil-0123.pth', 'http://example.org/w.pth',
    'torchvision://resnet50', 'open-mmlab://detectron2/resnet50_caffe'
]


@pytest.mark.parametrize('path', REMOTE)
def test_malicious_download_is_refused(tmp_path, fake_download, path):
    served, asked, cache = fake_download
    marker = tmp_path / 'pwned'
    url = _url_of(path)
    served[url] = write_malicious(tmp_path / 'evil.pth', marker)
    with pytest.raises(CheckpointLoadError) as e:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    cached = str(cache / url.rsplit('/', 1)[1])
    msg = str(e.value)
    assert path in msg and url in msg
    assert f'cached as {cached}: refused to load' in msg
    assert asked == [url]
    assert not marker.exists()


@pytest.mark.parametrize('path', REMOTE[:1] + REMOTE[2:3])
def test_download_loads_once_then_from_cache(tmp_path, fake_download, path):
    served, asked, cache = fake_download
    url = _url_of(path)
    torch.save({'w': torch.arange(3.)}, tmp_path / 'good.pth')
    served[url] = str(tmp_path / 'good.pth')
    for _ in range(2):
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
        assert torch.equal(ckpt['w'], torch.arange(3.))
    assert asked == [url]  # the second load read torch.hub's cache file
    assert (cache / url.rsplit('/', 1)[1]).is_file()


def test_legacy_zipped_download_loads(tmp_path, fake_download):
    # a pre-1.6 torch file zipped by hand, which torch.hub also accepts
    served, _, _ = fake_download
    torch.save({'w': torch.ones(2)},
               tmp_path / 'w.pth',
               _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(tmp_path / 'w.zip', 'w') as zf:
        zf.write(tmp_path / 'w.pth', 'w.pth')
    served['https://example.org/w.zip'] = str(tmp_path / 'w.zip')
    ckpt = CheckpointLoader.load_checkpoint('https://example.org/w.zip')
    assert torch.equal(ckpt['w'], torch.ones(2))


def test_unknown_model_name_is_named(fake_download):
    with pytest.raises(ValueError, match='torchvision://resnet5: mmengine'):
        CheckpointLoader.load_checkpoint('torchvision://resnet5')


def test_open_mmlab_file_under_mmengine_home_is_refused(
        tmp_path, fake_download):
    # $MMENGINE_HOME/open_mmlab.json may map a name to a local file
    home = tmp_path / 'mmengine'
    home.mkdir()
    (home / 'open_mmlab.json').write_text('{"mine": "mine.pth"}')
    marker = tmp_path / 'pwned'
    evil = write_malicious(home / 'mine.pth', marker)
    with pytest.raises(CheckpointLoadError, match=f'{evil}: refused'):
        CheckpointLoader.load_checkpoint('open-mmlab://mine')
    assert not marker.exists()


def test_ceph_and_pavi_checkpoints_are_refused(tmp_path, monkeypatch):
    marker = tmp_path / 'pwned'
    evil = write_malicious(tmp_path / 'evil.pth', marker)

    class Backend:  # stands in for mmengine's PetrelBackend

        def get(self, filepath):
            return open(evil, 'rb').read()

    monkeypatch.setattr(torch_load, 'get_file_backend',
                        lambda *args, **kwargs: Backend())
    with pytest.raises(CheckpointLoadError, match='s3://bucket/evil.pth: ref'):
        CheckpointLoader.load_checkpoint('s3://bucket/evil.pth')

    class Model:  # stands in for pavi's modelcloud model
        name = 'evil.pth'

        def download(self, dst):
            shutil.copy(evil, dst)

    pavi = types.ModuleType('pavi')
    pavi.modelcloud = types.SimpleNamespace(get=lambda path: Model())
    monkeypatch.setitem(sys.modules, 'pavi', pavi)
    with pytest.raises(CheckpointLoadError, match='pavi://m/evil, downloaded'):
        CheckpointLoader.load_checkpoint('pavi://m/evil')
    assert not marker.exists()
