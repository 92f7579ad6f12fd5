import json

import cv2
import numpy as np
import pytest
import torch

from conftest import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/visualize_erf.py')


def test_area_ratio_definition(tool):
    # all the mass on the centre pixel: RepLKNet's smallest square is 3x3
    delta = np.zeros((11, 11))
    delta[5, 5] = 1
    assert tool.high_contribution_area(delta, 0.99) == (3, 9 / 121)
    # uniform map: smallest odd square with side^2 / 121 > t
    uniform = np.ones((11, 11))
    assert tool.high_contribution_area(uniform, 0.3) == (7, 49 / 121)
    assert tool.high_contribution_area(uniform, 0.5) == (9, 81 / 121)
    assert tool.high_contribution_area(uniform, 0.99) == (11, 1.0)
    # centre is (h // 2, w // 2); squares leaving the map are clipped
    even = np.ones((4, 4))
    assert tool.high_contribution_area(even, 0.5) == (3, 9 / 16)
    assert tool.high_contribution_area(even, 0.99) == (5, 1.0)


@pytest.mark.parametrize('kernel_size', [3, 9])
def test_erf_support_is_the_theoretical_receptive_field(tool, kernel_size):
    # one stage: 4x4 patchify stem, one block with a kxk depthwise conv and
    # per-pixel ops, so the centre feature pixel sees exactly 4k x 4k pixels
    spec = tool.zoo.ModelSpec('one-stage', 'bcssl',
                              dict(depths=[1], channels=[16]), kernel_size)
    model = tool.zoo.load_model(spec, 64, 10)
    layer, to_map = tool.feature_layer(spec, model)
    grad_map, = tool.contribution_maps(
        model, layer, to_map, torch.randn(1, 3, 64, 64), grad_agg='abs')
    rows, cols = np.nonzero(grad_map)
    centre = 64 // 4 // 2  # feature pixel 8
    first = 4 * (centre - kernel_size // 2)
    last = 4 * (centre + kernel_size // 2) + 3
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (first, last,
                                                                first, last)


def test_erf_main_writes_png_and_json(tool, tmp_path):
    # 96 px: the 3x3 last-stage map has a centre pixel
    out_dir = tmp_path / 'erf'
    args = tool.get_args_parser().parse_args([
        '--random=2', '--models', 'bcssl_convnext_atto_k3',
        'bcssl_convnext_atto_k9', '--img-size=96', '--batch-size=2',
        f'--out-dir={out_dir}'
    ])
    results = tool.main(args)
    assert list(results) == [
        'bcssl_convnext_atto_k3', 'bcssl_convnext_atto_k9'
    ]
    png = cv2.imread(str(out_dir / 'erf.png'))
    assert png.shape[:2] == tool.figure_size_px(2) == (350, 600)
    assert json.loads((out_dir / 'erf.json').read_text()) == results
    for name, res in results.items():
        assert np.load(out_dir / f'{name}.npy').shape == (96, 96)
        assert res['num_images'] == 2
        ratios = [res['area_ratio'][t] for t in ('20', '30', '50', '99')]
        assert all(0 < r <= 1 for r in ratios)
        assert ratios == sorted(ratios) and ratios[0] < ratios[-1]
        # a stride-32 backbone sees at least the 32x32 patch of the pixel
        assert res['side_length']['99'] >= 32


def test_random_and_img_dir_are_exclusive(tool):
    with pytest.raises(SystemExit):
        tool.get_args_parser().parse_args(['--random', '2', '--img-dir', '.'])
