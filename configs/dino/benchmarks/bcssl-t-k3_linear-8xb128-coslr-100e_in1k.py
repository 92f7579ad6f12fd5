# Table 2 ("with BN" row, k3): linear probe of the 100-epoch DINO BC-SSL-T
# with 3x3 depthwise kernels; the k9 config otherwise.
_base_ = './bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/dino_bcssl-t-k3_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(kernel_size=3, init_cfg=dict(checkpoint=pretrained)))
