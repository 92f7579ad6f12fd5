"""Checkpoint conversion for MAE ViTs: official MAE and MAE-Lite names.

The renaming tables (rules of the engine in
``bcssl_mm/utils/state_dict_remap.py``) that
``tools/model_converters/mae_to_mmpretrain.py`` applies, and the strict check
of its result; the role of timm's ``checkpoint_filter_fn`` for mmpretrain's
``MAEViT`` and ``MAEPretrainDecoder``, whose names the toolkit's MAE models
(``AttnMAEViT``, ``DMAELite``) keep.

Layouts, detected from the keys:

- official MAE (https://github.com/facebookresearch/mae), e.g.
  ``mae_pretrain_vit_base.pth``: ``{'model': {...}}`` with the encoder in
  timm ViT names, ``cls_token``, ``pos_embed``, ``patch_embed.proj.*``,
  ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`` and the
  final ``norm.*``. The ``*_full.pth`` / ``mae_visualize_*`` files also hold
  the decoder (names below, without a prefix);
- MAE-Lite (https://github.com/wangsr126/mae-lite): ``{'model': {...},
  'start_epoch', 'optimizer', ...}`` whose model keys are those of the DDP
  wrapper, ``module.model.<MAE key>``: the encoder as above plus
  ``mask_token``, ``decoder_embed.*``, ``decoder_pos_embed``,
  ``decoder_blocks.N.*``, ``decoder_norm.*`` and ``decoder_pred.*``. A
  D-MAE-Lite checkpoint adds the teacher encoder ``module.tch_model.*`` and
  the head adapter ``module.attn_adapter.adapterN.weight`` (a 1x1 conv of
  shape (H_teacher, H_student, 1, 1) on the attention maps of block ``N``).

Mapping (``N`` kept):

    cls_token, pos_embed              -> backbone.cls_token, .pos_embed
    patch_embed.proj.*                -> backbone.patch_embed.projection.*
    blocks.N.norm1.* / norm2.*        -> backbone.layers.N.ln1.* / ln2.*
    blocks.N.attn.qkv.* / attn.proj.* -> backbone.layers.N.attn.qkv.* / proj.*
    blocks.N.mlp.fc1.* / mlp.fc2.*    -> backbone.layers.N.ffn.layers.0.0.* /
                                         backbone.layers.N.ffn.layers.1.*
    norm.* (final)                    -> backbone.ln1.*
    mask_token, decoder_pos_embed     -> neck.mask_token, .decoder_pos_embed
    decoder_embed.*, decoder_pred.*   -> neck.decoder_embed.*, .decoder_pred.*
    decoder_blocks.N.*                -> neck.decoder_blocks.N.* (block names
                                         as for blocks.N)
    decoder_norm.*                    -> neck.ln1.*
    tch_model.* (D-MAE-Lite)          -> teacher.* (as the encoder)
    attn_adapter.adapterN.weight      -> attn_adapter.weight

The tensors are not changed. In particular each checkpoint keeps its own
``pos_embed`` / ``decoder_pos_embed``: MAE's fixed 2D sin-cos table is the
spatial transpose of the one mmpretrain's ``MAEViT.init_weights`` and
``MAEPretrainDecoder.init_weights`` write (rows and columns swapped), and the
converted weights were trained with MAE's. Load them after ``init_weights``
(as ``DMAELite`` does with its teacher), or that call overwrites them.
"""
import math
import re
from typing import Dict, List, Optional, Tuple, Union

from mmpretrain.models import MAEPretrainDecoder, MAEViT

from ...utils.state_dict_remap import (ConversionError, Rule, first_keys,
                                       load_source, num_indexed,
                                       save_checkpoint)
from ..utils import (CheckpointMismatchError, extract_state_dict,
                     load_state_dict_strict)

LAYOUTS = ('mae', 'maelite')
LAYOUT_NAMES = dict(mae='official MAE', maelite='MAE-Lite')

