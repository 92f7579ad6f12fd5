# Demo, second half of the chain: the shapes Mask R-CNN of
# maskrcnn_bcssl-atto-k9_shapes_demo.py, fine-tuned from the teacher of the
# demo DINO run (configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py,
# extracted with tools/model_converters/extract_dino_backbone.py) instead of
# a random initialisation. Same data, schedule and seed; `make demo` runs the
# whole chain.
_base_ = './maskrcnn_bcssl-atto-k9_shapes_demo.py'

pretrained = 'work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes/teacher.pth'
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True,  # the base has init_cfg=None
            type='Pretrained',
            checkpoint=pretrained,
            prefix='backbone.')))
