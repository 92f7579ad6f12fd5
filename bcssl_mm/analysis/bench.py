"""Timing and peak-memory helpers shared by the benchmark scripts.

Every timed call is bracketed by a device synchronisation (:func:`timed`),
so that a CUDA time covers the queued kernels.
"""
import ctypes
import gc
import math
import os.path as osp
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch


def _proc_status_bytes(key: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f'{key} not in /proc/self/status')


class PeakMemory:
    """Peak memory between :meth:`start` and :meth:`peak_bytes`.

    On CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated at
    ``start`` (weights, gradients, optimizer state, activations; not the
    allocator's cache). On CPU: the increase of the process's resident set
    from ``start`` to its high-water mark (Linux ``/proc/self/status`` VmRSS
    -> VmHWM, the mark reset through ``/proc/self/clear_refs``); it also
    counts memory the allocator holds but does not use, so read it as an
    upper bound. Before the CPU baseline is read, free memory the process
    still holds is returned to the system (``gc.collect`` and glibc's
    ``malloc_trim``), so that what a measured run allocates shows as growth
    even in a process that allocated and freed more before (a test session).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        if device.type != 'cuda' and not osp.exists('/proc/self/status'):
            raise RuntimeError('peak memory on CPU needs Linux /proc; '
                               'run with --device cuda')
        self.method = ('torch.cuda.max_memory_allocated'
                       if device.type == 'cuda' else 'RSS high-water mark '
                       'increase (upper bound)')

    def start(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            gc.collect()
            _malloc_trim()
            try:  # reset VmHWM to the current RSS (Linux >= 4.0)
                with open('/proc/self/clear_refs', 'w') as f:
                    f.write('5')
            except OSError:
                pass  # VmHWM then also covers the imports, rarely higher
            self.base = _proc_status_bytes('VmRSS')

    def peak_bytes(self) -> int:
        if self.device.type == 'cuda':
            return torch.cuda.max_memory_allocated(self.device) - self.base
        return _proc_status_bytes('VmHWM') - self.base


def _malloc_trim() -> None:
    """glibc's ``malloc_trim(0)``: give the free heap back to the system
    (a no-op where there is no glibc)."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timing)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> Tuple[float, Any]:
    """Run ``fn`` once; its wall time in seconds (the device's queued work
    included) and its result."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def time_repeats(fn: Callable[[], Any], device: torch.device, warmup: int,
                 repeats: int) -> Tuple[List[float], List[Any]]:
    """Run ``fn`` ``warmup + repeats`` times; time the last ``repeats``.

    Returns:
        (times in seconds of the timed calls, results of every call).
    """
    times, results = [], []
    for i in range(warmup + repeats):
        seconds, result = timed(fn, device)
        if i >= warmup:
            times.append(seconds)
        results.append(result)
    return times, results


def time_round_robin(fns: Dict[str, Callable[[], Any]], device: torch.device,
                     warmup: int, repeats: int) -> Dict[str, List[float]]:
    """Time several functions in turn, so that drift in the machine's load
    hits all of them alike.

    Each function is first called ``warmup`` times (untimed, one after the
    other); then ``repeats`` rounds call each once, timed.

    Returns:
        dict: Name -> seconds of its call in each round.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device)[0])
    return times


def time_interleaved(fns: Dict[str, Callable[[], Any]],
                     device: torch.device,
                     warmup: int,
                     repeats: int,
                     seed: Optional[int] = None
                     ) -> Dict[str, Tuple[List[float], List[Any]]]:
    """Time several functions in alternating order: A B, B A, A B, ...

    ``warmup + repeats`` rounds, each calling every function once, timed; the
    order reverses from one round to the next, so that neither always runs
    right after the other (in a warm cache, or after its allocations). Unlike
    :func:`time_round_robin`, the warm-up rounds are interleaved too and every
    call's result is kept: suited to training steps whose losses are
    compared.

    Args:
        fns (dict): Name -> function to time.
        device (torch.device): The device whose queued work each time covers.
        warmup (int): Untimed rounds first.
        repeats (int): Timed rounds.
        seed (int, optional): Reseed torch's RNG with ``seed + round`` before
            every call, so that all functions draw the same random numbers
            (drop-path masks) in a round. Defaults to None (no reseeding).

    Returns:
        dict: Name -> (seconds of its timed calls, results of all its calls).
    """
    times: Dict[str, List[float]] = {name: [] for name in fns}
    results: Dict[str, List[Any]] = {name: [] for name in fns}
    for i in range(warmup + repeats):
        order = list(fns) if i % 2 == 0 else list(reversed(fns))
        for name in order:
            if seed is not None:
                torch.manual_seed(seed + i)
            seconds, result = timed(fns[name], device)
            if i >= warmup:
                times[name].append(seconds)
            results[name].append(result)
    return {name: (times[name], results[name]) for name in fns}


def check_finite(losses: List[float], name: str = 'model') -> None:
    """Raise ``FloatingPointError`` naming ``name`` on a non-finite loss."""
    if not all(math.isfinite(loss) for loss in losses):
        raise FloatingPointError(f'{name}: non-finite loss {losses}')


def time_train_steps(step: Callable[[], dict],
                     device: torch.device,
                     warmup: int,
                     repeats: int,
                     name: str = 'model') -> Tuple[List[float], List[float]]:
    """Run ``step`` (one training step returning mmengine ``log_vars``)
    ``warmup + repeats`` times; time the last ``repeats``.

    Returns:
        (times in seconds of the timed steps, losses of every step). Raises
        ``FloatingPointError`` naming ``name`` on a non-finite loss.
    """
    times, log_vars = time_repeats(step, device, warmup, repeats)
    losses = [float(torch.as_tensor(v['loss']).detach()) for v in log_vars]
    check_finite(losses, name)
    return times, losses


def median_and_spread(times: List[float]) -> Tuple[float, float]:
    """Median and (max - min) / median of step times."""
    median = statistics.median(times)
    return median, (max(times) - min(times)) / median
