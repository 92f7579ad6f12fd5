"""Safe checkpoint loading: ``torch.load(..., weights_only=True)`` everywhere.

A checkpoint is a pickle, and unpickling can run code. torch's
``weights_only=True`` unpickler only rebuilds tensors, containers and
primitive values, plus the classes on an allowlist. Every checkpoint this
toolkit reads goes through :func:`load_from_local`:

* mmengine's ``CheckpointLoader`` (``load_from``, ``--resume``,
  ``init_cfg=dict(type='Pretrained')``, ``tools/test.py``) once
  :func:`register_local_checkpoint_loader` has replaced mmengine's local-file
  loader; importing ``bcssl_mm`` does that. Upstream mmengine 0.10.7
  (mmengine/runner/checkpoint.py ``load_from_local``) calls ``torch.load``
  without ``weights_only``; torch >= 2.6 then refuses the training state
  that mmengine itself pickles, so ``--resume`` fails with
  ``UnpicklingError``. The loader registered here admits exactly that state
  (:data:`MMENGINE_SAFE_GLOBALS`) through torch's ``safe_globals`` context,
  scoped to the call: nothing is added to the process-wide allowlist;
* mmengine's remote schemes (``http(s)://``, ``torchvision://``,
  ``modelzoo://``, ``open-mmlab://``, ``openmmlab://``, ``mmcls://``,
  ``s3://``, ``petrel://``, ``pavi://``, as in mmdet's
  ``init_cfg=dict(checkpoint='torchvision://resnet50')``) once
  :func:`register_remote_checkpoint_loaders` has replaced mmengine's loaders
  for them. Upstream they end in ``torch.hub.load_state_dict_from_url``,
  whose ``weights_only`` defaults to False even in torch 2.13, or in a
  plain ``torch.load``. The replacements resolve the name and download the
  file exactly as mmengine and torch.hub do (same URL tables, same cache
  file), then load the downloaded file with :func:`load_from_local`
  (``s3://`` / ``petrel://`` bytes are loaded from memory with the same
  allowlist and errors);
* the converters in ``tools/model_converters`` and the analysis tools.

A file that needs any other global is refused with
:class:`CheckpointLoadError`, which names the file and the globals; the
object is never built.
"""
import argparse
import io
import logging
import os
import os.path as osp
import pickle
import zipfile
from tempfile import TemporaryDirectory
from typing import IO, Any, Dict, Iterable, List, Optional, Union
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import (CheckpointLoader, _get_mmengine_home,
                                        _process_mmcls_checkpoint,
                                        get_deprecated_model_names,
                                        get_external_models, get_mmcls_models,
                                        get_torchvision_models)


class CheckpointLoadError(RuntimeError):
    """A file is not a checkpoint that can be loaded safely."""


