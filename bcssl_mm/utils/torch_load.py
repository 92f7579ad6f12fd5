"""Let mmengine 0.10.7 read its own checkpoints under torch >= 2.6.

Upstream bug: mmengine's ``load_from_local`` (mmengine/runner/checkpoint.py)
calls ``torch.load`` without ``weights_only``; since torch 2.6 that defaults to
True and refuses the HistoryBuffer and numpy objects that mmengine pickles into
every checkpoint, so ``--resume`` fails with ``UnpicklingError``. mmengine's
documented extension point ``CheckpointLoader.register_scheme`` lets us replace
the local-file loader instead of patching the module.

Like any pickle, a checkpoint can run code when loaded: load only files you
trust.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


def load_from_local(filename: str, map_location=None) -> dict:
    """Load a local checkpoint, allowing mmengine's pickled training state."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(
        filename, map_location=map_location, weights_only=False)


def register_local_checkpoint_loader() -> None:
    """Make ``load_from_local`` mmengine's loader for plain file paths."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)
