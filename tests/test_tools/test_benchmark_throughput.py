import json

import pytest
import torch

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
        assert r['best_img_per_s'] >= r['img_per_s'] > 0
        assert len(r['seconds']) == 2  # one batch per round
        assert r['spread'] >= 0
    # deploy form folds the BN: fewer parameters, same architecture
    assert results['bcssl-t-k9-deploy']['params_m'] < \
        results['bcssl-t-k9']['params_m']
    assert 0 < results['bcssl-t-k9']['fraction_of_matmul'] < 1
    # the deploy form is counted with the same arithmetic (BN and layer
    # scale are folded, not dropped)
    assert results['bcssl-t-k9-deploy']['gflop_per_s'] / results[
        'bcssl-t-k9-deploy']['img_per_s'] == pytest.approx(
            results['bcssl-t-k9']['gflop_per_s'] /
            results['bcssl-t-k9']['img_per_s'], rel=0.01)
    table = capsys.readouterr().out
    assert 'x Swin-T' in table and 'x ConvNeXt-T' in table
    saved = json.loads(out.read_text())
    rates = saved['matmul_flop_per_s_by_library']
    assert 'torch.mm' in rates and 'onednn' in rates  # CPU
    assert saved['matmul_flop_per_s'] == max(rates.values()) > 0
    assert set(saved['results']) == set(results)


def test_unknown_model_is_a_clear_error(tool):
    args = tool.get_args_parser().parse_args(['--models', 'bcssl-t-k4'])
    with pytest.raises(SystemExit, match='bcssl-t-k4'):
        tool.run(args)


def test_models_are_timed_round_robin(tool):
    calls = []

    class Model(torch.nn.Module):

        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)

    times = tool.time_models({n: Model(n) for n in 'ab'}, torch.zeros(1),
                             warmup=1, repeats=2, amp=False)
    assert calls == ['a', 'b', 'a', 'b', 'a', 'b']
    assert [len(t) for t in times.values()] == [2, 2]
