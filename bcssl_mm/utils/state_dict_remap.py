"""Rename the keys of a foreign checkpoint; save the result atomically.

The model-agnostic engine of the converters in ``tools/model_converters``. A
model's renaming tables (lists of :class:`Rule`) live next to the model they
target, as timm keeps its ``checkpoint_filter_fn`` in each model file; see the
end of ``bcssl_mm/models/backbones/bcssl_convnext.py``. Here:

- :func:`load_source` reads the checkpoint to convert with
  ``torch.load(..., weights_only=True)``;
- :func:`remap` renames every key with the first rule that matches it and
  refuses the keys that no rule matches, naming them; its
  :class:`RemapSummary` prints what each rule did;
- :func:`check_output` refuses an output path that cannot be written, before
  any work is done;
- :func:`save_checkpoint` writes ``{'meta', 'state_dict'}`` to a temporary
  file beside the output, hands that file to a verify callback (e.g. a strict
  load into the model the tensors describe) and only then renames it into
  place with ``os.replace``, so that no half-written or unverified file ever
  carries the output's name;
- :func:`converter_args_parser` gives converters one command line
  (``src dst [--force]``) and :func:`run_cli` ends their user errors (a bad
  file, a bad path, an unknown layout) with one ``error: ...`` line instead
  of a traceback.

This module imports nothing of ``bcssl_mm`` but :mod:`.torch_load` (which
imports only torch, numpy and mmengine), so that every model file can import
it without an import cycle.
"""
import argparse
import os
import os.path as osp
import re
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .torch_load import (NAMESPACE_SAFE_GLOBALS, CheckpointLoadError,
                         load_from_local)

StateDict = Dict[str, torch.Tensor]

# names that wrap a model in a state dict (DINO's teacher, DDP's module)
_WRAPPERS = ('teacher', 'student', 'module')


class ConversionError(ValueError):
    """A checkpoint is not in the layout a converter expects, or its result
    does not pass the converter's check."""


@dataclass(frozen=True)
class Rule:
    """Rename the keys that fully match ``pattern`` to ``repl``.

    Args:
        pattern (str): Regular expression matched against the whole key.
        repl (str, optional): Replacement template (``re`` syntax, e.g.
            ``r'backbone.\\1'``); ``None`` drops the key.
        name (str): How the rule is reported in the summary.
        transform (Callable, optional): Applied to the tensor of every key
            the rule renames, e.g. a reshape.
    """
    pattern: str
    repl: Optional[str]
    name: str
    transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


@dataclass
class RemapSummary:
    """What :func:`remap` did: renamed keys per rule, dropped keys per rule
    and per key group (e.g. ``teacher.neck.*``)."""
    mapped: Dict[str, int]
    dropped: Dict[str, Counter]

    def print(self) -> None:
        """Print the counts, one line per rule (and dropped key group)."""
        print(f'mapped {sum(self.mapped.values())} keys:')
        for name, n in self.mapped.items():
            print(f'  {n:6d}  {name}')
        num_dropped = sum(sum(c.values()) for c in self.dropped.values())
        print(f'dropped {num_dropped} keys' + (':' if num_dropped else ''))
        for name, groups in self.dropped.items():
            print(f'          {name}:')
            for group, n in groups.items():
                print(f'  {n:6d}    {group}')


def num_indexed(state_dict: Dict[str, Any], pattern: str) -> int:
    """1 + the largest integer that group 1 of ``pattern`` captures at the
    start of a key (e.g. the stage ``i`` of ``stages.i.*``); 0 if none."""
    found = [
        int(m.group(1)) for m in map(re.compile(pattern).match, state_dict)
        if m
    ]
    return max(found) + 1 if found else 0


def first_keys(state_dict: Any, n: int = 5) -> List[str]:
    """The first ``n`` keys of a dict (none of anything else), for error
    messages."""
    return list(state_dict)[:n] if isinstance(state_dict, dict) else []


def _key_group(key: str) -> str:
    """``neck.mlp.0.weight`` -> ``neck.*``; ``teacher.neck.x`` ->
    ``teacher.neck.*``: the first name, after any wrapper's name."""
    parts = key.split('.')
    n = 2 if parts[0] in _WRAPPERS and len(parts) > 2 else 1
    return '.'.join(parts[:n]) + '.*' if len(parts) > n else key


