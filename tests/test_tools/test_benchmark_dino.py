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


@pytest.mark.parametrize('argv, match', [
    (['--amp'], '--amp needs --device cuda'),
    (['--batch-size', '0'], '--batch-size must be >= 1'),
])
def test_bad_arguments(argv, match):
    args = bench.get_args_parser().parse_args(argv)
    with pytest.raises(ValueError, match=match):
        bench.check_args(args)
