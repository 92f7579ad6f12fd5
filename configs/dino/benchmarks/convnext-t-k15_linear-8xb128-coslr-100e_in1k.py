# Tables 1 and 2 ("without BN" row, k15): linear probe of the 100-epoch DINO
# ConvNeXt-T (no BN after the depthwise conv, which has a bias) with 15x15
# kernels; the BC-SSL-T k9 config otherwise.
_base_ = './bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/dino_convnext-t-k15_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(
        kernel_size=15, dw_norm_cfg=None, init_cfg=dict(
            checkpoint=pretrained)))
