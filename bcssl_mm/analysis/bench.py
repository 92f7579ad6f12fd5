"""Timing and peak-memory helpers shared by the benchmark scripts."""
import math
import os.path as osp
import statistics
import time
from typing import Callable, List, Tuple

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
    upper bound.
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


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timing)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_train_steps(step: Callable[[], dict], device: torch.device,
                     warmup: int, repeats: int,
                     name: str = 'model') -> Tuple[List[float], List[float]]:
    """Run ``step`` (one training step returning mmengine ``log_vars``)
    ``warmup + repeats`` times; time the last ``repeats``.

    Returns:
        (times in seconds of the timed steps, losses of every step). Raises
        ``FloatingPointError`` naming ``name`` on a non-finite loss.
    """
    times, losses = [], []
    for i in range(warmup + repeats):
        sync(device)
        start = time.perf_counter()
        log_vars = step()
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
        losses.append(float(log_vars['loss']))
    if not all(math.isfinite(loss) for loss in losses):
        raise FloatingPointError(f'{name}: non-finite loss {losses}')
    return times, losses


def median_and_spread(times: List[float]) -> Tuple[float, float]:
    """Median and (max - min) / median of step times."""
    median = statistics.median(times)
    return median, (max(times) - min(times)) / median
