# DINO (Caron et al. 2021, https://arxiv.org/abs/2104.14294) with a BC-SSL-T
# backbone (ConvNeXt-T with BN after its 9x9 depthwise convs) and official
# DINO's projection head: 3-layer MLP, hidden 2048, bottleneck 256, 65536
# prototypes (docs/recipes.md §2).
out_dim = 65536
model = dict(
    type='DINO',
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
        drop_path_rate=0.1,  # student only; the teacher has none
        out_indices=-1,
        gap_before_final_norm=True),
    neck=dict(
        type='DINONeck',
        in_channels=768,
        out_channels=out_dim,
        hidden_channels=2048,
        bottleneck_channels=256,
        num_layers=3,
        norm_last_layer=False),  # paper: "for stability"
    head=dict(
        type='DINOHead',
        loss=dict(
            type='DINOLoss',
            out_dim=out_dim,
            student_temp=0.1,
            center_momentum=0.9)))
