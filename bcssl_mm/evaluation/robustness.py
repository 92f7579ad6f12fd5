"""Robustness scores of ImageNet classifiers (paper §4.3, Table 5).

- ImageNet-C (Hendrycks & Dietterich, ICLR 2019,
  https://arxiv.org/abs/1903.12261): the corruption error of corruption c
  is ``CE_c = sum_s E_{s,c} / sum_s R_{s,c}``, the model's top-1 errors
  over severities s = 1..5 divided by the same sum for a reference model
  (AlexNet in the paper), and ``mCE`` is the mean of ``CE_c`` over the 15
  corruptions, x100 in tables (:func:`corruption_metrics`).
- ImageNet-A (https://arxiv.org/abs/1907.07174) and ImageNet-R
  (https://arxiv.org/abs/2006.16241) hold 200 of ImageNet-1k's classes;
  their official evaluations keep the 200 matching logits of a 1000-way
  head, ``net(x)[:, mask]``, so a prediction is always one of those 200
  classes (:func:`imagenet_subset`, :func:`masked_logits`). The index and
  wnid lists are read at run time from the installed timm package
  (``timm/data/_info/imagenet_{a,r}_{indices,synsets}.txt``).
- ImageNet-Sketch (https://arxiv.org/abs/1905.13549) uses all 1000
  classes, indexed like ImageNet-1k (:func:`imagenet_1k_synsets`).

Errors here are fractions in [0, 1]; only ``mCE`` and ``mean_error`` are
x100, as in :mod:`bcssl_mm.evaluation.results`.
"""
import importlib.resources
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch

# ImageNet-C's 15 test corruptions, in the order of its tables (noise, blur,
# weather, digital); the 4 validation corruptions are not scored
IMAGENET_C_CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise',
                          'defocus_blur', 'glass_blur', 'motion_blur',
                          'zoom_blur', 'snow', 'frost', 'fog', 'brightness',
                          'contrast', 'elastic_transform', 'pixelate',
                          'jpeg_compression')
SEVERITIES = (1, 2, 3, 4, 5)

# AlexNet's top-1 error on ImageNet-C, averaged over severities 1-5: the
# table of google-research/augmix imagenet.py ("taken from
# hendrycks/robustness"), quoted in docs/recipes.md §7. Only these means are
# published, so they normalise full 5-severity runs only.
ALEXNET_ERRORS: Dict[str, float] = {
    'gaussian_noise': 0.886428,
    'shot_noise': 0.894468,
    'impulse_noise': 0.922640,
    'defocus_blur': 0.819880,
    'glass_blur': 0.826268,
    'motion_blur': 0.785948,
    'zoom_blur': 0.798360,
    'snow': 0.866816,
    'frost': 0.826572,
    'fog': 0.819324,
    'brightness': 0.564592,
    'contrast': 0.853204,
    'elastic_transform': 0.646056,
    'pixelate': 0.717840,
    'jpeg_compression': 0.606500,
}

# corruption -> severity -> top-1 error (a fraction)
ErrorTable = Mapping[str, Mapping[int, float]]
# per corruption: a table of severities, or one mean over severities 1-5
Reference = Mapping[str, Union[float, Mapping[int, float]]]

IMAGENET_SUBSETS = ('imagenet-a', 'imagenet-r')


def corruption_error(errors: Mapping[int, float],
                     reference: Union[float, Mapping[int, float]],
                     corruption: str = '') -> float:
    """``CE = sum_s errors[s] / sum_s reference[s]`` (a fraction).

    Args:
        errors (Mapping[int, float]): The model's top-1 error per severity.
        reference (float | Mapping[int, float]): The reference model's
            errors per severity (every severity of ``errors`` needed), or
            its mean error over severities 1-5 (then ``errors`` must have
            exactly severities 1-5).
        corruption (str): Named in error messages.

    Returns:
        float: The corruption error.
    """
    if not errors:
        raise ValueError(f'{corruption}: no severities to score')
    severities = sorted(errors)
    if isinstance(reference, Mapping):
        missing = [s for s in severities if s not in reference]
        if missing:
            raise ValueError(
                f'{corruption}: the reference has no error for severities '
                f'{missing} (it has {sorted(reference)})')
        denominator = sum(reference[s] for s in severities)
    else:
        if tuple(severities) != SEVERITIES:
            raise ValueError(
                f'{corruption}: the reference gives only a mean over '
                f'severities 1-5, the model was run on {severities}; '
                'evaluate every severity or pass a reference with '
                'per-severity errors')
        denominator = len(SEVERITIES) * float(reference)
    if not denominator > 0:
        raise ValueError(f'{corruption}: the reference errors sum to '
                         f'{denominator}; CE is undefined')
    return sum(errors[s] for s in severities) / denominator


def corruption_metrics(errors: ErrorTable,
                       reference: Optional[Reference] = ALEXNET_ERRORS
                       ) -> Dict[str, float]:
    """The metrics of a corruption result (keys of ``results.py``).

    ``error/<c>/<s>`` (fractions) and ``mean_error`` (the mean over every
    corruption and severity, x100) always; with a reference, also
    ``CE/<c>`` (fractions) and ``mCE``, the mean of ``CE/<c>`` over the
    corruptions of ``errors``, x100.

    Args:
        errors (ErrorTable): corruption -> severity -> top-1 error.
        reference (Reference, optional): The normaliser of CE; AlexNet's
            ImageNet-C errors by default, None for no CE.

    Returns:
        dict[str, float]: The metrics.
    """
    metrics: Dict[str, float] = {}
    values = []
    for corruption, table in errors.items():
        for severity, error in sorted(table.items()):
            if not 0. <= error <= 1.:
                raise ValueError(f'{corruption} severity {severity}: error '
                                 f'{error} is not a fraction in [0, 1]')
            metrics[f'error/{corruption}/{severity}'] = float(error)
            values.append(error)
    if not values:
        raise ValueError('no corruption errors to score')
    metrics['mean_error'] = 100. * sum(values) / len(values)
    if reference is not None:
        ces = []
        for corruption, table in errors.items():
            if corruption not in reference:
                raise ValueError(
                    f'the reference has no errors for {corruption!r} '
                    f'(it has {sorted(reference)})')
            ce = corruption_error(table, reference[corruption], corruption)
            metrics[f'CE/{corruption}'] = ce
            ces.append(ce)
        metrics['mCE'] = 100. * sum(ces) / len(ces)
    return metrics


