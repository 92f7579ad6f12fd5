# MoCo v3 (Chen et al. 2021, https://arxiv.org/abs/2104.02057) with a BC-SSL-T
# backbone (ConvNeXt-T with BN after its 9x9 depthwise convs; pooled: GAP +
# the final LayerNorm) and official MoCo v3's ViT heads and temperature:
# projector 3 layers 4096 -> 256, predictor 2 layers 4096 -> 256, BN after
# every layer, the last one affine-free, T 0.2 (docs/recipes.md §8; why the
# ViT recipe: configs/mocov3/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.py).
temperature = 0.2
model = dict(
    type='BCSSLMoCoV3',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='BCSSLConvNeXt',
        arch='tiny',
        kernel_size=9,
        # one-process / CPU runs: dict(type='BN') (SyncBN needs GPUs)
        dw_norm_cfg=dict(type='SyncBN'),
        # none, as MoCo v3's ViTs (and it would act on the momentum encoder)
        drop_path_rate=0.,
        out_indices=-1,
        gap_before_final_norm=True),
    neck=dict(
        type='NonLinearNeck',
        in_channels=768,
        hid_channels=4096,
        out_channels=256,
        num_layers=3,
        with_bias=False,
        with_last_bn=True,
        with_last_bn_affine=False,
        with_last_bias=False,
        with_avg_pool=False,
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
            with_last_bn=True,
            with_last_bn_affine=False,
            with_last_bias=False,
            with_avg_pool=False,
            norm_cfg=dict(type='SyncBN')),
        loss=dict(type='CrossEntropyLoss'),  # scaled by 2 T in the head
        temperature=temperature))
