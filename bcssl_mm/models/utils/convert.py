"""Shared logic of the checkpoint converters in ``tools/model_converters``.

A converter renames the keys of a foreign checkpoint with a list of
:class:`Rule` s (:func:`remap`, which refuses keys that no rule matches), then
:func:`save_backbone_checkpoint` infers the ``BCSSLConvNeXt`` that the renamed
``backbone.*`` keys describe from their shapes (:func:`infer_backbone_cfg`),
writes the checkpoint to a temporary file beside the output, loads that file
strictly into the inferred backbone
(:func:`~bcssl_mm.models.utils.load_backbone_checkpoint`) and only then moves
it into place.

Checkpoints are pickles (DINO checkpoints hold mmengine's training state, the
authors' fork an ``argparse.Namespace``) and are loaded with
``weights_only=False``: convert only files you trust. The files written here
hold tensors and plain Python values only, so they load with
``torch.load(..., weights_only=True)``.
"""
import os
import os.path as osp
import re
import uuid
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ...utils.torch_load import load_from_local
from ..backbones.bcssl_convnext import BCSSLConvNeXt
from .checkpoint import CheckpointMismatchError, load_backbone_checkpoint

StateDict = Dict[str, torch.Tensor]

# the depthwise conv of block j of stage i, in BCSSLConvNeXt's names
_DW_KEY = re.compile(r'stages\.(\d+)\.(\d+)\.depthwise_conv\.weight')
# names that wrap a model in a state dict (DINO's teacher, DDP's module)
_WRAPPERS = ('teacher', 'student', 'module')


class ConversionError(ValueError):
    """A checkpoint is not in the layout a converter expects, or its result
    does not load strictly into the backbone it describes."""


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


def official_convnext_rules(prefix: str, num_stages: int) -> List[Rule]:
    """Rules from official ConvNeXt backbone names to ``backbone.*`` ones.

    Official (facebookresearch/ConvNeXt) names, also used by the authors'
    DINO fork: ``downsample_layers.*`` (as in mmpretrain),
    ``stages.i.j.{dwconv,norm,pwconv1,pwconv2,gamma}`` and the final ``norm``.

    Args:
        prefix (str): Regular expression for what precedes the backbone keys,
            e.g. ``''`` or ``r'(?:module\\.)?(?:backbone\\.)?'``.
        num_stages (int): The final ``norm`` becomes ``norm{num_stages-1}``.
    """
    block = prefix + r'stages\.(\d+)\.(\d+)\.'
    to_block = r'backbone.stages.\1.\2.'
    last = num_stages - 1
    return [
        Rule(prefix + r'downsample_layers\.(\d+)\.([01])\.(weight|bias)',
             r'backbone.downsample_layers.\1.\2.\3',
             'downsample_layers.* (unchanged)'),
        Rule(block + r'dwconv\.(weight|bias)', to_block + r'depthwise_conv.\3',
             'stages.i.j.dwconv -> depthwise_conv'),
        Rule(block + r'norm\.(weight|bias)', to_block + r'norm.\3',
             'stages.i.j.norm (unchanged)'),
        Rule(block + r'pwconv1\.(weight|bias)',
             to_block + r'pointwise_conv1.\3',
             'stages.i.j.pwconv1 -> pointwise_conv1'),
        Rule(block + r'pwconv2\.(weight|bias)',
             to_block + r'pointwise_conv2.\3',
             'stages.i.j.pwconv2 -> pointwise_conv2'),
        Rule(block + r'gamma', to_block + 'gamma',
             'stages.i.j.gamma (unchanged)'),
        Rule(prefix + r'norm\.(weight|bias)', rf'backbone.norm{last}.\1',
             f'norm (final) -> norm{last}'),
    ]


def num_stages_of(state_dict: StateDict, pattern: str) -> int:
    """1 + the largest stage index ``i`` captured by ``pattern`` in a key."""
    found = [
        int(m.group(1)) for m in map(re.compile(pattern).match, state_dict)
        if m
    ]
    return max(found) + 1 if found else 0


def _key_group(key: str) -> str:
    """``neck.mlp.0.weight`` -> ``neck.*``; ``teacher.neck.x`` ->
    ``teacher.neck.*``: the first name, after any wrapper's name."""
    parts = key.split('.')
    n = 2 if parts[0] in _WRAPPERS and len(parts) > 2 else 1
    return '.'.join(parts[:n]) + '.*' if len(parts) > n else key


