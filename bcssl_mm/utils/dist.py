"""Multi-process runs without a GPU (torchrun + gloo)."""
import gc
import os
import time

import torch
import torch.distributed as torch_dist
from mmengine.config import Config


def setup_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Prepare ``cfg`` for a CPU-only ``--launcher pytorch`` run.

    mmengine 0.10.7 cannot run distributed on CPU: ``_init_dist_pytorch``
    calls ``torch.cuda.set_device`` unconditionally and ``Runner.wrap_model``
    passes ``device_ids=[LOCAL_RANK]`` to DDP, which only GPU modules accept.
    The runner skips ``init_dist`` when a process group already exists and
    honours ``model_wrapper_cfg``, so this initialises a gloo group from the
    torchrun environment and asks for a CPU DDP wrapper. It does nothing when
    CUDA is available or the launcher is 'none'.

    torch's SyncBatchNorm refuses CPU tensors, so CPU runs need configs with
    plain BN.
    """
    if launcher != 'pytorch' or torch.cuda.is_available():
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False)
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def teardown_distributed() -> None:
    """Leave the process group before the interpreter exits.

    Two failures this avoids, both seen on 2 loaded CPU cores:

    - a gloo group left alive at exit lets its worker threads be destroyed
      while still joinable: a rank aborts with ``terminate called without an
      active exception`` after its work is done, and torchrun reports the
      run failed;
    - a gloo worker thread frees a finished collective (its tensors need the
      GIL) while the main thread, holding the GIL, destroys the group and
      joins that thread: a deadlock.

    So: callers drop their DDP wrapper first (its reducer holds the group,
    which would otherwise be destroyed whenever the wrapper is collected);
    reference cycles are collected here; all ranks meet at a barrier, so no
    rank tears down while another still sends; a short sleep releases the
    GIL for the worker threads to finish freeing completed work; then the
    group is destroyed.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()
        torch_dist.barrier()
        time.sleep(0.2)
        torch_dist.destroy_process_group()
        gc.collect()
