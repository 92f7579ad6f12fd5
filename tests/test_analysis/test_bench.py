import math

import pytest
import torch

from bcssl_mm.analysis import (median_and_spread, time_repeats,
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
