# Table 1 baseline: DINO ViT-S/16 (DeiT-S: 384 wide, 12 layers, 6 heads),
# 100 epochs, official DINO's ViT-S recipe (same as the BC-SSL config).
# Features: the final-normed [CLS] token; local crops interpolate the
# position embedding.
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='deit-small',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='cls_token',
        final_norm=True),
    neck=dict(in_channels=384))