# timm / MAE block names -> mmpretrain TransformerEncoderLayer names
_BLOCK_NAMES = (
    ('norm1', 'ln1'),
    ('attn.qkv', 'attn.qkv'),
    ('attn.proj', 'attn.proj'),
    ('norm2', 'ln2'),
    ('mlp.fc1', 'ffn.layers.0.0'),
    ('mlp.fc2', 'ffn.layers.1'),
)
# MAEPretrainDecoder's decoder_norm: build_norm_layer(LN, postfix=1)
DECODER_NORM = 'ln1'
# MAE-Lite's DDP wrapper (absent from a single-process run)
_MAELITE_DDP = r'(?:module\.)?'
_ADAPTER = _MAELITE_DDP + r'attn_adapter\.adapter(\d+)\.weight'

# head counts of the official models when none is given: ViT-B and MAE-Lite's
# ViT-Tiny encoders have 12, MAE's decoder 16, MAE-Lite's decoder 3
DEFAULT_NUM_HEADS = 12
DEFAULT_TEACHER_NUM_HEADS = 12
DEFAULT_DECODER_NUM_HEADS = dict(mae=16, maelite=3)


def _block_rules(src: str, dst: str, src_name: str,
                 dst_name: str) -> List[Rule]:
    """Rules for the blocks ``src`` (a pattern whose group 1 is the index)."""
    return [
        Rule(src + a.replace('.', r'\.') + r'\.(weight|bias)',
             dst + b + r'.\2', f'{src_name}.{a} -> {dst_name}.{b}')
        for a, b in _BLOCK_NAMES
    ]


def mae_encoder_rules(prefix: str = '',
                      to: str = 'backbone.',
                      prefix_name: str = '') -> List[Rule]:
    """Rules from MAE encoder (timm ViT) names to ``MAEViT`` ones.

    Args:
        prefix (str): Pattern of what precedes the keys, e.g. ``''`` or
            ``r'(?:module\\.)?model\\.'``; without capturing groups.
        to (str): Prefix of the new names. Defaults to 'backbone.'.
        prefix_name (str): ``prefix`` as shown in the summary.

    Returns:
        list[Rule]: The rules.
    """
    return [
        Rule(prefix + r'(cls_token|pos_embed)', to + r'\1',
             f'{prefix_name}cls_token, pos_embed -> {to}* (values kept)'),
        Rule(prefix + r'patch_embed\.proj\.(weight|bias)',
             to + r'patch_embed.projection.\1',
             f'{prefix_name}patch_embed.proj -> {to}patch_embed.projection'),
        *_block_rules(prefix + r'blocks\.(\d+)\.', to + r'layers.\1.',
                      f'{prefix_name}blocks.i', f'{to}layers.i'),
        Rule(prefix + r'norm\.(weight|bias)', to + r'ln1.\1',
             f'{prefix_name}norm (final) -> {to}ln1'),
    ]


def mae_decoder_rules(prefix: str = '',
                      to: str = 'neck.',
                      prefix_name: str = '') -> List[Rule]:
    """Rules from MAE decoder names to ``MAEPretrainDecoder`` ones.

    Args:
        prefix (str): Pattern of what precedes the keys; without capturing
            groups.
        to (str): Prefix of the new names. Defaults to 'neck.'.
        prefix_name (str): ``prefix`` as shown in the summary.

    Returns:
        list[Rule]: The rules.
    """
    return [
        Rule(
            prefix + r'(mask_token|decoder_pos_embed)', to + r'\1',
            f'{prefix_name}mask_token, decoder_pos_embed -> {to}* '
            '(values kept)'),
        Rule(prefix + r'(decoder_embed|decoder_pred)\.(weight|bias)',
             to + r'\1.\2',
             f'{prefix_name}decoder_embed, decoder_pred -> {to}*'),
        *_block_rules(
            prefix + r'decoder_blocks\.(\d+)\.', to + r'decoder_blocks.\1.',
            f'{prefix_name}decoder_blocks.i', f'{to}decoder_blocks.i'),
        Rule(prefix + r'decoder_norm\.(weight|bias)',
             to + DECODER_NORM + r'.\1',
             f'{prefix_name}decoder_norm -> {to}{DECODER_NORM}'),
    ]


