# MoCo v3 pretraining of ViT-S/16 on ImageNet-1K, 300 epochs: official MoCo
# v3's ViT-Small recipe (docs/recipes.md §8; README of
# facebookresearch/moco-v3: linear 73.2), which the BC-SSL-T config runs
# with another backbone: 16 GPUs x 256 = 4096 images, AdamW lr 1.5e-4 x
# 4096 / 256, wd 0.1, 40 warm-up epochs, T 0.2, momentum 0.99 -> 1, crop
# scale (0.08, 1), BYOL's augmentations, AMP, SyncBN in the heads.
# ViT-S as official MoCo v3's vit_small: 384 wide, 12 layers, 12 heads
# (DeiT-S has 6), frozen random patch projection (`stop_grad_conv1`), fixed
# 2-D sin-cos position embedding (mmpretrain's MoCoV3ViT). Features: the
# final-normed CLS token.
#
# Train (the data root is the one key to set):
#   tools/dist_train.sh CONFIG 16 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
# Hand-off (the base encoder):
#   python tools/model_converters/extract_backbone.py \
#       work_dirs/<this config>/epoch_300.pth \
#       checkpoints/mocov3_vit-s-p16_16xb256-amp-coslr-300e_in1k.pth
_base_ = './mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MoCoV3ViT',
        arch='mocov3-small',
        img_size=224,
        patch_size=16,
        stop_grad_conv1=True,
        out_type='cls_token',
        final_norm=True),
    neck=dict(in_channels=384))

# MoCoV3ViT freezes its position embedding in init_weights, which mmengine's
# Runner calls after wrapping the model in DDP: DDP then waits for a gradient
# that never comes unless it looks for unused parameters (mmpretrain's MoCo
# v3 ViT configs set it too)
find_unused_parameters = True
