# Linear probe on ImageNet-1K of a MoCo v3-pretrained BC-SSL-T (k9), with
# the MoCo v3 protocol (official main_lincls.py, docs/recipes.md §8): the
# frozen backbone in eval mode and one linear layer N(0, 0.01) on its pooled
# output (GAP, then the final norm), as in the DINO probe
# (configs/dino/benchmarks/bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py);
# SGD momentum 0.9, weight decay 0, batch 1024 (8 GPUs x 128), cosine over
# 90 epochs (configs/_base_/schedules/sgd_coslr_90e_linear.py); train
# RandomResizedCrop 224 + flip, val Resize 256 + CenterCrop 224.
#
# lr: nobody has published MoCo v3 on a large-kernel CNN, so there is no
# official value. Chosen: the ViT one, lr = 3 x batch / 256 = 12, not
# ResNet-50's 0.1 x batch / 256 = 0.4. Why: the feature the probe sees
# leaves BC-SSL as it leaves ViT, through a final LayerNorm (ResNet-50's is
# an un-normalised average of ReLU outputs), and the lr a linear probe needs
# follows the scale of its input feature; BC-SSL, like ViT and unlike
# ResNet-50, is also pretrained with AdamW rather than LARS.
# Not measured: before 90 epochs, compare lrs on cached
# features in minutes (tools/benchmarks/linear_probe_features.py
# --lrs 0.4 1 4 12 on knn_eval.py --dump-features' output). The ResNet
# value is one override: --cfg-options optim_wrapper.optimizer.lr=0.4
#
# Train (the base encoder extracted from the pretraining run, e.g.
#   python tools/model_converters/extract_backbone.py \
#       work_dirs/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k/epoch_300.pth \
#       checkpoints/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.pth):
#   tools/dist_train.sh \
#       configs/mocov3/benchmarks/bcssl-t-k9_linear-8xb128-coslr-90e_in1k.py \
#       8 --cfg-options model.backbone.init_cfg.checkpoint=BASE.pth \
#       train_dataloader.dataset.data_root=/data/imagenet/ \
#       val_dataloader.dataset.data_root=/data/imagenet/
# The checkpoint is loaded strictly (the error lists every mismatched key);
# the result is named after the pretraining run kept in its meta.
_base_ = [
    '../../_base_/models/linear-probe_bcssl-t-k9.py',
    '../../_base_/datasets/imagenet_bs128_linear.py',
    '../../_base_/schedules/sgd_coslr_90e_linear.py',
    '../../_base_/default_runtime.py',
]

# the base encoder of the pretraining run (keys 'backbone.*', written by
# extract_backbone.py's default --part base), named after its config
pretrained = 'checkpoints/mocov3_bcssl-t-k9_16xb256-amp-coslr-300e_in1k.pth'
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

optim_wrapper = dict(optimizer=dict(lr=3 * 1024 / 256))

# NOTE: main_lincls.py resizes val images with torchvision's default,
# bilinear; the DINO protocol's base dataset, with bicubic (eval_linear.py)
test_pipeline = _base_.test_pipeline
test_pipeline[1].interpolation = 'bilinear'
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
