"""Bad COCO annotation files are refused up front, naming the file, the
annotation id and the image."""
import json

import pytest
from mmengine.config import Config

from bcssl_mm.datasets import (AnnotationError, check_coco_file,
                               check_config_annotations)


def _coco(**ann_changes):
    ann = dict(
        id=7,
        image_id=1,
        category_id=1,
        bbox=[10, 10, 20, 20],
        area=400,
        iscrowd=0,
        segmentation=[[10, 10, 30, 10, 30, 30, 10, 30]])
    ann.update(ann_changes)
    return dict(
        images=[dict(id=1, file_name='000001.png', width=64, height=64)],
        categories=[dict(id=1, name='square')],
        annotations=[ann])


def _write(tmp_path, data, name='ann.json'):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_good_file_passes(tmp_path):
    counts = check_coco_file(_write(tmp_path, _coco()))
    assert counts == dict(images=1, annotations=1, categories=1)


@pytest.mark.parametrize('change, message', [
    (dict(category_id=5), 'category_id 5 is not one of'),
    (dict(bbox=[10, 10, -3, 20]), 'negative width'),
    (dict(segmentation=[[10, 10, 30, 10]]), 'polygon 0 has 2 point'),
    (dict(image_id=9), 'image_id is not in "images"'),
])
def test_bad_annotation_names_file_id_and_image(tmp_path, change, message):
    path = _write(tmp_path, _coco(**change))
    with pytest.raises(AnnotationError) as e:
        check_coco_file(path)
    msg = str(e.value)
    assert path in msg and 'annotation id 7' in msg and message in msg
    if 'image_id' not in change:
        assert '000001.png' in msg


def test_empty_and_malformed_files(tmp_path):
    data = _coco()
    data['annotations'] = []
    path = _write(tmp_path, data)
    with pytest.raises(AnnotationError, match='no annotations'):
        check_coco_file(path)
    assert check_coco_file(path, require_annotations=False)['images'] == 1
    bad = _write(tmp_path, '{"images": [', 'broken.json')
    with pytest.raises(AnnotationError, match=r'broken.json: not valid JSON'):
        check_coco_file(bad)


def test_config_files_are_found_through_wrappers(tmp_path):
    good = _write(tmp_path, _coco(), 'train.json')
    bad = _write(tmp_path, _coco(category_id=3), 'val.json')
    cfg = Config(
        dict(
            train_dataloader=dict(
                dataset=dict(
                    type='RepeatDataset',
                    times=2,
                    dataset=dict(
                        type='CocoDataset',
                        data_root=str(tmp_path),
                        ann_file='train.json'))),
            val_dataloader=dict(
                dataset=dict(
                    type='CocoDataset',
                    data_root=str(tmp_path) + '/',
                    ann_file='val.json')),
            val_evaluator=dict(type='CocoMetric', ann_file=bad)))
    check_config_annotations(cfg, splits=('train', ))
    with pytest.raises(AnnotationError) as e:
        check_config_annotations(cfg)
    assert 'val_dataloader.dataset.ann_file' in str(e.value)
    assert good not in str(e.value)