def remap(state_dict: StateDict, rules: Sequence[Rule],
          source: str) -> Tuple[StateDict, RemapSummary]:
    """Rename (or drop) every key with the first rule whose pattern matches.

    Args:
        state_dict (dict): The source tensors.
        rules (Sequence[Rule]): Tried in order.
        source (str): The file the keys come from, for error messages.

    Returns:
        tuple: The renamed state dict (tensors cloned, so that it does not
        keep the source's storages alive in the saved file) and a summary.

    Raises:
        ConversionError: Some keys match no rule, or two keys get one name.
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


def infer_backbone_cfg(state_dict: StateDict,
                       prefix: str = 'backbone.') -> Optional[dict]:
    """Infer the ``BCSSLConvNeXt`` arguments that ``state_dict`` describes.

    Depths from the number of blocks per stage, widths from the depthwise
    convs (then matched to an entry of ``arch_settings``), the kernel from the
    first depthwise conv, BN from ``dw_norm`` keys, layer scale from
    ``gamma`` keys, ``out_indices`` from the output norms ``norm{i}``.
    Anything inconsistent (another kernel in a later block, a missing block)
    is left for the strict load in :func:`verify_backbone` to report.

    Args:
        state_dict (dict): Converted tensors.
        prefix (str): The backbone keys' prefix. Defaults to 'backbone.'.

    Returns:
        dict | None: Keyword arguments of ``BCSSLConvNeXt``, or ``None`` when
        there is no ``stages.i.j.depthwise_conv.weight`` (not a ConvNeXt).
    """
    sd = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    blocks: Dict[int, Dict[int, str]] = {}
    for key in sd:
        m = _DW_KEY.fullmatch(key)
        if m:
            blocks.setdefault(int(m.group(1)), {})[int(m.group(2))] = key
    if not blocks:
        return None
    num_stages = max(blocks) + 1
    empty = [i for i in range(num_stages) if i not in blocks]
    if empty:
        raise ConversionError(
            f'stages {empty} have no {prefix}stages.i.j.depthwise_conv.weight')
    # a missing block j < max j shows up as missing keys in the strict load
    depths = [max(blocks[i]) + 1 for i in range(num_stages)]
    first = [sd[blocks[i][min(blocks[i])]] for i in range(num_stages)]
    channels = [w.shape[0] for w in first]
    dw = first[0]  # (C, 1, k, k)
    if dw.dim() != 4 or dw.shape[-1] != dw.shape[-2]:
        raise ConversionError(f'{prefix}{blocks[0][min(blocks[0])]} has '
                              f'shape {tuple(dw.shape)}, not (C, 1, k, k)')
    arch: Any = dict(depths=depths, channels=channels)
    for name, setting in BCSSLConvNeXt.arch_settings.items():
        if (list(setting['depths']) == depths
                and list(setting['channels']) == channels):
            arch = name
            break
    stem = sd.get('downsample_layers.0.0.weight')  # (C0, C_in, p, p)
    return dict(
        arch=arch,
        kernel_size=int(dw.shape[-1]),
        dw_norm_cfg=dict(type='BN') if any('.dw_norm.' in k
                                           for k in sd) else None,
        in_channels=int(stem.shape[1]) if stem is not None else 3,
        stem_patch_size=int(stem.shape[-1]) if stem is not None else 4,
        # only whether it is > 0 matters: the checkpoint sets the values
        layer_scale_init_value=1e-6 if any(k.endswith('.gamma')
                                           for k in sd) else 0.,
        out_indices=tuple(
            i for i in range(num_stages) if f'norm{i}.weight' in sd))


def describe_backbone_cfg(cfg: dict) -> str:
    """One line: ``BCSSLConvNeXt(arch='atto', kernel_size=9, ...)``."""
    arch = cfg['arch']
    if isinstance(arch, str):
        setting = BCSSLConvNeXt.arch_settings[arch]
        arch_str = (f"arch='{arch}' (depths {list(setting['depths'])}, "
                    f"channels {list(setting['channels'])})")
    else:
        arch_str = f'arch={arch}'
    norm = cfg['dw_norm_cfg']['type'] if cfg['dw_norm_cfg'] else None
    return (f'BCSSLConvNeXt({arch_str}, kernel_size={cfg["kernel_size"]}, '
            f'dw_norm={norm}, layer_scale={cfg["layer_scale_init_value"] > 0},'
            f' in_channels={cfg["in_channels"]}, '
            f'stem_patch_size={cfg["stem_patch_size"]}, '
            f'out_indices={cfg["out_indices"]})')


def verify_backbone(filename: str, cfg: dict) -> None:
    """Load ``filename`` (prefix ``backbone.``) strictly into the backbone.

    Raises:
        CheckpointMismatchError: A key is missing, unexpected or mis-shaped.
    """
    load_backbone_checkpoint(
        BCSSLConvNeXt(**cfg), filename, prefix='backbone.')


def check_output(filename: str, force: bool) -> None:
    """Refuse to overwrite an existing file unless ``force``."""
    if osp.lexists(filename) and not force:
        raise FileExistsError(
            f'{filename} exists; pass --force to overwrite it')


def load_source(filename: str) -> Any:
    """Load a checkpoint to convert (a trusted pickle) on the CPU."""
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename}: no such checkpoint file')
    return load_from_local(filename, map_location='cpu')


def first_keys(state_dict: Any, n: int = 5) -> List[str]:
    """The first ``n`` keys of a dict, for error messages."""
    return list(state_dict)[:n] if isinstance(state_dict, dict) else []


def save_backbone_checkpoint(state_dict: StateDict,
                             filename: str,
                             meta: dict,
                             source: str,
                             force: bool = False,
                             verify: bool = True) -> Optional[dict]:
    """Write ``{'meta', 'state_dict'}`` atomically, after a strict check.

    The checkpoint is saved to a temporary file in the output's folder, loaded
    strictly into the ``BCSSLConvNeXt`` inferred from it (with ``verify``),
    then renamed to ``filename``; on any failure nothing is left behind. The
    inferred arguments are added to ``meta['backbone']``.

    Args:
        state_dict (dict): ``backbone.*`` (and e.g. ``head.fc.*``) tensors.
        filename (str): Output path.
        meta (dict): Plain Python values describing the conversion.
        source (str): The converted file, for messages.
        force (bool): Overwrite an existing ``filename``. Defaults to False.
        verify (bool): Infer the backbone and load strictly; without it the
            state dict is written as it is. Defaults to True.

    Returns:
        dict | None: The inferred ``BCSSLConvNeXt`` arguments (``None``
        without ``verify``).

    Raises:
        FileExistsError: ``filename`` exists and ``force`` is False.
        ConversionError: Nothing to infer a BCSSLConvNeXt from, or the result
            does not load strictly into it; the message lists the keys.
    """
    check_output(filename, force)
    cfg = None
    if verify:
        cfg = infer_backbone_cfg(state_dict)
        if cfg is None:
            raise ConversionError(
                f'{source}: the converted checkpoint has no '
                'backbone.stages.i.j.depthwise_conv.weight, so it is not a '
                'BC-SSL / ConvNeXt backbone')
        dw_key = next(k for k in state_dict
                      if _DW_KEY.fullmatch(k[len('backbone.'):]))
        print(f'kernel size: {cfg["kernel_size"]} ({dw_key} '
              f'{tuple(state_dict[dw_key].shape)})')
        print(f'backbone: {describe_backbone_cfg(cfg)}')
        meta = dict(
            meta,
            backbone=dict(
                cfg,
                dw_norm_cfg=dict(cfg['dw_norm_cfg'])
                if cfg['dw_norm_cfg'] else None))
    out_dir = osp.dirname(osp.abspath(filename))
    os.makedirs(out_dir, exist_ok=True)
    tmp = osp.join(out_dir,
                   f'.{osp.basename(filename)}.{uuid.uuid4().hex[:8]}.tmp')
    try:
        torch.save(dict(meta=meta, state_dict=state_dict), tmp)
        if cfg is not None:
            try:
                verify_backbone(tmp, cfg)
            except CheckpointMismatchError as e:
                raise ConversionError(
                    f'{source}: the converted checkpoint does not load '
                    f'strictly into {describe_backbone_cfg(cfg)}; nothing '
                    f'was written to {filename}:\n' +
                    str(e).replace(tmp, 'converted checkpoint')) from None
            print('verified: loads strictly into BCSSLConvNeXt '
                  "(load_backbone_checkpoint, prefix 'backbone.')")
        os.replace(tmp, filename)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print(f'saved {len(state_dict)} tensors to {filename}')
    return cfg
