# Table 1 baseline: linear probe of the 100-epoch DINO Swin-T
# (configs/dino/dino_swin-t_8xb64-amp-coslr-100e_in1k.py). Features: the
# normed last-stage map, globally average-pooled (GlobalAveragePooling neck,
# frozen with the backbone), 768-d, as in pretraining.
_base_ = './bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/dino_swin-t_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        arch='tiny',
        img_size=224,
        out_indices=(3, ),
        pad_small_map=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=768))
