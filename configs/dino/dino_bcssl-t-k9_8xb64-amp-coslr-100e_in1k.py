# DINO pretraining of BC-SSL-T (k9) on ImageNet-1K, 100 epochs: the paper's
# ablation recipe (§3.2, §4.1; docs/recipes.md §2), official DINO's defaults
# otherwise. 8 GPUs x 64 images, AMP, SyncBN after the depthwise convs.
#
# Train (the data root is the one key to set):
#   tools/dist_train.sh \
#       configs/dino/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py 8 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
# Hand-off to Mask R-CNN:
#   python tools/model_converters/extract_backbone.py \
#       work_dirs/<this config>/epoch_100.pth \
#       checkpoints/bcssl-t_dino_teacher.pth
# then configs/dino/benchmarks/mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py
# loads it.
_base_ = [
    '../_base_/models/dino_bcssl-t-k9.py',
    '../_base_/datasets/imagenet_bs64_dino.py',
    '../_base_/schedules/dino_adamw_coslr_100e.py',
    '../_base_/default_runtime.py',
]

optim_wrapper = dict(type='DINOAmpOptimWrapper', loss_scale='dynamic')

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