def detect_mae_layout(state_dict: dict, source: str) -> str:
    """``'mae'`` or ``'maelite'``: the layout of a state dict's keys.

    Args:
        state_dict (dict): The source state dict (``checkpoint['model']``).
        source (str): Its file, for error messages.

    Raises:
        ConversionError: Neither layout (or already mmpretrain names).
    """
    keys = [k for k in state_dict if isinstance(k, str)]
    if any(
            k.startswith(('module.model.', 'model.', 'module.tch_model.'))
            for k in keys):
        return 'maelite'
    if any(k == 'patch_embed.proj.weight' or k.startswith('blocks.')
           for k in keys):
        return 'mae'
    if any(k.startswith('backbone.') for k in keys):
        raise ConversionError(
            f'{source}: keys start with "backbone.": already in mmpretrain '
            'names, nothing to convert')
    raise ConversionError(
        f'{source}: neither an official MAE checkpoint (keys '
        "'cls_token', 'pos_embed', 'patch_embed.proj.*', 'blocks.N.*', "
        "'norm.*' under 'model') nor an MAE-Lite one (keys "
        "'module.model.*', and 'module.tch_model.*' for D-MAE-Lite, under "
        f"'model'); first keys: {first_keys(state_dict)}")


def attn_adapter_layer(state_dict: dict, source: str) -> Optional[int]:
    """The block whose attention a D-MAE-Lite head adapter maps, if any.

    Args:
        state_dict (dict): The source state dict.
        source (str): Its file, for error messages.

    Returns:
        int | None: ``N`` of ``attn_adapter.adapterN.weight`` (0-based block
        index), ``None`` without an adapter.

    Raises:
        ConversionError: More than one adapter (several distilled blocks;
            the toolkit's ``DMAELite`` distils one).
    """
    found = sorted(
        int(m.group(1))
        for m in map(re.compile(_ADAPTER).fullmatch, state_dict) if m)
    if len(found) > 1:
        raise ConversionError(
            f'{source}: {len(found)} attention adapters (blocks {found}); '
            'DMAELite distils the attention of one block')
    return found[0] if found else None


def mae_checkpoint_rules(state_dict: dict,
                         source: str,
                         layout: str = 'auto') -> Tuple[str, List[Rule]]:
    """Detect an official MAE or MAE-Lite state dict; return its rules.

    Args:
        state_dict (dict): The source state dict (``checkpoint['model']``).
        source (str): Its file, for error messages.
        layout (str): ``'auto'`` (detect), ``'mae'`` or ``'maelite'``; a
            layout other than the detected one is refused.

    Returns:
        tuple: ``('mae' | 'maelite', rules)``. Keys that no rule matches
        (a classifier, another distillation adapter) are refused by
        :func:`~bcssl_mm.utils.state_dict_remap.remap`, which names them.

    Raises:
        ConversionError: Neither layout, or not the one asked for.
    """
    detected = detect_mae_layout(state_dict, source)
    if layout not in ('auto', detected):
        raise ConversionError(
            f'{source}: --format {layout} expects an {LAYOUT_NAMES[layout]} '
            f'checkpoint, but its keys are those of an '
            f'{LAYOUT_NAMES[detected]} one (first keys: '
            f'{first_keys(state_dict)}); use --format {detected} or auto')
    if detected == 'mae':
        return 'mae', mae_encoder_rules() + mae_decoder_rules()
    model = _MAELITE_DDP + r'model\.'
    teacher = _MAELITE_DDP + r'tch_model\.'
    return 'maelite', [
        *mae_encoder_rules(model, 'backbone.', 'module.model.'),
        *mae_decoder_rules(model, 'neck.', 'module.model.'),
        *mae_encoder_rules(teacher, 'teacher.', 'module.tch_model.'),
        Rule(_ADAPTER, 'attn_adapter.weight',
             'module.attn_adapter.adapterN -> attn_adapter'),
    ]


