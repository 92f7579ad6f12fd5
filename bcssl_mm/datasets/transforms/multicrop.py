"""DINO's multi-crop augmentation as an mmpretrain transform.

Paper: "Emerging Properties in Self-Supervised Vision Transformers"
(https://arxiv.org/abs/2104.14294), §3.1 and Appendix; official code:
``DataAugmentationDINO`` in ``main_dino.py`` (torchvision on PIL RGB images).

Every step is an upstream transform, checked against the official code on the
BGR uint8 arrays that mmcv's ``LoadImageFromFile`` produces:

- ``mmpretrain.RandomResizedCrop``: torchvision's sampling (area fraction
  ~ U(scale), log aspect ratio ~ U(log 3/4, log 4/3), 10 attempts, then a
  centre-crop fallback). ``backend='pillow'`` is needed: it resizes with PIL
  like torchvision does on PIL images (antialiased bicubic); the default cv2
  backend aliases when it shrinks.
- ``mmpretrain.RandomFlip`` (mmcv's): horizontal, p 0.5.
- ``mmengine.RandomApply`` (mmcv's) around ``mmpretrain.ColorJitter``: a new
  random order of the 4 operations and new factors on every call, as
  torchvision's. With ``backend='pillow'`` mmcv's ``adjust_brightness /
  contrast / color / hue`` reverse BGR to RGB before PIL's ``ImageEnhance`` or
  HSV conversion and back, so saturation and hue act on the right channels.
- ``mmpretrain.RandomGrayscale`` (mmcv's): its defaults (weights (1, 1, 1), a
  single output channel) are not DINO's; configured here with PIL's 'L' luma
  weights in BGR order (0.114, 0.587, 0.299) and 3 output channels.
  NOTE: it truncates where PIL rounds, so a grey level can be 1 lower than
  PIL's.
- ``mmpretrain.GaussianBlur`` with ``magnitude_range=(0.1, 2.0)`` and
  ``magnitude_std='inf'``: the radius is drawn on every call (unlike
  mmpretrain's ``projects/dino``, which draws it once at construction) and
  applied with PIL's ``ImageFilter.GaussianBlur``, channel by channel, so BGR
  order does not matter.
- ``mmpretrain.Solarize`` with ``thr=128``: ``mmcv.solarize`` inverts values
  >= 128, as ``PIL.ImageOps.solarize``.

Normalisation is left to the model's data preprocessor, which also turns BGR
into RGB::

    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],  # ImageNet (0.485, 0.456, 0.406) * 255
        std=[58.395, 57.12, 57.375],  # ImageNet (0.229, 0.224, 0.225) * 255
        to_rgb=True)

Random numbers come from ``numpy.random`` (crop, flip, jitter, blur,
solarize, RandomApply) and Python's ``random`` (grayscale); torch's generator
is not used. mmengine's ``set_random_seed`` seeds both, and its dataloader
``worker_init_fn`` re-seeds both in every worker.
"""
from typing import List, Sequence, Tuple

from mmpretrain.datasets.transforms import MultiView
from mmpretrain.registry import TRANSFORMS


def dino_view_pipeline(crop_size: int,
                       crop_scale: Tuple[float, float],
                       blur_prob: float,
                       solarize_prob: float = 0.,
                       blur_radius: Tuple[float, float] = (0.1, 2.0),
                       interpolation: str = 'bicubic',
                       backend: str = 'pillow') -> List[dict]:
    """Configs of the transforms that make one DINO view.

    Types carry their registry scope, so the configs build in any default
    scope (mmcv's ``RandomApply`` lives in the root registry, 'mmengine').

    Args:
        crop_size (int): Side of the square output, in pixels.
        crop_scale (tuple[float, float]): Range of the crop's area as a
            fraction of the image's.
        blur_prob (float): Probability of the Gaussian blur.
        solarize_prob (float): Probability of solarization; 0 leaves the step
            out. Defaults to 0.
        blur_radius (tuple[float, float]): The blur radius is drawn from
            U(min, max) on every call. Defaults to (0.1, 2.0).
        interpolation (str): Resize interpolation. Defaults to 'bicubic'.
        backend (str): Resize backend, 'pillow' (as torchvision on PIL images)
            or 'cv2'. Defaults to 'pillow'.

    Returns:
        list[dict]: Transform configs, in DINO's order.
    """
    pipeline = [
        dict(
            type='mmpretrain.RandomResizedCrop',
            scale=crop_size,
            crop_ratio_range=tuple(crop_scale),
            interpolation=interpolation,
            backend=backend),
        dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='mmengine.RandomApply',
            transforms=[
                dict(
                    type='mmpretrain.ColorJitter',
                    brightness=0.4,
                    contrast=0.4,
                    saturation=0.2,
                    hue=0.1,
                    backend='pillow')
            ],
            prob=0.8),
        dict(
            type='mmpretrain.RandomGrayscale',
            prob=0.2,
            keep_channels=True,
            # PIL's ITU-R 601-2 luma, in BGR order
            channel_weights=(0.114, 0.587, 0.299)),
        dict(
            type='mmpretrain.GaussianBlur',
            # radius = level / total_level * (max - min) + min with
            # level ~ U(0, magnitude_level) ('inf'): radius ~ U(min, max)
            magnitude_range=tuple(blur_radius),
            magnitude_std='inf',
            magnitude_level=10,
            total_level=10,
            prob=blur_prob),
    ]
    if solarize_prob > 0:
        pipeline.append(
            dict(type='mmpretrain.Solarize', thr=128, prob=solarize_prob))
    return pipeline