def _numpy_globals() -> List[Any]:
    """What pickled numpy arrays, scalars and dtypes reference."""
    multiarray = np.core.multiarray
    dtype_classes = [type(np.dtype(t)) for t in set(np.sctypeDict.values())]
    return [
        multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
        *dtype_classes
    ]


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling.

    A pickled HistoryBuffer holds its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; plain ``getattr`` would let a file
    reach any attribute of anything, so only those lookups are answered.
    """
    # the four built-in ones are registered lazily, by the first __init__
    allowed = {'min', 'max', 'current', 'mean'}
    if obj is HistoryBuffer and name in allowed.union(
            HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def _pickled_bytes(*args: Any) -> bytes:
    """Stands in for ``builtins.bytes`` while unpickling.

    Pickle protocol 2 (``torch.save``'s) writes an empty ``bytes`` (numpy's
    data of an empty HistoryBuffer) as the call ``bytes()``. Only that and
    ``bytes(str, encoding)`` are answered: ``bytes(n)`` would let a file
    allocate any amount of memory.
    """
    if not args or (len(args) == 2 and all(isinstance(a, str) for a in args)):
        return bytes(*args)
    raise pickle.UnpicklingError(
        f'bytes{tuple(type(a).__name__ for a in args)} is not allowed in a '
        'checkpoint')


# The training state mmengine 0.10.7 writes into every checkpoint: the
# message hub's HistoryBuffers, numpy scalars and arrays (logged values,
# numpy's RNG state saved by bcssl_mm's RngStateHook).
MMENGINE_SAFE_GLOBALS: List[Any] = [
    HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
    (_pickled_bytes, 'builtins.bytes'), *_numpy_globals()
]

# DINO checkpoints (official and the BC-SSL authors' fork) hold their
# command-line arguments; a Namespace is rebuilt as a plain attribute dict.
NAMESPACE_SAFE_GLOBALS: List[Any] = [argparse.Namespace]


def _describe_refusal(name: str, f: Union[str, IO[bytes]],
                      error: Exception) -> str:
    try:
        if not isinstance(f, str):
            f.seek(0)
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(f)
    except Exception:  # noqa: BLE001
        # a legacy (pre-zip) torch file, or not a torch file at all
        reason = [line for line in str(error).splitlines() if line.strip()]
        return (f'{name}: not a torch checkpoint that can be loaded '
                f'safely ({reason[-2] if len(reason) > 1 else reason[-1]})')
    found = ', '.join(unsafe) if unsafe else str(error).splitlines()[-1]
    return (f'{name}: refused to load: the checkpoint needs objects '
            f'that are not plain tensors or training state ({found}). '
            'Unpickling them could run code, so bcssl_mm loads checkpoints '
            'with torch.load(weights_only=True) only. Re-save the weights '
            'as a plain state dict (torch.save(model.state_dict(), path)) '
            'from an environment you trust.')


def _load_weights_only(f: Union[str, IO[bytes]], name: str,
                       map_location: Optional[Any],
                       extra_safe_globals: Iterable[Any]) -> Any:
    """``torch.load(f, weights_only=True)``; errors name ``name``."""
    allowed = MMENGINE_SAFE_GLOBALS + list(extra_safe_globals)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' in str(e):
            raise CheckpointLoadError(_describe_refusal(name, f, e)) from None
        raise CheckpointLoadError(
            f'{name}: not a readable checkpoint ({e})') from None
    except Exception as e:  # noqa: BLE001  (EOFError, KeyError, ...)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointLoadError(
            f'{name}: not a torch checkpoint, or truncated '
            f'({type(e).__name__}: {first})') from None


def load_from_local(
    filename: str,
    map_location: Optional[Any] = None,
    extra_safe_globals: Iterable[Any] = ()
) -> Any:
    """``torch.load(filename, weights_only=True)`` with clear errors.

    Args:
        filename (str): Path of the checkpoint (``~`` is expanded).
        map_location: Passed to ``torch.load``.
        extra_safe_globals (Iterable): Classes or functions admitted besides
            :data:`MMENGINE_SAFE_GLOBALS`, e.g.
            :data:`NAMESPACE_SAFE_GLOBALS`. Only admit types whose
            unpickling cannot run code.

    Raises:
        FileNotFoundError: ``filename`` is not a file.
        CheckpointLoadError: The file is empty, truncated or not a
            checkpoint, or it needs globals that are not allowed.
    """
    filename = osp.expanduser(filename)
    if not filename or not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} can not be found.')
    if osp.getsize(filename) == 0:
        raise CheckpointLoadError(
            f'{filename}: empty file (0 bytes), not a checkpoint')
    return _load_weights_only(filename, filename, map_location,
                              extra_safe_globals)


def register_local_checkpoint_loader() -> None:
    """Make :func:`load_from_local` mmengine's loader for plain file paths.

    ``CheckpointLoader.register_scheme`` is mmengine's documented extension
    point; the loader it replaces would unpickle with torch's default.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


def _download(url: str, model_dir: Optional[str], progress: bool) -> str:
    """The file ``torch.hub.load_state_dict_from_url(url)`` would load.

    Downloaded once into ``<torch.hub.get_dir()>/checkpoints`` under the
    URL's file name (torch.hub writes it atomically), then reused.
    """
    if model_dir is None:
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached_file = osp.join(model_dir, osp.basename(urlparse(url).path))
    if not osp.exists(cached_file):
        print_log(f'Downloading: "{url}" to {cached_file}', logger='current')
        torch.hub.download_url_to_file(url, cached_file, progress=progress)
    return cached_file


def _load_downloaded(cached_file: str, map_location: Optional[Any]) -> Any:
    if zipfile.is_zipfile(cached_file):
        with zipfile.ZipFile(cached_file) as zf:
            members = zf.infolist()
            if len(members) == 1 and not members[0].is_dir():
                # NOTE: a torch.save() < 1.6 file zipped by hand, which
                # torch.hub loads by extracting its one member; read it
                # from the archive instead.
                with zf.open(members[0]) as member:
                    buffer = io.BytesIO(member.read())
                return _load_weights_only(
                    buffer, f'{cached_file}:{members[0].filename}',
                    map_location, ())
    return load_from_local(cached_file, map_location)


