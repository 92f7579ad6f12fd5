# Table 4 baseline "300-ep supervised ConvNeXt-T (k7)": the same Mask R-CNN 3x
# recipe with plain ConvNeXt-T (no BN after the depthwise conv, 7x7 kernels),
# initialised from mmpretrain's ImageNet-1k supervised checkpoint, which
# BCSSLConvNeXt(kernel_size=7, dw_norm_cfg=None) loads strictly.
_base_ = './mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py'

pretrained = 'https://download.openmmlab.com/mmclassification/v0/convnext/downstream/convnext-tiny_3rdparty_32xb128-noema_in1k_20220301-795e9634.pth'  # noqa

model = dict(
    backbone=dict(
        kernel_size=7, dw_norm_cfg=None, init_cfg=dict(checkpoint=pretrained)))
