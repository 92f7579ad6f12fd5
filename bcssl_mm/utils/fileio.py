"""Atomic writes for mmengine's local file backend.

mmengine 0.10.7's ``LocalBackend.put`` (mmengine/fileio/backends/
local_backend.py) opens the target with ``'wb'`` and writes into it, so a
run killed while saving leaves a truncated ``epoch_N.pth`` that carries a
checkpoint's name. ``save_checkpoint`` and ``CheckpointHook`` (checkpoints
and ``last_checkpoint``) write through that backend; mmengine's documented
``register_backend`` replaces it with :class:`AtomicLocalBackend`.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend
from mmengine.utils import mkdir_or_exist


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose writes go to a temporary file in the target's
    folder, then ``os.replace`` it: a reader sees the old file or the whole
    new one, never a part."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        mkdir_or_exist(folder)
        # hidden and without the target's extension, so that no glob for
        # '*.pth' ever picks up a partial file
        tmp = osp.join(folder,
                       f'.{osp.basename(filepath)}.{os.getpid()}.partial')
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def register_atomic_local_backend() -> None:
    """Make :class:`AtomicLocalBackend` the backend of plain local paths."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
