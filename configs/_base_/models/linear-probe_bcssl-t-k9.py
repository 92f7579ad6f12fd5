# Linear probe (paper §4.1; official DINO's eval_linear.py, docs/recipes.md
# §7) of a BC-SSL-T (k9) backbone: the backbone frozen in eval mode
# (LinearProbeClassifier: every backbone parameter, the output norm
# included, has requires_grad=False and BN keeps its running statistics),
# pooled as its own output (global average pool, then the final norm), and
# one linear layer initialised N(0, 0.01), bias 0, as official DINO's.
model = dict(
    type='LinearProbeClassifier',
    data_preprocessor=dict(
        num_classes=1000,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='BCSSLConvNeXt',
        arch='tiny',
        kernel_size=9,
        # frozen and in eval mode: plain BN (pretraining's SyncBN has the
        # same keys), no drop path
        dw_norm_cfg=dict(type='BN'),
        drop_path_rate=0.,
        out_indices=-1,
        gap_before_final_norm=True),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
        init_cfg=dict(type='Normal', layer='Linear', std=0.01, bias=0.)))
