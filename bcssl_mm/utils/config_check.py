"""Checks of a config that can be made before a run starts.

mmengine reads the keys it knows and ignores the others, so a misspelt key
(``load_form``, ``default_hooks.checkpoint.intreval``) trains without a word,
or fails only after an epoch of work. ``tools/train.py`` and
``tools/test.py`` call :func:`check_config` once, before building the
runner; :func:`check_cfg_options` warns about ``--cfg-options`` keys that no
part of the config reads.
"""
import argparse
import difflib
import inspect
import math
import os.path as osp
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS
from mmengine.runner import Runner


def add_runner_args(parser: argparse.ArgumentParser,
                    cfg_options_help: str = 'override config keys') -> None:
    """The options every config-driven tool shares, as mmengine's tools
    spell them: ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help=cfg_options_help)
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


class ConfigError(ValueError):
    """A config key or value that would break or silently spoil a run."""


class ConfigWarning(UserWarning):
    """A config key that is probably not what the user meant."""


# Top-level keys that mmengine's Runner (or the launching scripts) read.
RUNNER_KEYS = frozenset(
    set(inspect.signature(Runner.__init__).parameters) - {'self'}
    | {'runner_type', 'custom_imports', 'default_scope', 'launcher'})


def _close(key: str, choices: Iterable[str], cutoff: float = 0.8) -> str:
    match = difflib.get_close_matches(key, list(choices), n=1, cutoff=cutoff)
    return f'; did you mean {match[0]!r}?' if match else ''


def check_top_level_keys(cfg: Config, filename: str) -> None:
    """Refuse top-level keys that look like a misspelt Runner argument.

    Other unknown keys are the variables configs share with their children
    (``data_root``, ``train_pipeline``, ...) and are left alone.

    Raises:
        ConfigError: e.g. ``load_form`` next to no ``load_from``.
    """
    for key in cfg.keys():
        if key in RUNNER_KEYS or key.startswith('_'):
            continue
        hint = _close(key, RUNNER_KEYS, cutoff=0.85)
        if hint:
            raise ConfigError(
                f'{filename}: top-level key {key!r} is read by nothing (the '
                f'Runner ignores it){hint} Rename it, or give the variable '
                'a name less like a Runner argument.')


def _walk(node: Any, parts: Sequence[str]) -> Optional[str]:
    """The first part of ``parts`` that ``node`` lacks, or ``None``."""
    for part in parts:
        if isinstance(node, (list, tuple)) and part.isdigit() \
                and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return part
    return None


def check_cfg_options(cfg: Config, options: Dict[str, Any]) -> List[str]:
    """Warn about ``--cfg-options`` keys that no part of ``cfg`` reads.

    Args:
        cfg (Config): The config *before* the options are merged.
        options (dict): The parsed ``--cfg-options``.

    Returns:
        list[str]: The warnings, also issued as :class:`ConfigWarning`.
    """
    found = []
    tree = cfg.to_dict()
    for dotted in options:
        parts = dotted.split('.')
        if parts[0] not in cfg and parts[0] not in RUNNER_KEYS:
            found.append(
                f'--cfg-options {dotted}: the config has no key '
                f'{parts[0]!r} and neither mmengine nor bcssl_mm reads it' +
                _close(parts[0],
                       set(cfg.keys()) | RUNNER_KEYS))
            continue
        missing = _walk(tree, parts)
        if missing is None or missing != parts[-1]:
            continue  # an existing key, or a new sub-dict
        parent = _walk_to(tree, parts[:-1])
        if isinstance(parent, dict):
            hint = _close(missing, parent.keys())
            if hint:
                found.append(f'--cfg-options {dotted}: '
                             f'{".".join(parts[:-1])} has no key '
                             f'{missing!r}{hint}')
    for message in found:
        warnings.warn(message, ConfigWarning, stacklevel=2)
    return found


def _walk_to(node: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        node = node[int(part)] if isinstance(node, (list, tuple)) \
            else node[part]
    return node


def _hook_cfgs(cfg: Config) -> List[tuple]:
    hooks = [(f'default_hooks.{name}', h)
             for name, h in (cfg.get('default_hooks') or {}).items()]
    hooks += [(f'custom_hooks[{i}]', h)
              for i, h in enumerate(cfg.get('custom_hooks') or [])]
    return [(where, h) for where, h in hooks
            if isinstance(h, dict) and 'type' in h]


def check_hook_args(cfg: Config) -> None:
    """Refuse hook arguments that the hook's class does not take.

    ``CheckpointHook`` forwards unknown keyword arguments to
    ``Runner.save_checkpoint``, which then fails at the first save, after an
    epoch of work; they are checked against both signatures here.

    Raises:
        ConfigError: Names the hook, the key and the nearest valid one.
    """
    scope = cfg.get('default_scope')
    for where, hook in _hook_cfgs(cfg):
        hook_type = hook['type']
        if isinstance(hook_type, str):
            with HOOKS.switch_scope_and_registry(scope) as registry:
                cls = registry.get(hook_type)
        else:
            cls = hook_type
        if not inspect.isclass(cls):
            continue  # unknown types are reported by the Runner itself
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
        allowed = set(params) - {'self'} | {'type', 'priority', '_scope_'}
        if issubclass(cls, CheckpointHook):
            allowed |= set(
                inspect.signature(Runner.save_checkpoint).parameters)
        elif takes_kwargs:
            continue
        for key in hook:
            if key not in allowed:
                raise ConfigError(
                    f'{where}.{key}: {cls.__name__} has no argument '
                    f'{key!r}{_close(key, allowed - {"type"})}')


def check_param_schedulers(cfg: Config) -> List[str]:
    """Refuse schedulers that begin after the run ends; warn about warm-ups
    that cover the whole run.

    mmengine reports the first case from deep inside the scheduler
    (``end should be larger than begin``) without naming a config key.

    Raises:
        ConfigError: Names ``param_scheduler[i]`` and
            ``train_cfg.max_epochs`` (or ``max_iters``).

    Returns:
        list[str]: The warnings, also issued as :class:`ConfigWarning`.
    """
    train_cfg = cfg.get('train_cfg') or {}
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    found = []
    for i, sched in enumerate(schedulers):
        if not isinstance(sched, dict):
            continue
        by_epoch = sched.get('by_epoch', True)
        limit_key = 'max_epochs' if by_epoch else 'max_iters'
        limit = train_cfg.get(limit_key)
        if limit is None:
            continue
        unit = 'epoch' if by_epoch else 'iteration'
        begin = sched.get('begin', 0)
        end = min(sched.get('end', math.inf), limit)
        name = f'param_scheduler[{i}] ({sched.get("type")})'
        if begin >= end:
            raise ConfigError(
                f'{name} begins at {unit} {begin}, but the run ends at '
                f'{unit} {limit} (train_cfg.{limit_key}={limit}): raise '
                f'train_cfg.{limit_key}, or shorten the schedule before it '
                f'(param_scheduler.{i}.begin and the warm-up\'s end)')
        if sched.get('type') == 'LinearLR' and begin == 0 \
                and sched.get('end', math.inf) >= limit:
            found.append(
                f'{name}: the lr warm-up lasts the whole run ({limit} '
                f'{unit}s, train_cfg.{limit_key}), so the lr never reaches '
                'its configured value')
    for message in found:
        warnings.warn(message, ConfigWarning, stacklevel=2)
    return found


def check_config(cfg: Config, filename: str) -> List[str]:
    """All checks above; returns the warnings.

    Raises:
        ConfigError: The first error found.
    """
    check_top_level_keys(cfg, filename)
    check_hook_args(cfg)
    return check_param_schedulers(cfg)


def load_config(filename: str,
                cfg_options: Optional[Dict[str, Any]] = None,
                launcher: str = 'none',
                work_dir: Optional[str] = None) -> Config:
    """The config of ``tools/train.py`` and ``tools/test.py``.

    Reads ``filename``, warns about ``cfg_options`` keys nothing reads
    (:func:`check_cfg_options`), merges them, and sets ``launcher`` and
    ``work_dir`` (default ``work_dirs/<config name>``).

    Raises:
        FileNotFoundError: ``filename`` does not exist.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'config file {filename!r} does not exist')
    cfg = Config.fromfile(filename)
    cfg.launcher = launcher
    if cfg_options is not None:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(filename))[0])
    return cfg
