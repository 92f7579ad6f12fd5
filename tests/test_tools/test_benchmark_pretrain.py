import re

import pytest
import torch

from conftest import ROOT, TINY_DINO_MODEL, load_tool

bench = load_tool('analysis_tools/benchmark_pretrain.py')
DEMO = str(ROOT / 'configs' / 'dino' /
           'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')


def test_tiny_run_reports_throughput_and_memory(capsys):
    args = bench.get_args_parser().parse_args([
        '--config', DEMO, '--batch-size', '2', '--num-local-crops', '2',
        '--global-size', '64', '--local-size', '32', '--warmup', '1',
        '--repeats', '2'
    ])
    r = bench.main(args)
    assert (r['backbone'], r['kernel_size']) == ('BCSSLConvNeXt', 9)
    assert r['crops'] == '2x64 + 2x32'
    assert r['s_per_iter'] > 0
    assert r['img_per_s'] == pytest.approx(2 / r['s_per_iter'])
    assert r['peak_mem_mib'] > 0
    assert len(r['losses']) == 3
    out = capsys.readouterr().out
    # a Markdown table (bcssl_mm.analysis.format_table pads the cells)
    assert re.search(r'^\| s/iter +\| img/s +\|', out, re.M)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> list:
    """Arguments for the demo config shrunk to a one-block-per-stage
    backbone and a small head, 2 images, 2 + 2 crops of 64 / 32 px."""
    path = tmp_path_factory.mktemp('dino') / 'dino_tiny.py'
    path.write_text(f"""
_base_ = {DEMO!r}
{TINY_DINO_MODEL}""")
    return [
        '--config',
        str(path), '--batch-size', '2', '--num-local-crops', '2',
        '--global-size', '64', '--local-size', '32'
    ]


def test_compare_reference_reports_a_ratio(tiny, capsys):
    args = bench.get_args_parser().parse_args(
        tiny + ['--warmup', '0', '--repeats', '2', '--compare-reference'])
    r = bench.main(args)
    assert r['ref_s_per_iter'] > 0
    assert r['ratio'] == pytest.approx(r['s_per_iter'] / r['ref_s_per_iter'])
    assert len(r['ref_losses']) == len(r['losses']) == 2
    # both loops started from the same weights and saw the same crops
    assert r['ref_losses'][0] == r['losses'][0]
    out = capsys.readouterr().out
    assert re.search(r'^\| ratio +\| \d+\.\d{3} +\|$', out, re.M)
    assert 'largest loss difference' in out


@pytest.mark.parametrize('freeze_last_layer', [True, False])
def test_three_steps_equal_the_reference_loop(tiny, freeze_last_layer):
    """The toolkit's steps (mmengine's train_step, DINOOptimWrapper,
    DINOHook's EMA) and official DINO's, written out, give the same losses
    and the same weights, bit for bit."""
    args = bench.get_args_parser().parse_args(tiny)
    model, optim_wrapper, ow_cfg, data = bench.build(args)
    ref = bench.ReferenceDINO(model, ow_cfg['optimizer'],
                              ow_cfg['clip_grad']['max_norm'])
    with torch.no_grad():
        crops = model.data_preprocessor(data, True)['inputs']
    last_layer = model.neck.last_layer.weight_v.detach().clone()
    for i in range(3):  # the 3rd step's loss depends on the 2nd's center
        torch.manual_seed(i)  # same drop-path masks
        loss = bench.toolkit_step(model, optim_wrapper, data,
                                  freeze_last_layer)
        torch.manual_seed(i)
        ref_loss = ref.step(crops, bench.TEACHER_TEMP, bench.MOMENTUM,
                            freeze_last_layer)
        assert loss == ref_loss, i
    assert torch.equal(model.neck.last_layer.weight_v,
                       last_layer) == freeze_last_layer
    pairs = [(model.backbone, ref.student['backbone']),
             (model.neck, ref.student['head']),
             (model.teacher['backbone'], ref.teacher['backbone']),
             (model.teacher['neck'], ref.teacher['head'])]
    for ours, theirs in pairs:
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    assert torch.equal(model.head.loss_module.center, ref.center)


@pytest.mark.parametrize('argv, match', [
    (['--amp'], '--amp needs --device cuda'),
    (['--batch-size', '0'], '--batch-size must be >= 1'),
    (['--compare-reference', '--amp', '--device', 'cuda'], 'fp32 only'),
    (['--profile'], '--profile needs --compare-reference'),
])
def test_bad_arguments(argv, match):
    args = bench.get_args_parser().parse_args(argv)
    with pytest.raises(ValueError, match=match):
        bench.check_args(args)


