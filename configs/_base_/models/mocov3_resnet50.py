# MoCo v3 (Chen et al. 2021, https://arxiv.org/abs/2104.02057) with ResNet-50
# (torchvision layout, SyncBN, no zero-init of the last BN of a block, as
# official MoCo v3) and official MoCo v3's ResNet heads: projector 2 layers
# 2048 -> 4096 -> 256, predictor 2 layers 256 -> 4096 -> 256, BN after the
# hidden layers and, in the projector, an affine-free last BN
# (docs/recipes.md §8); T 1.0.
temperature = 1.0
model = dict(
    type='BCSSLMoCoV3',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        norm_cfg=dict(type='SyncBN'),
        zero_init_residual=False),
    neck=dict(
        type='NonLinearNeck',
        in_channels=2048,
        hid_channels=4096,
        out_channels=256,
        num_layers=2,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_last_bias=False,
        with_avg_pool=False,  # BCSSLMoCoV3 pools the backbone output
        norm_cfg=dict(type='SyncBN')),
    head=dict(
        type='BCSSLMoCoV3Head',
        predictor=dict(
            type='NonLinearNeck',
            in_channels=256,
            hid_channels=4096,
            out_channels=256,
            num_layers=2,
            with_bias=False,
            with_last_bn=False,
            with_last_bn_affine=False,
            with_last_bias=False,
            with_avg_pool=False,
            norm_cfg=dict(type='SyncBN')),
        loss=dict(type='CrossEntropyLoss'),  # scaled by 2 T in the head
        temperature=temperature))
