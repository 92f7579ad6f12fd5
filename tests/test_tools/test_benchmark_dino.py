import pytest

from conftest import ROOT, load_tool

bench = load_tool('analysis_tools/benchmark_dino.py')
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
    assert '| s/iter | img/s |' in out


TINY = [
    '--config', DEMO, '--batch-size', '2', '--num-local-crops', '2',
    '--global-size', '64', '--local-size', '32'
]


def test_compare_reference_reports_a_ratio(capsys):
    args = bench.get_args_parser().parse_args(
        TINY + ['--warmup', '0', '--repeats', '2', '--compare-reference'])
    r = bench.main(args)
    assert r['ref_s_per_iter'] > 0
    assert r['ratio'] == pytest.approx(r['s_per_iter'] / r['ref_s_per_iter'])
    assert len(r['ref_losses']) == len(r['losses']) == 2
    # both loops started from the same weights and saw the same crops
    assert r['ref_losses'][0] == pytest.approx(r['losses'][0], rel=1e-5)
    out = capsys.readouterr().out
    assert '| ratio |' in out and 'largest loss difference' in out


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
