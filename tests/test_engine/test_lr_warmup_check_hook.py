"""LRWarmupCheckHook warns when a LinearLR warm-up cannot reach its lr."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from bcssl_mm.engine.hooks import LRWarmupCheckHook


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.w = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=self.w(inputs).pow(2).mean())


def _lrs(tmp_path, num_samples, warmup_epochs=1, max_epochs=3):
    hook = LRWarmupCheckHook()
    lrs = []

    class Record(LRWarmupCheckHook):

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            lrs.append(runner.optim_wrapper.get_lr()['lr'][0])

    # the Runner makes its scope the current one: keep it to this test
    with DefaultScope.overwrite_default_scope('mmengine'):
        runner = Runner(
            model=Toy(),
            work_dir=str(tmp_path),
            train_dataloader=dict(
                dataset=[dict(inputs=torch.ones(2))] * num_samples,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                batch_size=1),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            param_scheduler=[
                dict(
                    type='LinearLR',
                    start_factor=1e-9,
                    by_epoch=True,
                    begin=0,
                    end=warmup_epochs,
                    convert_to_iter_based=True),
                dict(
                    type='CosineAnnealingLR',
                    by_epoch=True,
                    begin=warmup_epochs,
                    eta_min=0.,
                    convert_to_iter_based=True)
            ][:1 if warmup_epochs >= max_epochs else 2],
            train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
            custom_hooks=[hook, Record()],
            default_hooks=dict(checkpoint=None, logger=None),
            default_scope='mmengine')
        runner.train()
    return hook.warnings, lrs


def test_one_iteration_warmup_is_reported(tmp_path):
    warnings, lrs = _lrs(tmp_path / 'one', num_samples=1)
    # mmengine's LinearLR over one step never leaves start_factor, and the
    # chained cosine continues from there: what the hook warns about
    assert max(lrs) < 1e-9
    assert len(warnings) == 1 and 'peaks at 1e-09' in warnings[0]
    warnings, lrs = _lrs(tmp_path / 'many', num_samples=20)
    assert max(lrs) > 0.09 and warnings == []
    warnings, _ = _lrs(tmp_path / 'all', num_samples=4, warmup_epochs=3)
    assert 'lasts the whole run' in warnings[0]
