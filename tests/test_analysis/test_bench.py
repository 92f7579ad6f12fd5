import math

import pytest
import torch

from bcssl_mm.analysis import (check_finite, median_and_spread,
                               time_interleaved, time_repeats,
                               time_round_robin, time_train_steps)

CPU = torch.device('cpu')


def test_time_repeats_times_only_after_the_warmup():
    calls = []
    times, results = time_repeats(
        lambda: calls.append(1) or len(calls), CPU, warmup=2, repeats=3)
    assert results == [1, 2, 3, 4, 5]  # every call's result
    assert len(times) == 3 and all(t >= 0 for t in times)


def test_round_robin_warms_each_then_alternates():
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in 'ab'}
    times = time_round_robin(fns, CPU, warmup=2, repeats=2)
    assert calls == ['a', 'a', 'b', 'b', 'a', 'b', 'a', 'b']
    assert {n: len(t) for n, t in times.items()} == {'a': 2, 'b': 2}


def test_interleaved_reverses_the_order_and_reseeds():
    calls = []

    def fn(name):
        calls.append(name)
        return torch.rand(()).item()

    fns = {n: (lambda n=n: fn(n)) for n in 'ab'}
    out = time_interleaved(fns, CPU, warmup=1, repeats=3, seed=7)
    assert calls == ['a', 'b', 'b', 'a', 'a', 'b', 'b', 'a']
    assert {n: (len(t), len(r))
            for n, (t, r) in out.items()} == {
                'a': (3, 4),
                'b': (3, 4)
            }
    # the same seed for both in a round, another in the next
    assert out['a'][1] == out['b'][1]
    torch.manual_seed(7)
    assert out['a'][1][0] == torch.rand(()).item()
    assert len(set(out['a'][1])) == 4


def test_check_finite_names_the_model():
    check_finite([1.0, 0.5], 'net')
    with pytest.raises(FloatingPointError, match=r'net: non-finite loss'):
        check_finite([1.0, math.inf], 'net')


def test_train_steps_refuse_a_non_finite_loss():
    losses = iter([1.0, 0.5, math.nan])
    with pytest.raises(FloatingPointError, match='net: non-finite'):
        time_train_steps(
            lambda: dict(loss=torch.tensor(next(losses))),
            CPU,
            warmup=1,
            repeats=2,
            name='net')


def test_median_and_spread():
    assert median_and_spread([1.0, 2.0, 4.0]) == (2.0, 1.5)
