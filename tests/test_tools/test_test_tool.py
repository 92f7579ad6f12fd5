"""tools/test.py's table, its refusal of an empty ground truth, and the
pretraining run its COCO result file names."""
import json
import sys

import pytest
import torch
from mmengine.config import Config

from bcssl_mm.evaluation.results import read_result
from conftest import DEMO_CONFIG, ROOT, demo_cfg_options, load_tool, run_tool

# the demo Mask R-CNN fine-tuned from the demo DINO teacher
DEMO_DINO_CONFIG = str(ROOT / 'configs' / 'dino' / 'benchmarks' /
                       'mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py')


def test_coco_no_data_sentinel_prints_a_dash():
    table = load_tool('test.py').format_coco_table({
        'coco/bbox_mAP': 0.5,
        'coco/bbox_mAP_50': 0.75,
        'coco/bbox_mAP_75': -1.0,
        'coco/bbox_mAP_s': -1.0,
        'coco/bbox_mAP_m': 0.25,
        'coco/bbox_mAP_l': 0.0
    })
    row = next(line for line in table.splitlines() if 'bbox' in line)
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells == ['bbox', '50.0', '75.0', '-', '-', '25.0', '0.0']
    assert '-100' not in table


def test_empty_ground_truth_is_an_error(tmp_path, shapes_root):
    ann = json.load(open(f'{shapes_root}annotations/instances_val.json'))
    ann['annotations'] = []
    empty = tmp_path / 'empty_val.json'
    empty.write_text(json.dumps(ann))
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': {}}, ckpt)
    with pytest.raises(AssertionError) as e:
        run_tool([
            sys.executable, 'tools/test.py', DEMO_CONFIG,
            str(ckpt), '--cfg-options', *demo_cfg_options(shapes_root),
            f'test_dataloader.dataset.ann_file={empty}',
            f'test_evaluator.ann_file={empty}'
        ])
    msg = str(e.value)
    assert f'{empty}: no annotations' in msg
    assert 'Traceback' not in msg


def test_pretrain_entry_of_the_demo_detectors(tmp_path):
    """The DINO-init demo config names its teacher's run; the random-init
    one needs --pretrain-name."""
    tool = load_tool('test.py')
    # an extracted teacher keeps the DINO run's experiment_name and epoch
    teacher = tmp_path / 'teacher.pth'
    torch.save(
        dict(
            meta=dict(
                experiment_name='dino_bcssl-atto-k9_1xb32-coslr-10e_shapes'
                '_20261124_063000',
                epoch=10),
            state_dict={}), teacher)
    cfg = Config.fromfile(DEMO_DINO_CONFIG)
    cfg.model.backbone.init_cfg.checkpoint = str(teacher)
    assert tool.backbone_init_checkpoint(cfg) == str(teacher)
    assert tool.detector_pretrain(cfg, None) == dict(
        name='dino_bcssl-atto-k9_1xb32-coslr-10e_shapes',
        method='dino',
        backbone='bcssl-atto-k9',
        epochs=10,
        data='shapes',
        checkpoint_epoch=10)

    scratch = Config.fromfile(DEMO_CONFIG)
    assert tool.backbone_init_checkpoint(scratch) is None
    assert tool.detector_pretrain(scratch, None) == {'name': 'random-init'}
    assert tool.detector_pretrain(scratch,
                                  'random_bcssl-atto-k9_init_shapes') == dict(
                                      name='random_bcssl-atto-k9_init_shapes',
                                      method='random',
                                      backbone='bcssl-atto-k9',
                                      data='shapes')


def test_coco_result_keeps_the_coco_metrics(tmp_path):
    cfg = Config(
        dict(test_evaluator=[
            dict(type='CocoMetric', ann_file='val.json'),
            dict(type='DumpDetResults', out_file_path='p.pkl')
        ]))
    path = load_tool('test.py').write_coco_result(
        str(tmp_path), {
            'coco/bbox_mAP': 0.5,
            'coco/segm_mAP_s': -1.0,
            'coco/bbox_mAP_copypaste': '0.500 ...',
            'time': 1.0
        }, {'name': 'random-init'}, 'cfg.py', 'ckpt.pth', cfg)
    result = read_result(path)
    assert path == str(tmp_path / 'coco.result.json')
    assert result['metrics'] == {'coco/bbox_mAP': 0.5, 'coco/segm_mAP_s': -1.0}
    assert result['source']['dataset'] == 'val.json'
