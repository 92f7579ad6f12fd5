# Linear probe of the SelfPatch BC-SSL-T (k9) teacher on ImageNet-1K: the
# DINO linear protocol of configs/dino/benchmarks/ on the same feature (GAP +
# final norm of the last stage). The backbone also returns the stage-3 map,
# as in pretraining, so that every key of the checkpoint (its stage-3 output
# norm included) is loaded strictly; the head reads the last output only.
_base_ = '../../dino/benchmarks/bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/selfpatch_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(
        out_indices=(2, 3),
        map_indices=(2, ),
        init_cfg=dict(checkpoint=pretrained)))
