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
        '--models', 'bcssl_convnext_tiny_k9', 'bcssl_convnext_tiny_k9_deploy',
        'convnext_tiny', 'timm::swin_tiny_patch4_window7_224', '--batch-size',
        '1', '--img-size', '64', '--warmup', '1', '--repeats', '2', '--json',
        str(out)
    ])
    results = tool.main(args)
    assert list(results) == [
        'bcssl_convnext_tiny_k9', 'bcssl_convnext_tiny_k9_deploy',
        'convnext_tiny', 'timm::swin_tiny_patch4_window7_224'
    ]
    for r in results.values():
        assert r['best_img_per_s'] >= r['img_per_s'] > 0
        assert len(r['seconds']) == 2  # one batch per round
        assert r['spread'] >= 0
    # deploy form folds the BN: fewer parameters, same architecture
    assert results['bcssl_convnext_tiny_k9_deploy']['params_m'] < \
        results['bcssl_convnext_tiny_k9']['params_m']
    assert 0 < results['bcssl_convnext_tiny_k9']['fraction_of_matmul'] < 1
    # the deploy form is counted with the same arithmetic (BN and layer
    # scale are folded, not dropped)
    assert results['bcssl_convnext_tiny_k9_deploy']['gflop_per_s'] / results[
        'bcssl_convnext_tiny_k9_deploy']['img_per_s'] == pytest.approx(
            results['bcssl_convnext_tiny_k9']['gflop_per_s'] /
            results['bcssl_convnext_tiny_k9']['img_per_s'],
            rel=0.01)
    table = capsys.readouterr().out
    assert 'x Swin-T' in table and 'x ConvNeXt-T' in table
    saved = json.loads(out.read_text())
    rates = saved['matmul_flop_per_s_by_library']
    assert 'torch.mm' in rates and 'onednn' in rates  # CPU
    assert saved['matmul_flop_per_s'] == max(rates.values()) > 0
    assert set(saved['results']) == set(results)


def test_old_model_name_is_a_clear_error_before_building(tool, monkeypatch):
    monkeypatch.setattr(tool, 'build', lambda *a: pytest.fail('built'))
    args = tool.get_args_parser().parse_args(
        ['--models', 'convnext_tiny', 'swin-t-timm'])
    with pytest.raises(
            ValueError,
            match="'swin-t-timm' .*renamed: use "
            "'timm::swin_tiny_patch4_window7_224'"):
        tool.run(args)


def test_default_models_are_valid_names(tool):
    from bcssl_mm.analysis import parse_model_name
    specs = [parse_model_name(m) for m in tool.DEFAULT_MODELS]
    assert {s.family for s in specs} == {'bcssl', 'convnext', 'swin', 'timm'}
    # the ratios' denominators are among them
    assert set(tool.SWIN_T) | {tool.CONVNEXT_T} <= set(tool.DEFAULT_MODELS)


def test_mmpretrain_swin_keeps_the_measured_padding(tool):
    # the README's figures: mmpretrain's Swin with pad_small_map=True at 224
    model = tool.build('swin_tiny_patch4_window7_224', 224)
    assert model.backbone.stages[-1].blocks[1].attn.pad_small_map


def test_models_are_timed_round_robin(tool):
    calls = []

    class Model(torch.nn.Module):

        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, x):
            calls.append(self.name)

    times = tool.time_models({n: Model(n)
                              for n in 'ab'},
                             torch.zeros(1),
                             warmup=1,
                             repeats=2,
                             amp=False)
    assert calls == ['a', 'b', 'a', 'b', 'a', 'b']
    assert [len(t) for t in times.values()] == [2, 2]
