import json

import pytest

from conftest import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/benchmark_throughput.py')


def test_benchmark_runs_on_tiny_sizes(tool, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    args = tool.get_args_parser().parse_args([
        '--models', 'bcssl-t-k9', 'bcssl-t-k9-deploy', 'convnext-t',
        'swin-t-timm', '--batch-size', '1', '--img-size', '64', '--warmup',
        '1', '--repeats', '2', '--json',
        str(out)
    ])
    results = tool.main(args)
    assert list(results) == [
        'bcssl-t-k9', 'bcssl-t-k9-deploy', 'convnext-t', 'swin-t-timm'
    ]
    for r in results.values():
        assert r['img_per_s'] > 0
    # deploy form folds the BN: fewer parameters, same architecture
    assert results['bcssl-t-k9-deploy']['params_m'] < \
        results['bcssl-t-k9']['params_m']
    assert 0 < results['bcssl-t-k9']['fraction_of_matmul'] < 1
    table = capsys.readouterr().out
    assert 'x Swin-T' in table and 'x ConvNeXt-T' in table
    saved = json.loads(out.read_text())
    assert saved['matmul_flop_per_s'] > 0
    assert set(saved['results']) == set(results)


def test_unknown_model_is_a_clear_error(tool):
    args = tool.get_args_parser().parse_args(['--models', 'bcssl-t-k4'])
    with pytest.raises(SystemExit, match='bcssl-t-k4'):
        tool.run(args)
