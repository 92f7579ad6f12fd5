import copy
import random
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from mmcv.transforms import RandomApply, RandomFlip, RandomGrayscale
from mmpretrain.datasets.transforms import (ColorJitter, GaussianBlur,
                                            RandomResizedCrop, Solarize)
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageFilter, ImageOps
from torchvision.transforms import InterpolationMode

from bcssl_mm.datasets import DINOMultiCrop

SMALL = dict(global_crop_size=32, local_crop_size=16, num_local_crops=3)


def random_image(seed: int = 0, h: int = 48, w: int = 64) -> np.ndarray:
    """A random BGR uint8 image, as mmcv's LoadImageFromFile returns."""
    return np.random.default_rng(seed).integers(
        0, 256, (h, w, 3), dtype=np.uint8)


def find(pipeline, cls) -> list:
    """The transforms of type ``cls`` in a built Compose."""
    return [t for t in pipeline.transforms if isinstance(t, cls)]


def only(pipeline, cls):
    found = find(pipeline, cls)
    assert len(found) == 1, (cls, pipeline)
    return copy.deepcopy(found[0])


def test_registered_number_order_and_sizes():
    t = TRANSFORMS.build(dict(type='DINOMultiCrop', **SMALL))
    assert isinstance(t, DINOMultiCrop)
    img = random_image()
    out = t(dict(img=img.copy(), img_shape=img.shape[:2]))['img']
    assert [v.shape for v in out] == [(32, 32, 3)] * 2 + [(16, 16, 3)] * 3
    assert all(v.dtype == np.uint8 for v in out)

    # the defaults are DINO's: 2 x 224 px + 8 x 96 px
    out = DINOMultiCrop()(dict(img=img.copy()))['img']
    assert [v.shape[:2] for v in out] == [(224, 224)] * 2 + [(96, 96)] * 8

    out = DINOMultiCrop(
        num_local_crops=0, global_crop_size=24)(dict(img=img.copy()))['img']
    assert [v.shape for v in out] == [(24, 24, 3)] * 2


def test_recipe_of_each_view():
    t = DINOMultiCrop()
    assert t.num_views == [1, 1, 8]
    g1, g2, local = t.pipelines
    for pipe, size, scale in [(g1, 224, (0.4, 1.0)), (g2, 224, (0.4, 1.0)),
                              (local, 96, (0.05, 0.4))]:
        crop = only(pipe, RandomResizedCrop)
        assert crop.scale == (size, size)
        assert crop.crop_ratio_range == scale
        assert crop.aspect_ratio_range == (3. / 4., 4. / 3.)
        assert (crop.interpolation, crop.backend) == ('bicubic', 'pillow')
        flip = only(pipe, RandomFlip)
        assert (flip.prob, flip.direction) == (0.5, 'horizontal')
        apply = only(pipe, RandomApply)
        assert apply.prob == 0.8
        jitter, = apply.transforms.transforms
        assert isinstance(jitter, ColorJitter)
        assert jitter.brightness == (0.6, 1.4)
        assert jitter.contrast == (0.6, 1.4)
        assert jitter.saturation == (0.8, 1.2)
        assert jitter.hue == (-0.1, 0.1)
        gray = only(pipe, RandomGrayscale)
        assert gray.prob == 0.2 and gray.keep_channels
        # order: crop, flip, jitter, grayscale, blur[, solarize]
        types = [type(x) for x in pipe.transforms][:5]
        assert types == [
            RandomResizedCrop, RandomFlip, RandomApply, RandomGrayscale,
            GaussianBlur
        ]
    blur_probs = [only(p, GaussianBlur).prob for p in t.pipelines]
    assert blur_probs == [1.0, 0.1, 0.5]
    # solarization on global crop 2 only
    assert [len(find(p, Solarize)) for p in t.pipelines] == [0, 1, 0]
    sol = only(g2, Solarize)
    assert (sol.thr, sol.prob) == (128, 0.2)


def test_randomness_per_call_and_seeding():
    t = DINOMultiCrop(**SMALL)
    img = random_image()

    def run():
        return t(dict(img=img.copy()))['img']

    a, b = run(), run()
    for va, vb in zip(a, b):
        assert not np.array_equal(va, vb)

    # numpy's and Python's generators drive every draw; torch's none
    np.random.seed(3)
    random.seed(3)
    torch.manual_seed(1)
    c = run()
    np.random.seed(3)
    random.seed(3)
    torch.manual_seed(2)
    d = run()
    for vc, vd in zip(c, d):
        assert np.array_equal(vc, vd)


