# MAE pretraining of MAE-Lite's ViT-Tiny on ImageNet-1K with the published
# recipe (docs/recipes.md §10; official wangsr126/mae-lite
# projects/mae_lite/mae_lite_exp.py and its README command): 8 GPUs x 512 =
# 4096 images, 400 epochs, AdamW (0.9, 0.95) lr 1.5e-4 x 4096 / 256, wd 0.05,
# 40 warm-up epochs, mask ratio 0.75, normalised-pixel loss,
# RandomResizedCrop (0.08, 1) + flip, AMP.
#
# Train:
#   tools/dist_train.sh \
#       configs/maelite/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py 8 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
# Hand-off (the encoder, checked strictly against this config):
#   WORK=work_dirs/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k
#   python tools/model_converters/extract_backbone.py $WORK/epoch_400.pth \
#       checkpoints/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.pth \
#       --config configs/maelite/$(basename $WORK).py
# then configs/maelite/benchmarks/ (fine-tuning, linear probe, Mask R-CNN).
_base_ = [
    '../_base_/models/maelite_vit-tiny-p16.py',
    '../_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/schedules/mae_adamw_coslr_400e.py',
    '../_base_/default_runtime.py',
]

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=20, max_keep_ckpts=3))