def test_mocov3_run_reports_throughput_of_two_views(tmp_path, capsys):
    path = tmp_path / 'mocov3_tiny.py'
    path.write_text(f"""
_base_ = {str(ROOT / 'configs' / 'mocov3' /
              'mocov3_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')!r}
model = dict(
    backbone=dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1],
                            channels=[8, 16, 16, 16]), kernel_size=3),
    neck=dict(in_channels=16, hid_channels=32, out_channels=8),
    head=dict(predictor=dict(in_channels=8, hid_channels=32,
                             out_channels=8)))
""")
    args = bench.get_args_parser().parse_args([
        '--config',
        str(path), '--batch-size', '2', '--global-size', '64', '--warmup', '0',
        '--repeats', '2'
    ])
    r = bench.main(args)
    assert (r['algorithm'], r['crops']) == ('MoCo v3', '2x64')
    # the trained parameters exclude the momentum encoder
    model = bench.build(args)[0]
    base = sum(p.numel() for n, p in model.named_parameters()
               if not n.startswith('momentum_encoder.'))
    assert r['student_params_m'] == pytest.approx(base / 1e6)
    assert r['img_per_s'] == pytest.approx(2 / r['s_per_iter'])
    assert 'MoCo v3, BCSSLConvNeXt k3' in capsys.readouterr().out
    with pytest.raises(ValueError, match='--compare-reference is for DINO'):
        bench.main(bench.get_args_parser().parse_args(
            ['--config', str(path), '--compare-reference']))


def test_selfpatch_run_times_the_dino_step_with_the_patch_task(capsys):
    """The SelfPatch demo config (tiny sizes) is timed as a DINO step; the
    reference loop is DINO's only."""
    config = str(ROOT / 'configs' / 'selfpatch' /
                 'selfpatch_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')
    args = bench.get_args_parser().parse_args([
        '--config', config, '--batch-size', '2', '--num-local-crops', '2',
        '--global-size', '64', '--local-size', '32', '--warmup', '0',
        '--repeats', '2', '--freeze-last-layer', '--baseline', DEMO
    ])
    r = bench.main(args)
    assert (r['algorithm'], r['crops']) == ('SelfPatch', '2x64 + 2x32')
    # the plain DINO demo config timed on the same batch, interleaved
    assert r['baseline_algorithm'] == 'DINO'
    assert r['baseline_ratio'] == pytest.approx(r['s_per_iter'] /
                                                r['baseline_s_per_iter'])
    assert len(r['losses']) == len(r['baseline_losses']) == 2
    model = bench.build(args)[0]
    trained = sum(p.numel() for n, p in model.named_parameters()
                  if not n.startswith('teacher.'))
    assert r['student_params_m'] == pytest.approx(trained / 1e6)
    assert 'SelfPatch, BCSSLConvNeXt k9' in capsys.readouterr().out
    with pytest.raises(ValueError, match='not both'):
        bench.main(bench.get_args_parser().parse_args(
            ['--config', config, '--compare-reference', '--baseline', DEMO]))
    with pytest.raises(ValueError, match='is SelfPatch'):
        bench.main(bench.get_args_parser().parse_args(
            ['--config', config, '--compare-reference']))


def test_mae_and_dmae_lite_steps_are_timed_interleaved():
    """The pico demo configs at 32 px: D-MAE-Lite against plain MAE on the
    same batch, its teacher at a random init (no checkpoint needed)."""
    configs = ROOT / 'configs' / 'maelite'
    args = bench.get_args_parser().parse_args([
        '--config',
        str(configs / 'dmaelite_vit-pico-p16_1xb32-coslr-100e_shapes.py'),
        '--baseline',
        str(configs / 'maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py'),
        '--batch-size', '2', '--global-size', '96', '--warmup', '0',
        '--repeats', '2'
    ])
    r = bench.main(args)
    assert (r['algorithm'], r['baseline_algorithm']) == ('D-MAE-Lite', 'MAE')
    assert r['crops'] == '1x96'
    assert r['baseline_ratio'] == pytest.approx(r['s_per_iter'] /
                                                r['baseline_s_per_iter'])
    # the trained parameters exclude the frozen teacher
    model = bench.build(args)[0]
    trained = sum(p.numel() for n, p in model.named_parameters()
                  if not n.startswith('teacher.'))
    assert r['student_params_m'] == pytest.approx(trained / 1e6)
