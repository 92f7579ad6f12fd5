"""The config layout: the old Mask R-CNN paths resolve to exactly their moved
configs, the DINO configs compose ``configs/_base_`` and the demos change
values without ``_delete_``."""
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
BENCHMARKS = CONFIGS / 'dino' / 'benchmarks'
DINO_DEMO = CONFIGS / 'dino' / 'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'
T100 = CONFIGS / 'dino' / 'dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'
MOCOV3_DEMO = (
    CONFIGS / 'mocov3' / 'mocov3_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')
MASKRCNN_DEMOS = [
    BENCHMARKS / 'mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py',
    BENCHMARKS / 'mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes.py',
]
# old path under configs/ -> its config under configs/dino/benchmarks/
OLD_TO_NEW = {
    'maskrcnn_bcssl_t_3x.py':
    'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py',
    'maskrcnn_bcssl_t-k3_3x.py':
    'mask-rcnn_bcssl-t-k3_fpn_amp-ms-crop-3x_coco.py',
    'maskrcnn_bcssl_t-k5_3x.py':
    'mask-rcnn_bcssl-t-k5_fpn_amp-ms-crop-3x_coco.py',
    'maskrcnn_bcssl_t-k7_3x.py':
    'mask-rcnn_bcssl-t-k7_fpn_amp-ms-crop-3x_coco.py',
    'maskrcnn_bcssl_s_3x.py':
    'mask-rcnn_bcssl-s-k9_fpn_amp-ms-crop-3x_coco.py',
    'maskrcnn_convnext_t_sup_3x.py':
    'mask-rcnn_convnext-t-k7-in1k-pre_fpn_amp-ms-crop-3x_coco.py',
    'maskrcnn_bcssl-atto-k9_shapes_demo.py':
    'mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes.py',
    'maskrcnn_bcssl-atto-k9_shapes_demo_dino-init.py':
    'mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py',
}


def test_every_old_path_is_mapped():
    assert {p.name for p in CONFIGS.glob('*.py')} == set(OLD_TO_NEW)
    # configs added after the move have no old path
    new = {'mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py'}
    assert {p.name
            for p in BENCHMARKS.glob('mask-rcnn_*.py')
            } == set(OLD_TO_NEW.values()) | new


@pytest.mark.parametrize('old', sorted(OLD_TO_NEW))
def test_old_path_resolves_to_the_moved_config(old):
    old_cfg = Config.fromfile(str(CONFIGS / old)).to_dict()
    new_cfg = Config.fromfile(str(BENCHMARKS / OLD_TO_NEW[old])).to_dict()
    assert old_cfg == new_cfg


@pytest.mark.parametrize(
    'path',
    [DINO_DEMO, MOCOV3_DEMO, *MASKRCNN_DEMOS, *CONFIGS.glob('_base_/**/*.py')],
    ids=lambda p: p.name)
def test_demos_and_bases_change_values_only(path):
    assert '_delete_' not in path.read_text()


def test_dino_demo_composes_fp32_shapes_bases():
    cfg = Config.fromfile(str(DINO_DEMO))
    # nothing of the ImageNet dataset or of the AMP wrapper reaches the demo
    assert cfg.optim_wrapper.type == 'DINOOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    dataset = cfg.train_dataloader.dataset
    assert (dataset.type, dataset.data_prefix) == ('CustomDataset', 'train/')
    assert 'split' not in dataset
    # the GPU recipe is the same schedule with AMP switched on
    t100 = Config.fromfile(str(T100))
    assert t100.optim_wrapper.type == 'DINOAmpOptimWrapper'
    amp = {
        k: v
        for k, v in t100.optim_wrapper.items()
        if k not in ('type', 'loss_scale')
    }
    fp32 = {k: v for k, v in cfg.optim_wrapper.items() if k != 'type'}
    # the demo's one change to the optimizer: its lr
    lr = t100.optim_wrapper.optimizer.lr
    fp32['optimizer'] = dict(fp32['optimizer'], lr=lr)
    assert amp == fp32


def test_maskrcnn_demos_differ_only_in_the_init():
    dino_init, scratch = (
        Config.fromfile(str(p)).to_dict() for p in MASKRCNN_DEMOS)
    assert dino_init['model']['backbone']['init_cfg'] == dict(
        type='Pretrained',
        checkpoint='work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes/'
        'teacher.pth',
        prefix='backbone.')
    assert scratch['model']['backbone']['init_cfg'] is None
    for cfg in (dino_init, scratch):
        del cfg['model']['backbone']['init_cfg'], cfg['pretrained']
    assert dino_init == scratch


def test_users_path_trains_in_its_own_work_dir():
    # tools/dist_train.sh configs/maskrcnn_bcssl_t_3x.py 8, as users call it
    from bcssl_mm.utils.config_check import load_config
    cfg = load_config(str(CONFIGS / 'maskrcnn_bcssl_t_3x.py'))
    assert cfg.work_dir == './work_dirs/maskrcnn_bcssl_t_3x'
    moved = Config.fromfile(
        str(BENCHMARKS / OLD_TO_NEW['maskrcnn_bcssl_t_3x.py']))
    assert cfg.model.backbone.to_dict() == moved.model.backbone.to_dict()
