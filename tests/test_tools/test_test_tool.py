"""tools/test.py's table and its refusal of an empty ground truth."""
import json
import sys

import pytest
import torch

from conftest import DEMO_CONFIG, demo_cfg_options, load_tool, run_tool


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
