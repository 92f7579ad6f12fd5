# Kernel ablation (paper Table 2, "with BN" row; Table 4 middle): BC-SSL-T
# with 5x5 depthwise kernels, 100-epoch DINO.
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'

model = dict(backbone=dict(kernel_size=5))
