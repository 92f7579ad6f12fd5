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
* the converters in ``tools/model_converters`` and the analysis tools.

A file that needs any other global is refused with
:class:`CheckpointLoadError`, which names the file and the globals; the
object is never built.
"""
import argparse
import os.path as osp
import pickle
from typing import Any, Iterable, List, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


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


def _describe_refusal(filename: str, error: Exception) -> str:
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # noqa: BLE001
        # a legacy (pre-zip) torch file, or not a torch file at all
        reason = [line for line in str(error).splitlines() if line.strip()]
        return (f'{filename}: not a torch checkpoint that can be loaded '
                f'safely ({reason[-2] if len(reason) > 1 else reason[-1]})')
    found = ', '.join(unsafe) if unsafe else str(error).splitlines()[-1]
    return (f'{filename}: refused to load: the checkpoint needs objects '
            f'that are not plain tensors or training state ({found}). '
            'Unpickling them could run code, so bcssl_mm loads checkpoints '
            'with torch.load(weights_only=True) only. Re-save the weights '
            'as a plain state dict (torch.save(model.state_dict(), path)) '
            'from an environment you trust.')


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
    allowed = MMENGINE_SAFE_GLOBALS + list(extra_safe_globals)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' in str(e):
            raise CheckpointLoadError(_describe_refusal(filename, e)) from None
        raise CheckpointLoadError(
            f'{filename}: not a readable checkpoint ({e})') from None
    except Exception as e:  # noqa: BLE001  (EOFError, KeyError, ...)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointLoadError(
            f'{filename}: not a torch checkpoint, or truncated '
            f'({type(e).__name__}: {first})') from None


def register_local_checkpoint_loader() -> None:
    """Make :func:`load_from_local` mmengine's loader for plain file paths.

    ``CheckpointLoader.register_scheme`` is mmengine's documented extension
    point; the loader it replaces would unpickle with torch's default.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
