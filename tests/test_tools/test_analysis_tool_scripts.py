"""The analysis and benchmark tools use the shared toolbox of
``bcssl_mm.analysis``: its table formatter, FLOP counter, timing helpers and
quiet mmengine logger, not copies of their own."""
import ast
import re

import pytest

from conftest import ROOT

TOOLS = sorted((ROOT / 'tools' / 'analysis_tools').glob('*.py')) + sorted(
    (ROOT / 'tools' / 'benchmarks').glob('*.py'))
BENCHMARKS = sorted((ROOT / 'tools' / 'analysis_tools').glob('*.py'))
# what a private copy looks like -> the shared piece to use instead
EVERY_TOOL = {
    r'''['"]\|-+\|''': 'a hand-built Markdown table: format_table',
    r'''['"]-+\+-''': 'a hand-built text table: format_table',
    r'\bFlopAnalyzer\b|get_model_complexity_info|\bfvcore\b|\bthop\b':
    'a FLOP counter: count_macs',
    r'\.setLevel\(': "silencing mmengine's logger: quiet_mmengine",
}
TIMING_TOOLS = {
    r'\bperf_counter\b|\btime\.time\(':
    'a timing loop: bcssl_mm.analysis.'
    'bench (timed, time_repeats, time_round_robin, time_interleaved)',
}


def code_of(source: str) -> str:
    """``source`` without its comments and docstrings (which may name what
    the code must not use)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, 'body', None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def private_copies(source: str, patterns: dict) -> list:
    """``what: code`` of each match of ``patterns`` in the code of
    ``source``."""
    code = code_of(source)
    return [
        f'{what}: {code[max(m.start() - 20, 0):m.end() + 20]!r}'
        for pattern, what in patterns.items()
        for m in re.finditer(pattern, code)
    ]


def test_the_patterns_find_copies():
    source = ('"""Counts FLOPs as FlopAnalyzer does."""\n'
              "lines = ['| a | b |', '|---|---|']\n"
              't0 = time.perf_counter()  # not time.time()\n'
              'FlopAnalyzer(model, x)\n'
              "print('-' * 5 + '-+-' + '-' * 3)\n")
    found = private_copies(source, {**EVERY_TOOL, **TIMING_TOOLS})
    assert [f.split(':')[0] for f in found] == [
        'a hand-built Markdown table', 'a hand-built text table',
        'a FLOP counter', 'a timing loop'
    ]


def test_every_tool_is_checked():
    names = {p.name for p in TOOLS}
    assert {'benchmark_pretrain.py', 'benchmark_throughput.py', 'knn_eval.py'
            } <= names


@pytest.mark.parametrize('path', TOOLS, ids=lambda p: p.name)
def test_tool_uses_the_shared_toolbox(path):
    patterns = dict(EVERY_TOOL, **(TIMING_TOOLS if path in BENCHMARKS else {}))
    assert private_copies(path.read_text(), patterns) == []
