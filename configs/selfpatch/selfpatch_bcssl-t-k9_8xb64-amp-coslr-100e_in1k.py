# SelfPatch on BC-SSL-T (k9): the toolkit's DINO 100-epoch recipe
# (configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py: batch 8 x 64,
# DINO's crops, lr 0.0005 x 512 / 256, teacher temperature 0.04 -> 0.07 over
# 30 epochs, norm_last_layer False, SyncBN, AMP) plus SelfPatch's patch loss
# on the stage-3 map (configs/_base_/models/selfpatch_bcssl-t-k9.py says how
# the CNN's tokens are chosen).
#
# Train:
#   tools/dist_train.sh \
#       configs/selfpatch/selfpatch_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py 8 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
# Hand-off (the teacher's backbone, checked strictly against this config):
#   WORK=work_dirs/selfpatch_bcssl-t-k9_8xb64-amp-coslr-100e_in1k
#   python tools/model_converters/extract_backbone.py \
#       $WORK/epoch_100.pth \
#       checkpoints/selfpatch_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.pth \
#       --config configs/selfpatch/$(basename $WORK).py
# then configs/selfpatch/benchmarks/ (Mask R-CNN, linear probe) load it.
_base_ = [
    '../_base_/models/selfpatch_bcssl-t-k9.py',
    '../_base_/datasets/imagenet_bs64_dino.py',
    '../_base_/schedules/dino_adamw_coslr_100e.py',
    '../_base_/default_runtime.py',
]

optim_wrapper = dict(type='DINOAmpOptimWrapper', loss_scale='dynamic')

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