def _load_url(url: str,
              map_location: Optional[Any] = None,
              source: Optional[str] = None,
              model_dir: Optional[str] = None,
              progress: bool = os.isatty(0)) -> Any:
    """Download ``url`` (rank 0 first, as mmengine) and load it safely.

    Errors name ``source`` (the path given in the config), the URL and the
    cached file.
    """
    rank, world_size = get_dist_info()
    if rank == 0:
        cached_file = _download(url, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached_file = _download(url, model_dir, progress)
    try:
        return _load_downloaded(cached_file, map_location)
    except CheckpointLoadError as e:
        label = url if source in (None, url) else f'{source} ({url})'
        raise CheckpointLoadError(f'{label}, cached as {e}') from None


def _model_url(urls: Dict[str, str], name: str, filename: str) -> str:
    if name not in urls:
        raise ValueError(f'{filename}: mmengine knows no model {name!r} for '
                         f'this scheme ({len(urls)} known, e.g. '
                         f'{", ".join(sorted(urls)[:5])})')
    return urls[name]


def load_from_http(filename: str,
                   map_location: Optional[Any] = None,
                   model_dir: Optional[str] = None,
                   progress: bool = os.isatty(0)) -> Any:
    """mmengine's ``http://`` / ``https://`` loader with weights_only.

    Args:
        filename (str): URL of the checkpoint.
        map_location: Passed to ``torch.load``.
        model_dir (str, optional): Download folder. Defaults to torch.hub's
            ``<hub dir>/checkpoints``.
        progress (bool): Show a download progress bar.
    """
    return _load_url(
        filename, map_location, model_dir=model_dir, progress=progress)


def load_from_torchvision(filename: str,
                          map_location: Optional[Any] = None) -> Any:
    """mmengine's ``torchvision://`` / ``modelzoo://`` loader with
    weights_only (names from ``get_torchvision_models``)."""
    if filename.startswith('modelzoo://'):
        print_log(
            f'{filename}: "modelzoo://" is an old name of '
            '"torchvision://"; use the new one',
            logger='current',
            level=logging.WARNING)
        model_name = filename[len('modelzoo://'):]
    else:
        model_name = filename[len('torchvision://'):]
    url = _model_url(get_torchvision_models(), model_name, filename)
    return _load_url(url, map_location, source=filename)


def load_from_openmmlab(filename: str,
                        map_location: Optional[Any] = None) -> Any:
    """mmengine's ``open-mmlab://`` / ``openmmlab://`` loader with
    weights_only (names from ``get_external_models``, which reads
    ``$MMENGINE_HOME/open_mmlab.json`` too)."""
    prefix = 'open-mmlab://' if filename.startswith(
        'open-mmlab://') else 'openmmlab://'
    model_name = filename[len(prefix):]
    deprecated = get_deprecated_model_names()
    if model_name in deprecated:
        print_log(
            f'{filename}: {model_name!r} is an old model name; loading '
            f'{prefix}{deprecated[model_name]} instead',
            logger='current',
            level=logging.WARNING)
        model_name = deprecated[model_name]
    url = _model_url(get_external_models(), model_name, filename)
    if url.startswith(('http://', 'https://')):
        return _load_url(url, map_location, source=filename)
    # a file under mmengine's home, as mmengine resolves it
    return load_from_local(osp.join(_get_mmengine_home(), url), map_location)


def load_from_mmcls(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's ``mmcls://`` loader with weights_only: the backbone of an
    mmcls model (names from ``get_mmcls_models``)."""
    url = _model_url(get_mmcls_models(), filename[len('mmcls://'):], filename)
    return _process_mmcls_checkpoint(
        _load_url(url, map_location, source=filename))


def load_from_ceph(filename: str,
                   map_location: Optional[Any] = None,
                   backend: str = 'petrel') -> Any:
    """mmengine's ``s3://`` / ``petrel://`` loader with weights_only: the
    bytes mmengine's file backend returns are loaded from memory."""
    file_backend = get_file_backend(
        filename, backend_args={'backend': backend})
    data = file_backend.get(filename)
    if not data:
        raise CheckpointLoadError(
            f'{filename}: empty file (0 bytes), not a checkpoint')
    return _load_weights_only(io.BytesIO(data), filename, map_location, ())


def load_from_pavi(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's ``pavi://`` loader with weights_only: the model is
    downloaded into a temporary folder and loaded from there."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError(f'{filename}: the pavi package is needed for '
                          'pavi:// checkpoints') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as tmp_dir:
        downloaded_file = osp.join(tmp_dir, model.name)
        model.download(downloaded_file)
        try:
            return load_from_local(downloaded_file, map_location)
        except CheckpointLoadError as e:
            raise CheckpointLoadError(f'{filename}, downloaded as {e}') \
                from None


# mmengine 0.10.7's prefixes (mmengine/runner/checkpoint.py), each replaced
REMOTE_LOADERS = {
    ('http://', 'https://'): load_from_http,
    ('modelzoo://', 'torchvision://'): load_from_torchvision,
    ('open-mmlab://', 'openmmlab://'): load_from_openmmlab,
    ('mmcls://', ): load_from_mmcls,
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
    ('pavi://', ): load_from_pavi,
}


def register_remote_checkpoint_loaders() -> None:
    """Make the loaders above mmengine's loaders for its remote schemes.

    Like :func:`register_local_checkpoint_loader`, through
    ``CheckpointLoader.register_scheme(..., force=True)``.
    """
    for prefixes, loader in REMOTE_LOADERS.items():
        CheckpointLoader.register_scheme(
            prefixes=list(prefixes), loader=loader, force=True)
