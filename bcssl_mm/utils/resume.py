"""Which checkpoint ``--resume`` (without a path) continues from.

mmengine reads the path that ``work_dir/last_checkpoint`` names and fails
with ``FileNotFoundError:  can not be found.`` (an empty name) when that file
is empty or names a missing checkpoint, although a good ``epoch_N.pth`` may
be right there. :func:`find_resume_checkpoint` checks the named file and
otherwise falls back to the newest complete checkpoint of the work dir.
"""
import glob
import os.path as osp
import re
import zipfile
from typing import List, Optional, Tuple

from mmengine.logging import print_log

_CKPT_NAME = re.compile(r'(epoch|iter)_(\d+)\.pth')


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole torch zip checkpoint (every member's CRC
    checks out). A file cut short by a kill fails this."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def _candidates(work_dir: str) -> List[Tuple[int, str]]:
    found = []
    for path in glob.glob(osp.join(glob.escape(work_dir), '*.pth')):
        m = _CKPT_NAME.fullmatch(osp.basename(path))
        if m:
            found.append((int(m.group(2)), path))
    return sorted(found, reverse=True)


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from, or ``None`` to start afresh.

    Returns the file ``last_checkpoint`` names when it is complete, else the
    complete ``epoch_N.pth`` / ``iter_N.pth`` with the largest N (saying so
    in the log), else ``None`` when the work dir has no checkpoint at all.

    Raises:
        FileNotFoundError: ``last_checkpoint`` or checkpoints exist but none
            is complete; the message lists what was found.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = ''
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and is_complete_checkpoint(named):
            return named
    candidates = _candidates(work_dir)
    for _, path in candidates:
        if is_complete_checkpoint(path):
            if osp.isfile(pointer):
                why = ('is empty'
                       if not named else f'names {named!r}, which ' +
                       ('is incomplete'
                        if osp.exists(named) else 'does not exist'))
                print_log(
                    f'{pointer} {why}; resuming from the newest complete '
                    f'checkpoint, {path}',
                    logger='current',
                    level=30)
            return path
    if candidates or osp.isfile(pointer):
        listed = ', '.join(p for _, p in candidates) or 'none'
        raise FileNotFoundError(
            f'cannot resume in {work_dir}: last_checkpoint names '
            f'{named!r} and no checkpoint is complete (found: {listed}); '
            'remove them to start afresh, or pass --resume PATH')
    return None
