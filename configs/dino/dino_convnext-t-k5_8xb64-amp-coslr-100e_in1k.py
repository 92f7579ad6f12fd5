# Kernel ablation without BN (paper Tables 1 and 2, "without BN" row):
# plain ConvNeXt-T (depthwise conv with bias, no BN) with 5x5 kernels,
# 100-epoch DINO.
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'

model = dict(backbone=dict(kernel_size=5, dw_norm_cfg=None))
