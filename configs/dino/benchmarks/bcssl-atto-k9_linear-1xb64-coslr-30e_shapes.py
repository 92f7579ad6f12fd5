# Demo: linear probe of the teacher of the demo DINO run
# (configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py, extracted by
# `make demo` to work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes/
# teacher.pth) on the shapes classification split, on CPU in about a
# minute. Everything but the backbone's weights is the random-init
# baseline's (bcssl-atto-k9-random_linear-1xb64-coslr-30e_shapes.py, whose
# comment gives the scaled-down recipe); the result is named after the DINO
# run, read from the checkpoint.
_base_ = './bcssl-atto-k9-random_linear-1xb64-coslr-30e_shapes.py'

pretrained = 'work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes/teacher.pth'
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))
custom_hooks = [dict(type='LinearProbeResultHook')]