def _strip(state_dict: dict, prefix: str) -> dict:
    return {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }


def _shape(sd: dict, key: str, prefix: str, dim: int) -> Tuple[int, ...]:
    """The shape of ``sd[key]``, which must exist and have ``dim`` dims."""
    if key not in sd:
        raise ConversionError(f'no {prefix}{key} in the converted tensors')
    shape = tuple(sd[key].shape)
    if len(shape) != dim:
        raise ConversionError(
            f'{prefix}{key} has shape {shape}, expected {dim} dimensions')
    return shape


def _check_heads(dims: int, num_heads: int, what: str) -> None:
    if num_heads < 1 or dims % num_heads:
        raise ConversionError(
            f'{what}: {num_heads} heads do not divide its {dims} dims; give '
            'the right number of heads')


def infer_mae_vit_cfg(state_dict: dict,
                      num_heads: int = DEFAULT_NUM_HEADS,
                      prefix: str = 'backbone.') -> dict:
    """The ``MAEViT`` arguments that the ``prefix`` keys describe.

    Embedding width from ``pos_embed``, image size from its length and the
    patch size (square grids), depth from the number of layers, MLP width
    from layer 0. The head count cannot be inferred (``qkv`` is (3C, C)
    whatever the split into heads), so it is given.

    Args:
        state_dict (dict): Converted tensors.
        num_heads (int): Heads of the attention layers. Defaults to 12.
        prefix (str): The encoder keys' prefix. Defaults to 'backbone.'.

    Returns:
        dict: Keyword arguments of ``MAEViT`` (the arch by name when it is
        one of ``MAEViT.arch_zoo``).

    Raises:
        ConversionError: A key the shapes come from is missing or has the
            wrong rank, the grid is not square, or ``num_heads`` does not
            divide the width.
    """
    sd = _strip(state_dict, prefix)
    _, num_tokens, embed_dims = _shape(sd, 'pos_embed', prefix, 3)
    _, in_channels, patch_size, _ = _shape(sd, 'patch_embed.projection.weight',
                                           prefix, 4)
    grid = math.isqrt(num_tokens - 1)
    if grid * grid != num_tokens - 1:
        raise ConversionError(
            f'{prefix}pos_embed has {num_tokens} tokens: not 1 + a square '
            'grid of patches')
    _check_heads(embed_dims, num_heads, f'{prefix[:-1]} ({embed_dims}-d)')
    ffn = sd.get('layers.0.ffn.layers.0.0.weight')
    arch = dict(
        embed_dims=embed_dims,
        num_layers=num_indexed(sd, r'layers\.(\d+)\.'),
        num_heads=num_heads,
        # a missing layer-0 MLP shows up in the strict load
        feedforward_channels=int(ffn.shape[0]) if ffn is not None else 4 *
        embed_dims)
    name = next((k for k, v in MAEViT.arch_zoo.items() if v == arch), None)
    cfg = dict(
        arch=name or arch, img_size=grid * patch_size, patch_size=patch_size)
    if in_channels != 3:
        cfg['patch_cfg'] = dict(in_channels=in_channels)
    return cfg


