import importlib.util
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path
from typing import Callable, List

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

ROOT = Path(__file__).resolve().parents[1]
# the demo Mask R-CNN from random init (the DINO-init one needs a teacher)
DEMO_CONFIG = str(ROOT / 'configs' / 'dino' / 'benchmarks' /
                  'mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes.py')

# config lines shrinking a DINO config's model to one block per stage, 8-16
# channels and a 64-d head, for fast tests
TINY_DINO_MODEL = """\
model = dict(
    backbone=dict(arch=dict(_delete_=True, depths=[1, 1, 1, 1],
                            channels=[8, 16, 16, 16]),
                  kernel_size=3),
    neck=dict(in_channels=16, out_channels=64, hidden_channels=32,
              bottleneck_channels=8),
    head=dict(loss=dict(out_dim=64)))
"""


def load_tool(relpath: str):
    """Import a script under tools/ (not a package) as a module."""
    path = ROOT / 'tools' / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> str:
    """A tiny shapes dataset: 8 train and 4 val images of 256 px."""
    root = str(tmp_path_factory.mktemp('shapes'))
    load_tool('data/make_shapes_coco.py').generate(
        root, num_train=8, num_val=4, img_size=256, seed=0)
    return root + '/'


@pytest.fixture(scope='session')
def shapes_cls_root(tmp_path_factory) -> str:
    """The classification split alone: cls/train 12 and cls/val 6 images of
    64 px (4 and 2 per class) under ``<root>/cls/``."""
    root = str(tmp_path_factory.mktemp('shapes_cls'))
    load_tool('data/make_shapes_coco.py').generate(
        root,
        num_train=1,
        num_val=1,
        img_size=64,
        seed=0,
        num_cls_train=12,
        num_cls_val=6,
        cls_img_size=64)
    return root + '/'


def demo_cfg_options(data_root: str) -> List[str]:
    """--cfg-options that point the demo config at another data root."""
    ann = osp.join(data_root, 'annotations', 'instances_val.json')
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}'
    ]


def run_tool(args: List[str],
             timeout: int = 600,
             **env) -> subprocess.CompletedProcess:
    """Run a command from the repo root with the test interpreter on PATH."""
    full_env = dict(os.environ, PYTHON=sys.executable, **env)
    full_env['PATH'] = osp.dirname(sys.executable) + os.pathsep + \
        full_env.get('PATH', '')
    proc = subprocess.run(
        args,
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=g) + 0.5
            m.bias.data = torch.randn(c, generator=g)
            m.running_mean = torch.randn(c, generator=g)
            m.running_var = torch.rand(c, generator=g) + 0.5


def gloo_step_runner(rank: int, world_size: int, port: int,
                     build_model: Callable[[], nn.Module],
                     build_optim_wrapper: Callable[[nn.Module],
                                                   object], **runner_attrs):
    """Join a gloo group and set up a self-supervised model as mmengine's
    Runner would for one training step: the same initial weights on every
    rank, in DDP without buffer broadcast (``Runner.wrap_model``), and a
    stand-in runner for the hooks (``runner.model``, ``optim_wrapper``,
    ``message_hub`` and ``runner_attrs`` such as ``epoch`` / ``iter`` /
    ``max_iters``).

    Returns:
        tuple: ``(model, runner)``. Before ``teardown_distributed()``, drop
        ``runner`` (its DDP wrapper's reducer holds the group).
    """
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    from mmengine.model import MMDistributedDataParallel

    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group(
        'gloo', rank=rank, world_size=world_size)
    torch.manual_seed(0)  # same initial weights on every rank
    model = build_model()
    model.train()
    ddp = MMDistributedDataParallel(
        module=model, device_ids=None, broadcast_buffers=False)
    runner = SimpleNamespace(
        model=ddp,
        optim_wrapper=build_optim_wrapper(model),
        message_hub=MessageHub.get_current_instance(),
        **runner_attrs)
    return model, runner
