# MoCo v3 pretraining of BC-SSL-T (k9) on ImageNet-1K, 300 epochs: the
# toolkit's own row (nobody has published MoCo v3 on a large-kernel CNN).
# 16 GPUs x 256 images, AMP, SyncBN.
#
# The recipe is MoCo v3's ViT one, unchanged (AdamW lr 1.5e-4 x 4096 / 256,
# wd 0.1, 40 warm-up epochs, momentum 0.99 -> 1, T 0.2, 3-layer projector
# and predictor with a last BN, crop scale (0.08, 1), BYOL's augmentations;
# docs/recipes.md §8), not the ResNet-50 one (LARS, T 1.0), because:
# - ConvNeXt, BC-SSL's base, is trained with AdamW (supervised: lr 4e-3,
#   wd 0.05; BC-SSL's DINO recipe: AdamW too), and its blocks are
#   LayerNorm / layer-scale blocks like a ViT's, with a final LayerNorm
#   before the projector as a ViT's CLS token;
# - MoCo v3 found AdamW and T 0.2 stable for ViTs, and nothing suggests
#   LARS suits layer-scaled ConvNeXt blocks.
# Stochastic depth is off, as in MoCo v3's ViTs (BC-SSL's DINO recipe uses
# 0.1 in the student only).
#
# Train (the data root is the one key to set):
#   tools/dist_train.sh CONFIG 16 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
# Hand-off (the base encoder, what MoCo v3 evaluates and transfers):
#   python tools/model_converters/extract_backbone.py \
#       work_dirs/<this config>/epoch_300.pth \
#       checkpoints/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.pth
_base_ = [
    '../_base_/models/mocov3_bcssl-t-k9.py',
    '../_base_/datasets/imagenet_bs256_mocov3.py',
    '../_base_/schedules/mocov3_adamw_coslr_300e.py',
    '../_base_/default_runtime.py',
]

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