def errors_from_metrics(metrics: Mapping[str, float],
                        source: str = 'metrics'
                        ) -> Dict[str, Dict[int, float]]:
    """Read back the error table of a corruption result's metrics.

    Used to normalise by another model's run (``--reference``).

    Args:
        metrics (Mapping[str, float]): A result's ``metrics``.
        source (str): Named in error messages (the result file).

    Returns:
        dict: corruption -> severity -> top-1 error.
    """
    table: Dict[str, Dict[int, float]] = {}
    for key, value in metrics.items():
        parts = key.split('/')
        if parts[0] != 'error':
            continue
        if len(parts) != 3 or not parts[2].isdigit():
            raise ValueError(f'{source}: malformed error key {key!r}, '
                             'expected error/<corruption>/<severity>')
        table.setdefault(parts[1], {})[int(parts[2])] = float(value)
    if not table:
        raise ValueError(f'{source}: no error/<corruption>/<severity> '
                         'metrics (not a corruption result?)')
    return table


def _timm_info_lines(filename: str) -> List[str]:
    path = importlib.resources.files('timm.data') / '_info' / filename
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(
            f'{path}: not in the installed timm; the ImageNet class lists '
            'come from timm/data/_info/ (timm >= 0.9)') from None
    return text.split()


def imagenet_1k_synsets() -> List[str]:
    """ImageNet-1k's 1000 wnids in class-index order (timm's list)."""
    return _timm_info_lines('imagenet_synsets.txt')


def imagenet_subset(name: str) -> Tuple[List[int], List[str]]:
    """The 200 classes of ImageNet-A or -R, as timm ships them.

    Args:
        name (str): ``'imagenet-a'`` or ``'imagenet-r'``.

    Returns:
        tuple[list[int], list[str]]: The ImageNet-1k indices of the 200
        classes (the logit mask, ascending) and their wnids, in the same
        order.
    """
    if name not in IMAGENET_SUBSETS:
        raise ValueError(f'unknown ImageNet subset {name!r}; one of '
                         f'{IMAGENET_SUBSETS}')
    stem = name.replace('-', '_')
    indices = [int(i) for i in _timm_info_lines(f'{stem}_indices.txt')]
    synsets = _timm_info_lines(f'{stem}_synsets.txt')
    all_synsets = imagenet_1k_synsets()
    if len(indices) != len(synsets) or any(
            all_synsets[i] != wnid for i, wnid in zip(indices, synsets)):
        raise RuntimeError(f'timm\'s {stem}_indices.txt and '
                           f'{stem}_synsets.txt disagree with '
                           'imagenet_synsets.txt')
    return indices, synsets


def check_class_folders(folders: Iterable[str],
                        synsets: List[str],
                        root: str,
                        name: str = 'dataset') -> List[int]:
    """Map a dataset's class folders (wnids) to positions in ``synsets``.

    Args:
        folders (Iterable[str]): The dataset's class folder names.
        synsets (list[str]): The wnids the classifier scores, in order.
        root (str): The dataset folder, named in error messages.
        name (str): The dataset, named in error messages.

    Returns:
        list[int]: For each folder, its index in ``synsets``.

    Raises:
        ValueError: A folder is not one of ``synsets``.
    """
    folders = list(folders)
    position = {wnid: i for i, wnid in enumerate(synsets)}
    unknown = [f for f in folders if f not in position]
    if unknown:
        shown = ', '.join(unknown[:5]) + (', ...' if len(unknown) > 5 else '')
        raise ValueError(
            f'{root}: {len(unknown)} class folder(s) of {name} are not among '
            f'its {len(synsets)} wnids: {shown}')
    return [position[f] for f in folders]


def masked_logits(logits: torch.Tensor, indices: List[int]) -> torch.Tensor:
    """Keep the logits of ``indices``: ``logits[:, indices]``.

    Args:
        logits (torch.Tensor): ``(N, 1000)`` scores of a 1000-way head.
        indices (list[int]): The kept classes (ImageNet-1k indices).

    Returns:
        torch.Tensor: ``(N, len(indices))``; column j scores class
        ``indices[j]``, so an argmax is a position in ``indices``.
    """
    if logits.dim() != 2 or max(indices) >= logits.shape[1]:
        raise ValueError(f'logits of shape {tuple(logits.shape)} cannot be '
                         f'masked to classes up to {max(indices)}')
    return logits[:, indices]


def topk_correct(scores: torch.Tensor, targets: torch.Tensor,
                 k: int) -> torch.Tensor:
    """Whether each target is among the ``k`` highest scores of its row.

    Args:
        scores (torch.Tensor): ``(N, C)`` scores.
        targets (torch.Tensor): ``(N,)`` class indices into ``C``.
        k (int): How many top classes count; at most ``C``.

    Returns:
        torch.Tensor: ``(N,)`` bool.
    """
    top = scores.topk(k, dim=1).indices  # (N, k)
    return (top == targets[:, None]).any(dim=1)
