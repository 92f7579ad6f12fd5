# Table 1 baseline: DINO Swin-T (window 7), 100 epochs, same recipe as the
# BC-SSL config. Features: the normed last-stage map, average-pooled;
# pad_small_map lets the 96-px local crops (3x3 last-stage map) through.
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        arch='tiny',
        img_size=224,
        drop_path_rate=0.1,
        out_indices=(3, ),
        pad_small_map=True),
    neck=dict(in_channels=768))
