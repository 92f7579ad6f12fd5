# Table 2 ("with BN" row, k5): linear probe of the 100-epoch DINO BC-SSL-T
# with 5x5 depthwise kernels; the k9 config otherwise.
_base_ = './bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/dino_bcssl-t-k5_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(kernel_size=5, init_cfg=dict(checkpoint=pretrained)))