@TRANSFORMS.register_module()
class DINOMultiCrop(MultiView):
    """DINO's multi-crop views: 2 global crops and N local crops.

    ``results['img']`` becomes a list of ``2 + num_local_crops`` BGR uint8
    arrays ordered ``[global 1, global 2, local 1, ..., local N]``; each
    view gets its own crop, flip, jitter, grayscale, blur (p
    ``global_blur_probs[0]`` on global 1, ``global_blur_probs[1]`` on
    global 2, ``local_blur_prob`` on local crops) and, on global 2 only,
    solarization. See :func:`dino_view_pipeline` and this module's
    docstring for the upstream transforms used and the normalisation.
    Sub-pipelines are built here; every random number is drawn when the
    transform is called.
    Paper: https://arxiv.org/abs/2104.14294.

    Args:
        global_crops_scale (tuple[float, float]): Area range of global crops.
            Defaults to (0.4, 1.0).
        local_crops_scale (tuple[float, float]): Area range of local crops.
            Defaults to (0.05, 0.4).
        num_local_crops (int): Number of local crops. Defaults to 8.
        global_crop_size (int): Side of global crops. Defaults to 224.
        local_crop_size (int): Side of local crops. Defaults to 96.
        global_blur_probs (tuple[float, float]): Blur probabilities of global
            crops 1 and 2. Defaults to (1.0, 0.1).
        local_blur_prob (float): Blur probability of local crops.
            Defaults to 0.5.
        solarize_prob (float): Solarization probability of global crop 2.
            Defaults to 0.2.
        interpolation (str): Resize interpolation. Defaults to 'bicubic'.
        backend (str): Resize backend. Defaults to 'pillow'.
    """

    def __init__(self,
                 global_crops_scale: Tuple[float, float] = (0.4, 1.0),
                 local_crops_scale: Tuple[float, float] = (0.05, 0.4),
                 num_local_crops: int = 8,
                 global_crop_size: int = 224,
                 local_crop_size: int = 96,
                 global_blur_probs: Sequence[float] = (1.0, 0.1),
                 local_blur_prob: float = 0.5,
                 solarize_prob: float = 0.2,
                 interpolation: str = 'bicubic',
                 backend: str = 'pillow') -> None:
        assert len(global_blur_probs) == 2, global_blur_probs
        assert num_local_crops >= 0, num_local_crops
        common = dict(interpolation=interpolation, backend=backend)
        transforms = [
            dino_view_pipeline(
                global_crop_size,
                global_crops_scale,
                blur_prob=global_blur_probs[0],
                **common),
            dino_view_pipeline(
                global_crop_size,
                global_crops_scale,
                blur_prob=global_blur_probs[1],
                solarize_prob=solarize_prob,
                **common),
        ]
        num_views = [1, 1]
        if num_local_crops > 0:
            transforms.append(
                dino_view_pipeline(
                    local_crop_size,
                    local_crops_scale,
                    blur_prob=local_blur_prob,
                    **common))
            num_views.append(num_local_crops)
        super().__init__(transforms=transforms, num_views=num_views)
        self.num_local_crops = num_local_crops
