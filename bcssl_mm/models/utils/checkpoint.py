"""Strict loading of a pretrained backbone checkpoint."""
import logging
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.runner.checkpoint import CheckpointLoader


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes do not match the model it is loaded into.
    """


def extract_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """Return the model state dict of an mmengine, official or raw checkpoint.
    """
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and key in checkpoint:
            return checkpoint[key]
    return checkpoint


PREFIX_HINT = ('set model.backbone.init_cfg.prefix to the right prefix, '
               "or to '' for a bare backbone state dict")


def read_backbone_checkpoint(filename: Optional[str],
                             map_location: str = 'cpu'
                             ) -> Dict[str, torch.Tensor]:
    """Read the model state dict of a pretrained backbone checkpoint.

    Args:
        filename (str): Local path or URL of the checkpoint; the value of
            ``model.backbone.init_cfg.checkpoint`` in configs.
        map_location (str): Passed to ``torch.load``. Defaults to 'cpu'.

    Returns:
        dict: The state dict (see :func:`extract_state_dict`).

    Raises:
        FileNotFoundError: No file given, or the file does not exist.
    """
    key_hint = 'model.backbone.init_cfg.checkpoint'
    if not filename:
        raise FileNotFoundError(
            f'no pretrained checkpoint given: set {key_hint}=PATH '
            '(e.g. with --cfg-options)')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(
            filename, map_location=map_location)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f'pretrained checkpoint {filename!r} ({key_hint}) does not exist'
        ) from e
    return extract_state_dict(checkpoint)


def load_backbone_checkpoint(module: nn.Module,
                             filename: Optional[str],
                             prefix: Optional[str] = 'backbone.',
                             map_location: str = 'cpu',
                             allow_missing: Sequence[str] = (),
                             logger: Optional[logging.Logger] = None) -> None:
    """Load ``filename`` into ``module`` and fail on any key or shape mismatch.

    Args:
        module (nn.Module): The backbone to load into.
        filename (str): Local path or URL of the checkpoint; the value of
            ``model.backbone.init_cfg.checkpoint`` in configs.
        prefix (str, optional): Only keys starting with it are loaded, with
            it stripped (``'backbone.'`` for mmpretrain/mmdet checkpoints).
            ``None`` or ``''`` loads a bare backbone state dict.
        map_location (str): Passed to ``torch.load``. Defaults to 'cpu'.
        allow_missing (Sequence[str]): Key prefixes that may be absent from the
            checkpoint and keep their initial values, e.g. the output norms
            ``norm0.``..``norm2.`` that a classification backbone lacks.
        logger (logging.Logger, optional): Where to report what was loaded.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointMismatchError: No key has ``prefix``, or keys are missing,
            unexpected or of the wrong shape; the message lists all of them.
    """
    load_state_dict_strict(
        module,
        read_backbone_checkpoint(filename, map_location),
        filename,
        prefix=prefix,
        allow_missing=allow_missing,
        logger=logger,
        prefix_hint=PREFIX_HINT)


def check_state_dict_strict(module: nn.Module,
                            state_dict: Dict[str, torch.Tensor],
                            source: str,
                            prefix: Optional[str] = None,
                            allow_missing: Sequence[str] = (),
                            prefix_hint: str = '') -> Dict[str, torch.Tensor]:
    """Check that ``state_dict`` fits ``module`` exactly; change nothing.

    Args:
        module (nn.Module): The module it is meant for.
        state_dict (dict): Tensors by name.
        source (str): Where ``state_dict`` comes from (a file name), for the
            messages.
        prefix (str, optional): Only keys starting with it count, with it
            stripped. ``None`` or ``''`` takes every key.
        allow_missing (Sequence[str]): Key prefixes that may be absent.
        prefix_hint (str): Appended to the error when no key has ``prefix``.

    Returns:
        dict: The tensors to load, by the module's names (prefix stripped).

    Raises:
        CheckpointMismatchError: No key has ``prefix``, or keys are missing,
            unexpected or of the wrong shape; the message lists all of them.
    """
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        stripped = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not stripped:
            raise CheckpointMismatchError(
                f'{source}: no key starts with prefix {prefix!r} '
                f'(first keys: {list(state_dict)[:5]}); {prefix_hint}')
        state_dict = stripped

    expected = module.state_dict()
    missing = [
        k for k in expected
        if k not in state_dict and not (k.startswith(tuple(allow_missing))
                                        or k.endswith('num_batches_tracked'))
    ]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [
        f'{k}: checkpoint {tuple(v.shape)} vs model '
        f'{tuple(expected[k].shape)}' for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mis_shaped:
        lines = [
            f'{source} does not match {type(module).__name__} '
            f'(prefix {prefix!r}):'
        ]
        for title, keys in (('missing keys', missing), ('unexpected keys',
                                                        unexpected),
                            ('mis-shaped keys', mis_shaped)):
            if keys:
                lines.append(f'  {len(keys)} {title}:')
                lines.extend(f'    {k}' for k in keys)
        raise CheckpointMismatchError('\n'.join(lines))

    return state_dict


def load_state_dict_strict(module: nn.Module,
                           state_dict: Dict[str, torch.Tensor],
                           source: str,
                           prefix: Optional[str] = None,
                           allow_missing: Sequence[str] = (),
                           logger: Optional[logging.Logger] = None,
                           prefix_hint: str = '') -> None:
    """Load ``state_dict`` into ``module``; fail on any key or shape mismatch.

    Args:
        module (nn.Module): The module to load into.
        state_dict (dict): Tensors by name.
        source (str): Where ``state_dict`` comes from (a file name), for the
            messages.
        prefix (str, optional): Only keys starting with it are loaded, with
            it stripped. ``None`` or ``''`` loads every key.
        allow_missing (Sequence[str]): Key prefixes that may be absent and
            keep their initial values.
        logger (logging.Logger, optional): Where to report what was loaded.
        prefix_hint (str): Appended to the error when no key has ``prefix``.

    Raises:
        CheckpointMismatchError: No key has ``prefix``, or keys are missing,
            unexpected or of the wrong shape; the message lists all of them;
            ``module`` is then unchanged.
    """
    state_dict = check_state_dict_strict(module, state_dict, source, prefix,
                                         allow_missing, prefix_hint)
    module.load_state_dict(state_dict, strict=False)
    if logger is not None:
        kept = sorted({
            k.split('.')[0]
            for k in module.state_dict()
            if k not in state_dict and not k.endswith('num_batches_tracked')
        })
        logger.info(f'Loaded {len(state_dict)} backbone tensors from '
                    f'{source} (prefix {prefix!r}); newly initialised: '
                    f'{kept or "none"}')
