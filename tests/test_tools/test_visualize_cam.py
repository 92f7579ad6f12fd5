import re

import cv2
import numpy as np
import pytest
import torch

from bcssl_mm.analysis import parse_model_name
from conftest import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/visualize_cam.py')


@pytest.fixture
def img_dir(tmp_path):
    """Two 80x60 images (a red square, a green disc) and a non-image file."""
    folder = tmp_path / 'imgs'
    folder.mkdir()
    square = np.zeros((60, 80, 3), np.uint8)
    square[10:40, 20:50] = (0, 0, 255)
    disc = np.full((60, 80, 3), 40, np.uint8)
    cv2.circle(disc, (55, 35), 15, (0, 255, 0), -1)
    cv2.imwrite(str(folder / 'a.png'), square)
    cv2.imwrite(str(folder / 'b.jpg'), disc)
    (folder / 'notes.txt').write_text('not an image')
    return folder


def test_cam_targets_of_the_families_outside_the_grid_test(tool):
    for name in ('resnet50', 'swin_tiny_patch4_window7_224'):
        spec = parse_model_name(name)
        model = tool.load_model(spec, 64, 10)
        layer, _ = tool.cam_target(spec, model)
        assert any(m is layer for m in model.backbone.modules()), name
    args = tool.get_args_parser().parse_args(
        ['--img-dir=.', '--models', 'resnet50', 'timm::resnet18'])
    with pytest.raises(ValueError, match=r"\['timm::resnet18'\].*mmpretrain"):
        tool.main(args)


def test_tokens_to_map_drops_cls_token_row_major(tool):
    fmap = torch.randn(2, 5, 3, 4)  # (N, C, H, W)
    tokens = fmap.flatten(2).transpose(1, 2)  # (N, H * W, C), row-major
    with_cls = torch.cat([torch.randn(2, 1, 5), tokens], dim=1)
    assert torch.equal(tool.tokens_to_map(with_cls, 1, hw_shape=(3, 4)), fmap)
    square = torch.randn(2, 5, 4, 4)
    assert torch.equal(
        tool.tokens_to_map(square.flatten(2).transpose(1, 2)), square)


def test_cam_grid_size_and_rows_differ(tool, img_dir, tmp_path):
    size = 64
    out = tmp_path / 'cam' / 'grid.png'
    args = tool.get_args_parser().parse_args([
        f'--img-dir={img_dir}', '--models', 'bcssl_convnext_atto_k3',
        'vit_small_patch16_224', '--method=gradcam', f'--img-size={size}',
        f'--out={out}'
    ])
    grid = tool.main(args)
    # rows = 2 models x 1 method, columns = 2 images of size x size
    assert grid.shape == (2 * size, tool.LABEL_MARGIN + 2 * size, 3)
    assert np.array_equal(cv2.imread(str(out)), grid)
    cells = grid[:, tool.LABEL_MARGIN:]
    bcssl, vit = cells[:size], cells[size:]
    assert not np.array_equal(bcssl, vit)
    # each cell is an overlay, not the bare image
    bare = cv2.resize(cv2.imread(str(img_dir / 'a.png')), (size, size))
    assert not np.array_equal(bcssl[:, :size], bare)


def test_checkpoint_is_loaded(tool, tmp_path):
    spec = parse_model_name('bcssl_convnext_atto_k3')
    trained = tool.load_model(spec, 64, 10, seed=1)
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(state_dict=trained.state_dict()), path)
    loaded = tool.load_model(spec, 64, 10, checkpoint=str(path), seed=0)
    fresh = tool.load_model(spec, 64, 10, seed=0)
    key = 'backbone.stages.3.0.depthwise_conv.weight'
    assert torch.equal(loaded.state_dict()[key], trained.state_dict()[key])
    assert not torch.equal(fresh.state_dict()[key], trained.state_dict()[key])
    with pytest.raises(ValueError, match='not one of --models'):
        tool.parse_checkpoints(['resnet50=x.pth'], ['bcssl_convnext_atto_k3'])


def test_empty_folder_error_names_it(tool, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'readme.txt').write_text('no images here')
    args = tool.get_args_parser().parse_args(
        [f'--img-dir={empty}', f'--out={tmp_path / "g.png"}'])
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))):
        tool.main(args)
