import pytest

from conftest import load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/get_backbone_complexity.py')


@pytest.mark.parametrize('kernel_size, gflops', [(3, 4.4), (9, 4.5),
                                                 (15, 4.8)])
def test_bcssl_t_flops_match_paper(tool, kernel_size, gflops):
    row = next(r for r in tool.ROWS
               if r.name == 'BC-SSL-T' and r.kernel_size == kernel_size)
    res = tool.count(row, shape=224, flops=True)
    assert res['gflops'] == pytest.approx(gflops, abs=0.06)
    assert res['params_m'] == pytest.approx(row.paper_params_m, abs=1.0)


def test_flops_grow_with_kernel_by_the_depthwise_term(tool):
    # multiply-adds of the depthwise convs: sum over blocks of H*W*C*k^2
    small, large = (tool.count(
        tool.Row('BC-SSL-T', 'tiny', k, True, 29, None), 224, True)['gflops']
                    for k in (3, 5))
    hw_c = sum(d * (56 // 2**i)**2 * c for i, (d, c) in enumerate(
        zip([3, 3, 9, 3], [96, 192, 384, 768])))
    assert large - small == pytest.approx(hw_c * (25 - 9) / 1e9, rel=1e-6)