def infer_mae_decoder_cfg(state_dict: dict,
                          num_heads: int,
                          patch_size: int,
                          in_chans: int = 3,
                          prefix: str = 'neck.') -> dict:
    """The ``MAEPretrainDecoder`` arguments that the ``prefix`` keys describe.

    Widths from ``decoder_embed`` (encoder -> decoder), the number of patches
    from ``decoder_pos_embed``, depth from the number of blocks, the MLP
    ratio from block 0, the output width from ``decoder_pred``.

    Args:
        state_dict (dict): Converted tensors.
        num_heads (int): Heads of the decoder blocks (not in the shapes).
        patch_size (int): The encoder's patch size.
        in_chans (int): The encoder's input channels. Defaults to 3.
        prefix (str): The decoder keys' prefix. Defaults to 'neck.'.

    Returns:
        dict: Keyword arguments of ``MAEPretrainDecoder``.

    Raises:
        ConversionError: A key the shapes come from is missing or has the
            wrong rank, or ``num_heads`` does not divide the width.
    """
    sd = _strip(state_dict, prefix)
    dims, embed_dim = _shape(sd, 'decoder_embed.weight', prefix, 2)
    num_tokens = _shape(sd, 'decoder_pos_embed', prefix, 3)[1]
    out_dims = _shape(sd, 'decoder_pred.weight', prefix, 2)[0]
    _check_heads(dims, num_heads, f'{prefix[:-1]} ({dims}-d)')
    ffn = sd.get('decoder_blocks.0.ffn.layers.0.0.weight')
    hidden = int(ffn.shape[0]) if ffn is not None else 4 * dims
    mlp_ratio: Union[int, float] = hidden // dims if hidden % dims == 0 \
        else hidden / dims
    cfg = dict(
        num_patches=num_tokens - 1,
        patch_size=patch_size,
        in_chans=in_chans,
        embed_dim=embed_dim,
        decoder_embed_dim=dims,
        decoder_depth=num_indexed(sd, r'decoder_blocks\.(\d+)\.'),
        decoder_num_heads=num_heads,
        mlp_ratio=mlp_ratio)
    if out_dims != patch_size**2 * in_chans:  # not pixels: a feature target
        cfg['predict_feature_dim'] = out_dims
    return cfg


def _describe(cls: type, cfg: dict) -> str:
    """One line: ``MAEViT(arch='b', img_size=224, patch_size=16)``."""
    args = ', '.join(f'{k}={v!r}' for k, v in cfg.items())
    return f'{cls.__name__}({args})'


def _adapter_heads(state_dict: dict) -> Optional[Tuple[int, int]]:
    """``(student, teacher)`` heads from ``attn_adapter.weight``, if any."""
    w = state_dict.get('attn_adapter.weight')
    if w is None:
        return None
    if w.dim() != 4 or tuple(w.shape[2:]) != (1, 1):
        raise ConversionError(
            f'attn_adapter.weight has shape {tuple(w.shape)}, not that of a '
            '1x1 conv (H_teacher, H_student, 1, 1)')
    return int(w.shape[1]), int(w.shape[0])


def _heads(given: Optional[int], from_adapter: Optional[int], default: int,
           what: str) -> int:
    """The head count given, else the adapter's, else the default."""
    if from_adapter is None:
        return default if given is None else given
    if given is not None and given != from_adapter:
        raise ConversionError(
            f'{what}: {given} heads were given, but attn_adapter.weight maps '
            f'{from_adapter} heads')
    return from_adapter


