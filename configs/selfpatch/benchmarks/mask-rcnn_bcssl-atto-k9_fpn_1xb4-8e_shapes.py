# Demo: the DINO demo's Mask R-CNN (tiny BC-SSL backbone on the generated
# shapes data, 8 epochs on CPU;
# configs/dino/benchmarks/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py)
# fine-tuned from the teacher of the demo SelfPatch run
# (configs/selfpatch/selfpatch_bcssl-atto-k9_1xb32-coslr-10e_shapes.py), the
# same run in every other value, so that `make demo-selfpatch` compares the
# two pretrainings.
_base_ = '../../dino/benchmarks/mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py'

pretrained = ('work_dirs/selfpatch_bcssl-atto-k9_1xb32-coslr-10e_shapes/'
              'teacher.pth')
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
