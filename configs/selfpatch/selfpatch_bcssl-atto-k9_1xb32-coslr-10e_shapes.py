# Demo: SelfPatch pretraining of the tiny BC-SSL ('atto', k9, BN) on the
# generated shapes images, beside the DINO demo: the DINO demo's run
# (configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py: the same data,
# crops, schedule, hooks, image head and budget) plus SelfPatch's patch loss
# on the stage-3 map (160 wide; 6 x 6 at the 96-px global crops, 3 x 3 at the
# 48-px local crops), set up as the BC-SSL-T config
# (configs/_base_/models/selfpatch_bcssl-t-k9.py) with the patch head scaled
# down like the demo's image head (256 prototypes). `make demo-selfpatch`
# runs it, then k-NN, Mask R-CNN and the collector's table.
_base_ = '../dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py'

model = dict(
    type='SelfPatch',
    backbone=dict(out_indices=(2, 3), map_indices=(2, )),
    patch_index=0,
    image_token='backbone',
    student_patches='class_attention',
    patch_loss_weight=0.1,
    aggregator=dict(type='SelfPatchAggregator', embed_dims=160, num_heads=4),
    patch_neck=dict(
        type='DINONeck',
        in_channels=160,
        out_channels=256,
        hidden_channels=512,
        bottleneck_channels=128),
    patch_head=dict(
        type='PatchDINOHead', loss=dict(type='PatchDINOLoss', out_dim=256)))