def save_mae_checkpoint(state_dict: dict,
                        filename: str,
                        meta: dict,
                        source: str,
                        layout: str,
                        num_heads: Optional[int] = None,
                        decoder_num_heads: Optional[int] = None,
                        teacher_num_heads: Optional[int] = None,
                        force: bool = False) -> Dict[str, dict]:
    """Save converted tensors after a strict load into the models they fit.

    ``backbone.*`` is loaded strictly into the ``MAEViT`` its shapes describe
    (:func:`infer_mae_vit_cfg`), ``neck.*`` into the ``MAEPretrainDecoder``
    (:func:`infer_mae_decoder_cfg`; required for MAE-Lite, checked when
    present for official MAE), ``teacher.*`` into its ``MAEViT``; the head
    adapter must be (H_teacher, H_student, 1, 1). The file is written with
    :func:`~bcssl_mm.utils.state_dict_remap.save_checkpoint`, which moves it
    into place only after these loads (of the file itself) pass; the
    models' arguments go into ``meta``.

    Args:
        state_dict (dict): Converted tensors.
        filename (str): Output path.
        meta (dict): Plain Python values describing the conversion.
        source (str): The converted file, for messages.
        layout (str): ``'mae'`` or ``'maelite'``.
        num_heads (int, optional): Encoder heads. ``None``: the adapter's
            student heads, else 12 (ViT-B, MAE-Lite's ViT-Tiny).
        decoder_num_heads (int, optional): Decoder heads. ``None``: 16 for
            official MAE, 3 for MAE-Lite.
        teacher_num_heads (int, optional): Teacher heads. ``None``: the
            adapter's teacher heads, else 12 (MAE-Base).
        force (bool): Overwrite an existing ``filename``. Defaults to False.

    Returns:
        dict: The arguments of each model, by prefix (``backbone``,
        ``neck``, ``teacher``).

    Raises:
        ConversionError: The heads do not fit, or the tensors do not load
            strictly; the message lists the keys, and nothing is written.
    """
    adapter = _adapter_heads(state_dict)
    has = {
        part: any(k.startswith(part + '.') for k in state_dict)
        for part in ('neck', 'teacher')
    }
    if adapter is not None and not has['teacher']:
        raise ConversionError(
            f'{source}: an attention adapter without a teacher '
            '(no tch_model.* key)')
    cfg = infer_mae_vit_cfg(
        state_dict,
        _heads(num_heads, adapter and adapter[0], DEFAULT_NUM_HEADS,
               'encoder'))
    patch_size = cfg['patch_size']
    in_chans = cfg.get('patch_cfg', {}).get('in_channels', 3)
    parts: List[Tuple[str, type, dict]] = [('backbone', MAEViT, cfg)]
    if layout == 'maelite' and not has['neck']:
        raise ConversionError(
            f'{source}: an MAE-Lite checkpoint without its decoder (no '
            'module.model.{mask_token,decoder_*} key)')
    if has['neck']:
        heads = DEFAULT_DECODER_NUM_HEADS[layout] \
            if decoder_num_heads is None else decoder_num_heads
        parts.append(('neck', MAEPretrainDecoder,
                      infer_mae_decoder_cfg(state_dict, heads, patch_size,
                                            in_chans)))
    if has['teacher']:
        parts.append(('teacher', MAEViT,
                      infer_mae_vit_cfg(
                          state_dict,
                          _heads(teacher_num_heads, adapter and adapter[1],
                                 DEFAULT_TEACHER_NUM_HEADS, 'teacher'),
                          prefix='teacher.')))
    for part, cls, part_cfg in parts:
        print(f'{part}: {_describe(cls, part_cfg)}')
    if adapter is not None:
        print(f'attn_adapter: {adapter[0]} student heads -> {adapter[1]} '
              'teacher heads')

    def verify(tmp: str) -> None:
        converted = extract_state_dict(load_source(tmp))
        for part, cls, part_cfg in parts:
            model = cls(**part_cfg)
            try:
                load_state_dict_strict(
                    model, converted, 'converted checkpoint', prefix=part)
            except CheckpointMismatchError as e:
                raise ConversionError(
                    f'{source}: the converted checkpoint does not load '
                    f'strictly into {part} = {_describe(cls, part_cfg)}; '
                    f'nothing was written to {filename}:\n{e}') from None
        print('verified: loads strictly into ' +
              ', '.join(f'{part} ({cls.__name__})' for part, cls, _ in parts))

    meta = dict(meta, **{part: part_cfg for part, _, part_cfg in parts})
    save_checkpoint(state_dict, filename, meta, verify=verify, force=force)
    return {part: part_cfg for part, _, part_cfg in parts}
