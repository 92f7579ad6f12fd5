# Baseline of the demo's comparison: the shapes Mask R-CNN of
# mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py trained from a random
# initialisation instead of the demo DINO teacher. Same data, schedule and
# seed (`make demo-random-init`).
_base_ = './mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py'

pretrained = None
model = dict(backbone=dict(init_cfg=None))
