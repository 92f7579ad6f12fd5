# SelfPatch (Yun et al. 2022, https://arxiv.org/abs/2206.07990;
# docs/recipes.md §9) on the DINO model of BC-SSL-T (k9): DINO's backbone,
# 65536-d image head and loss, plus SelfPatch's parts: 2 class-attention
# blocks that aggregate each patch's 4 most similar of its 8 neighbours (the
# teacher's patch targets), a 4096-d patch head with its own center, and the
# patch loss with weight 0.1.
#
# The patch tokens are the stage-3 map (stride 16, 384 wide): 14 x 14 at 224
# px and 6 x 6 at 96 px, the ViT/16 grids (the last stage's 7 x 7 and 3 x 3
# are too coarse). The last stage still runs: its GAP + final norm is the
# image-level token (image_token='backbone', the feature that DINO, k-NN and
# the linear probe use), so all four stages are trained and transfer. The
# class-attention blocks then pool nothing for the image loss, so the
# student's patches go through them too (student_patches='class_attention':
# each patch pooled alone; the teacher pools its neighbours), which trains
# them (SelfPatch refuses the combination that would leave them at their
# init). The ViT's scheme, image_token='class_attention' with
# student_patches='norm', pools the image token from the stage-3 map
# instead, and the last stage then gets no gradient (multi-GPU runs of it
# need model_wrapper_cfg=dict(type='MMDistributedDataParallel',
# find_unused_parameters=True)).
_base_ = './dino_bcssl-t-k9.py'

model = dict(
    type='SelfPatch',
    backbone=dict(out_indices=(2, 3), map_indices=(2, )),
    patch_index=0,  # the stage-3 map
    image_token='backbone',
    student_patches='class_attention',
    patch_loss_weight=0.1,
    aggregator=dict(
        type='SelfPatchAggregator',
        embed_dims=384,
        num_heads=6,
        num_blocks=2,
        num_neighbours=4,
        # border patches have fewer neighbours; official SelfPatch wraps
        # around the border (wrap_around=True; see SelfPatchAggregator)
        wrap_around=False),
    patch_neck=dict(
        type='DINONeck',
        in_channels=384,
        out_channels=4096,
        hidden_channels=2048,
        bottleneck_channels=256,
        num_layers=3,
        norm_last_layer=False),  # as the image head of the DINO recipe
    patch_head=dict(
        type='PatchDINOHead',
        loss=dict(
            type='PatchDINOLoss',
            out_dim=4096,
            student_temp=0.1,
            center_momentum=0.9)))
