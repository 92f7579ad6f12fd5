"""Multi-process runs without a GPU (torchrun + gloo)."""
import gc
import os

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

    A gloo group left alive at exit lets its background threads be destroyed
    while still joinable; on a loaded machine a rank then aborts with
    ``terminate called without an active exception`` after training has
    finished, and torchrun reports the whole run failed. All ranks meet at a
    barrier first so that no rank tears down while another still sends.

    Callers drop their runner first: its DDP wrapper holds the group, and a
    group still referenced is only freed during interpreter shutdown, which
    is when the abort happens. Reference cycles (hooks <-> runner) are
    collected here for the same reason.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()
        torch_dist.barrier()
        torch_dist.destroy_process_group()
