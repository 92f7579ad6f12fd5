"""tools/analysis_tools/benchmark_knn.py at a tiny size (no timing claims)."""
from conftest import load_tool

bench = load_tool('analysis_tools/benchmark_knn.py')


def test_chunked_and_dense_agree_and_report():
    args = bench.get_args_parser().parse_args([
        '--bank-size', '300', '--queries', '40', '--dim', '16', '--classes',
        '7', '--nb-knn', '5', '20', '--query-chunk', '16', '--bank-chunk',
        '64', '--repeats', '1', '--noise', '1.5'
    ])
    results = {
        name: bench.run_one(name, args)
        for name in ('chunked', 'dense')
    }
    chunked, dense = results['chunked'], results['dense']
    assert chunked['metrics'] == dense['metrics']
    assert sorted(
        chunked['metrics']) == ['top1_k20', 'top1_k5', 'top5_k20', 'top5_k5']
    assert 0 < chunked['metrics']['top1_k20'] < 100  # not a trivial case
    for r in results.values():
        assert r['seconds'] > 0 and r['peak_mib'] >= 0
