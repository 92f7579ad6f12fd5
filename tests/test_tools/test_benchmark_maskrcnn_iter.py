import json

import numpy as np
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from conftest import load_tool

# smaller RoI heads for both models, to keep the test short
SMALL_HEADS = [
    '--cfg-options', 'model.train_cfg.rcnn.sampler.num=32',
    'model.train_cfg.rpn_proposal.max_per_img=64'
]


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/benchmark_maskrcnn_iter.py')


def test_benchmark_builds_the_right_models_and_times_them(
        tool, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    args = tool.get_args_parser().parse_args([
        '--batch-size', '1', '--img-size', '128', '--num-objects', '2',
        '--warmup', '1', '--repeats', '1', '--json',
        str(out)
    ] + SMALL_HEADS)
    results = tool.main(args)
    assert list(results) == ['bcssl_convnext_tiny_k9', 'convnext_tiny']
    for r in results.values():
        assert r['s_per_iter'] > 0 and r['img_per_s'] > 0
        assert r['peak_mem_mib'] > 0
        assert len(r['losses']) == 2 and all(np.isfinite(r['losses']))
        assert r['params_m'] > 40  # T backbone + FPN + Mask R-CNN heads
    bcssl, convnext = (
        results[m]['backbone']
        for m in ('bcssl_convnext_tiny_k9', 'convnext_tiny'))
    # BC-SSL-T: a BN after each of the 3 + 3 + 9 + 3 depthwise 9x9 convs
    assert bcssl == dict(
        type='BCSSLConvNeXt', dw_kernels=[9], num_dw_convs=18, num_bn=18)
    assert convnext == dict(
        type='ConvNeXt', dw_kernels=[7], num_dw_convs=18, num_bn=0)
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split('|')[0].strip(): line for line in lines if '|' in line}
    assert {'bcssl_convnext_tiny_k9', 'convnext_tiny'} <= set(rows)
    ratio = results['bcssl_convnext_tiny_k9']['s_per_iter'] / \
        results['convnext_tiny']['s_per_iter']
    assert rows['bcssl_convnext_tiny_k9'].split('|')[7].strip() == \
        f'{ratio:.2f}'
    assert rows['convnext_tiny'].split('|')[7].strip() == '1.00'
    assert set(json.loads(out.read_text())['results']) == set(results)


def test_synthetic_masks_are_ellipses_inside_their_boxes(tool):
    batch = tool.synthetic_batch(2, 96, 4, 80, seed=1)
    assert [tuple(x.shape) for x in batch['inputs']] == [(3, 96, 96)] * 2
    for sample in batch['data_samples']:
        gt = sample.gt_instances
        boxes = gt.bboxes.tensor.numpy()
        masks = gt.masks.masks
        assert masks.shape == (4, 96, 96)
        assert ((gt.labels >= 0) & (gt.labels < 80)).all()
        for box, mask in zip(boxes, masks):
            ys, xs = np.nonzero(mask)
            assert xs.min() >= np.floor(box[0]) and xs.max() < box[2]
            assert ys.min() >= np.floor(box[1]) and ys.max() < box[3]
            area = (box[2] - box[0]) * (box[3] - box[1])
            assert mask.sum() == pytest.approx(np.pi / 4 * area, rel=0.15)
    # same seed, same batch: both models see the same data
    again = tool.synthetic_batch(2, 96, 4, 80, seed=1)
    assert torch.equal(batch['inputs'][1], again['inputs'][1])


def test_plain_optimizer_keeps_the_layer_wise_decay(tool):
    cfg = tool.load_config('bcssl_convnext_tiny_k9')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    model = tool.build_model(cfg)
    optim_wrapper = tool.build_optimizer(model, cfg, amp=False)
    assert type(optim_wrapper).__name__ == 'OptimWrapper'
    assert type(optim_wrapper.optimizer).__name__ == 'AdamW'
    # lr scale 0.95 ** (8 - layer_id - 1), layer ids 0..7 (docs/recipes.md §4)
    scales = {
        round(g['lr'] / 1e-4, 6)
        for g in optim_wrapper.optimizer.param_groups
    }
    assert scales == {round(0.95**(7 - i), 6) for i in range(8)}
    # SyncBN in the config, BN in the model
    assert cfg.model.backbone.dw_norm_cfg.type == 'SyncBN'
    assert not any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert sum(isinstance(m, _BatchNorm)
               for m in model.backbone.modules()) == 18


@pytest.mark.parametrize('argv, match', [
    (['--amp'], "--amp needs a CUDA --device.*'cpu'"),
    (['--img-size', '0'], '--img-size must be >= 1, got 0'),
    (['--models', 'convnext-t'], "renamed: use 'convnext_tiny'"),
    (['--models', 'convnext_base'], 'valid names: bcssl_convnext_'),
    (['--models', 'bcssl_convnext_tiny_k5'], 'has no Mask R-CNN config'),
    (['--models', 'missing.py'], "config file 'missing.py' does not exist"),
])
def test_bad_arguments_are_clear_errors(tool, argv, match):
    args = tool.get_args_parser().parse_args(argv)
    with pytest.raises(ValueError, match=match):
        tool.check_args(args)