def test_blur_and_solarize_probabilities():
    t = DINOMultiCrop(global_crop_size=8, local_crop_size=8, num_local_crops=2)
    blurs = [only(p, GaussianBlur) for p in t.pipelines]
    solarize = find(t.pipelines[1], Solarize)[0]
    counts = dict(blur=[0, 0, 0], solarize=0)

    def count_blur(i, blur):
        draw = blur.random_magnitude

        def wrapped():  # drawn only when the blur is applied
            counts['blur'][i] += 1
            return draw()

        return wrapped

    draw_disable = solarize.random_disable

    def count_solarize():
        disabled = draw_disable()
        counts['solarize'] += not disabled
        return disabled

    for i, p in enumerate(t.pipelines):
        blur = find(p, GaussianBlur)[0]
        blur.random_magnitude = count_blur(i, blur)
    solarize.random_disable = count_solarize

    np.random.seed(0)
    random.seed(0)
    n = 300
    img = random_image(h=12, w=12)
    for _ in range(n):
        t(dict(img=img.copy()))
    assert blurs[0].prob == 1.0 and counts['blur'][0] == n
    # 0.1 * 300 = 30 (sd 5.2); 0.5 * 600 = 300 (sd 12); 0.2 * 300 = 60 (sd 7)
    assert 12 <= counts['blur'][1] <= 50
    assert 250 <= counts['blur'][2] <= 350
    assert 35 <= counts['solarize'] <= 85


def test_blur_radius_drawn_per_call():
    blur = only(DINOMultiCrop(**SMALL).pipelines[0], GaussianBlur)
    assert blur.prob == 1.0
    img = random_image()
    with mock.patch.object(
            ImageFilter, 'GaussianBlur',
            wraps=ImageFilter.GaussianBlur) as pil_blur:
        outs = [blur(dict(img=img.copy()))['img'] for _ in range(200)]
    radii = [c.kwargs['radius'] for c in pil_blur.call_args_list]
    assert len(radii) == 200 and len(set(radii)) == 200
    assert 0.1 <= min(radii) < 0.3 and 1.8 < max(radii) <= 2.0
    assert not np.array_equal(outs[0], outs[1])
    # PIL's blur is channel-wise: BGR in, the RGB result reversed out
    rgb = Image.fromarray(img[..., ::-1].copy())
    ref = np.asarray(rgb.filter(ImageFilter.GaussianBlur(radius=radii[0])))
    assert np.array_equal(outs[0], ref[..., ::-1])


def test_grayscale_uses_rgb_luma_on_bgr():
    gray = only(DINOMultiCrop(**SMALL).pipelines[0], RandomGrayscale)
    gray.prob = 1.0
    red_bgr = np.zeros((4, 4, 3), np.uint8)
    red_bgr[..., 2] = 255
    out = gray(dict(img=red_bgr))['img']
    assert out.shape == (4, 4, 3)
    assert (out == 76).all()  # 0.299 * 255, not 0.114 * 255 = 29
    blue_bgr = red_bgr[..., ::-1].copy()
    assert (gray(dict(img=blue_bgr))['img'] == 29).all()

    img = random_image()
    out = gray(dict(img=img.copy()))['img'].astype(int)
    ref = np.asarray(Image.fromarray(img[..., ::-1].copy()).convert('L'))
    diff = ref.astype(int) - out[..., 0]
    # NOTE: mmcv truncates where PIL rounds
    assert diff.min() >= 0 and diff.max() <= 1
    assert (out[..., 0] == out[..., 1]).all()
    assert (out[..., 0] == out[..., 2]).all()


@pytest.mark.parametrize('order,factors', [
    ([3, 2, 1, 0], (1.3, 0.7, 1.2, 0.08)),
    ([0, 1, 2, 3], (0.6, 1.4, 0.8, -0.1)),
])
def test_color_jitter_on_bgr_matches_torchvision_on_rgb(order, factors):
    apply = only(DINOMultiCrop(**SMALL).pipelines[0], RandomApply)
    jitter = apply.transforms.transforms[0]
    img = random_image()
    with mock.patch.object(
            jitter, '_rand_params', return_value=(np.array(order), *factors)):
        out = jitter(dict(img=img.copy()))['img']

    ref = Image.fromarray(img[..., ::-1].copy())
    ops = [
        TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation,
        TF.adjust_hue
    ]
    for i in order:
        ref = ops[i](ref, factors[i])
    assert np.array_equal(out[..., ::-1], np.asarray(ref))


def test_crop_and_solarize_match_pil():
    t = DINOMultiCrop(**SMALL)
    crop = only(t.pipelines[2], RandomResizedCrop)
    img = random_image()
    with mock.patch.object(
            crop, 'rand_crop_params', return_value=(5, 7, 30, 41)):
        out = crop(dict(img=img.copy()))['img']
    ref = TF.resized_crop(
        Image.fromarray(img),
        5,
        7,
        30,
        41, [16, 16],
        interpolation=InterpolationMode.BICUBIC)
    assert np.array_equal(out, np.asarray(ref))

    sol = only(t.pipelines[1], Solarize)
    sol.prob = 1.0
    ramp = np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 2, 3))
    out = sol(dict(img=ramp.copy()))['img']
    ref = np.asarray(ImageOps.solarize(Image.fromarray(ramp), threshold=128))
    assert np.array_equal(out, ref)
    assert out[127, 0, 0] == 127 and out[128, 0, 0] == 127