def remap(state_dict: Dict[str, Any], rules: Sequence[Rule],
          source: str) -> Tuple[StateDict, RemapSummary]:
    """Rename (or drop) every key with the first rule whose pattern matches.

    Args:
        state_dict (dict): The source tensors.
        rules (Sequence[Rule]): Tried in order.
        source (str): Where the keys come from (a file, ``file['teacher']``),
            for error messages.

    Returns:
        tuple: The renamed state dict (tensors cloned, so that it does not
        keep the source's storages alive in the saved file) and a summary.

    Raises:
        ConversionError: Some keys match no rule (all are listed, up to 20),
            two keys get one name, or a renamed value is not a tensor.
    """
    compiled = [(re.compile(r.pattern), r) for r in rules]
    out: StateDict = OrderedDict()
    mapped: Dict[str, int] = {}
    dropped: Dict[str, Counter] = {}
    origin: Dict[str, str] = {}
    unmatched = []
    for key, value in state_dict.items():
        for pattern, rule in compiled:
            m = pattern.fullmatch(key)
            if m is None:
                continue
            if rule.repl is None:
                dropped.setdefault(rule.name, Counter())[_key_group(key)] += 1
                break
            new_key = m.expand(rule.repl)
            if new_key in out:
                raise ConversionError(
                    f'{source}: {origin[new_key]!r} and {key!r} both map to '
                    f'{new_key!r}')
            if not isinstance(value, torch.Tensor):
                raise ConversionError(
                    f'{source}: {key!r} is a {type(value).__name__}, not a '
                    'tensor')
            value = value.detach().clone()
            out[new_key] = rule.transform(value) if rule.transform else value
            origin[new_key] = key
            mapped[rule.name] = mapped.get(rule.name, 0) + 1
            break
        else:
            unmatched.append(key)
    if unmatched:
        shown = '\n'.join(f'    {k}' for k in unmatched[:20])
        more = f'\n    ... and {len(unmatched) - 20} more' \
            if len(unmatched) > 20 else ''
        raise ConversionError(
            f'{source}: {len(unmatched)} keys match no conversion rule (an '
            f'unsupported variant?):\n{shown}{more}')
    by_rule = {r.name: mapped[r.name] for r in rules if r.name in mapped}
    return out, RemapSummary(by_rule, dropped)


def load_source(filename: str) -> Any:
    """Load a checkpoint to convert on the CPU, safely.

    ``torch.load(..., weights_only=True)`` admitting, besides tensors, plain
    values and mmengine's training state, the ``argparse.Namespace`` that
    DINO-style checkpoints (official DINO, the authors' fork) hold.

    Raises:
        FileNotFoundError: ``filename`` is not a file.
        CheckpointLoadError: Empty, truncated or not a checkpoint, or it
            needs globals that could run code; the message names the file.
    """
    return load_from_local(
        filename,
        map_location='cpu',
        extra_safe_globals=NAMESPACE_SAFE_GLOBALS)


def check_output(filename: str, force: bool = False) -> None:
    """Refuse an output path that cannot (or must not) be written.

    Missing parent folders are fine: :func:`save_checkpoint` creates them.

    Args:
        filename (str): The output path.
        force (bool): Allow overwriting an existing file. Defaults to False.

    Raises:
        IsADirectoryError: ``filename`` is a folder.
        FileExistsError: ``filename`` exists and ``force`` is False.
        NotADirectoryError: A parent of ``filename`` is a file.
    """
    if osp.isdir(filename):
        raise IsADirectoryError(
            f'{filename} is a folder; give the output file name, e.g. '
            f'{osp.join(filename, "converted.pth")}')
    if osp.lexists(filename) and not force:
        raise FileExistsError(
            f'{filename} exists; pass --force to overwrite it')
    parent = osp.dirname(osp.abspath(filename))
    while not osp.exists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        raise NotADirectoryError(
            f'cannot write {filename}: {parent} is a file, not a folder')


def save_checkpoint(state_dict: StateDict,
                    filename: str,
                    meta: dict,
                    verify: Optional[Callable[[str], None]] = None,
                    force: bool = False) -> None:
    """Write ``{'meta', 'state_dict'}`` atomically, after ``verify``.

    The checkpoint is saved to a temporary file in the output's folder (made
    with its parents if missing), ``verify(temporary_file)`` is called, and
    only then is the file renamed to ``filename``. On any failure nothing is
    left behind and an existing ``filename`` is untouched.

    Args:
        state_dict (dict): The converted tensors.
        filename (str): Output path.
        meta (dict): Plain Python values describing the conversion, so that
            the file loads with ``torch.load(..., weights_only=True)``.
        verify (Callable, optional): Called with the temporary file's path;
            raises if the file is wrong. ``None``: no check.
        force (bool): Overwrite an existing ``filename``. Defaults to False.

    Raises:
        FileExistsError, IsADirectoryError, NotADirectoryError: See
            :func:`check_output`.
        Exception: Whatever ``verify`` raises.
    """
    check_output(filename, force)
    out_dir = osp.dirname(osp.abspath(filename))
    os.makedirs(out_dir, exist_ok=True)
    tmp = osp.join(out_dir,
                   f'.{osp.basename(filename)}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        torch.save(dict(meta=meta, state_dict=state_dict), tmp)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, filename)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print(f'saved {len(state_dict)} tensors to {filename}')


def converter_args_parser(doc: str, src_help: str,
                          dst_help: str) -> argparse.ArgumentParser:
    """A parser with a converter's ``src``, ``dst`` and ``--force``.

    Args:
        doc (str): The script's docstring; its first line describes it.
        src_help (str): Help of the input checkpoint.
        dst_help (str): Help of the output checkpoint.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help=dst_help)
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing output')
    return parser


# what a converter's user can get wrong: the input file, the output path,
# the layout of the checkpoint
USER_ERRORS = (CheckpointLoadError, ConversionError, OSError)


def run_cli(main: Callable[[argparse.Namespace], None],
            parser: argparse.ArgumentParser) -> None:
    """Run ``main(parser.parse_args())``; end a user error with its message.

    An exception of :data:`USER_ERRORS` becomes ``SystemExit('error: ...')``:
    Python prints the one line to stderr, without a traceback, and exits
    with status 1. Anything else (a bug) keeps its traceback.
    """
    try:
        main(parser.parse_args())
    except USER_ERRORS as e:
        raise SystemExit(f'error: {e}')
