import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from conftest import DEMO_CONFIG


def _demo_cfg(data_root: str) -> Config:
    cfg = Config.fromfile(DEMO_CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = data_root
    return cfg


def test_demo_maskrcnn_train_step_and_predict(shapes_root):
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        _train_step_and_predict(shapes_root)


def _train_step_and_predict(shapes_root):
    torch.manual_seed(0)
    cfg = _demo_cfg(shapes_root)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)

    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(2)])
    watched = {
        name: p.detach().clone()
        for name, p in model.named_parameters()
        if name in ('backbone.stages.3.1.depthwise_conv.weight',
                    'roi_head.mask_head.conv_logits.weight')
    }
    model.train()
    losses = model.train_step(batch, optim_wrapper)
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                'loss_mask'):
        assert key in losses and torch.isfinite(losses[key]).all(), key
    for name, before in watched.items():
        assert not torch.equal(model.get_parameter(name), before), name

    model.eval()
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    batch = pseudo_collate([val_set[i] for i in range(2)])
    with torch.no_grad():
        preds = model.test_step(batch)
    assert len(preds) == 2
    for pred in preds:
        inst = pred.pred_instances
        h, w = pred.ori_shape
        assert inst.bboxes.shape[1] == 4
        assert inst.masks.shape[1:] == (h, w)
        assert len(inst) <= cfg.model.test_cfg.rcnn.max_per_img
        assert ((inst.labels >= 0) & (inst.labels < 3)).all()
