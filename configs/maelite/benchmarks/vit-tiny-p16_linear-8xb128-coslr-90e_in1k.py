# Linear probe on ImageNet-1K of the 400-epoch MAE-Tiny (ViT-Tiny/16, 12
# heads), with the toolkit's MoCo v3 protocol
# (configs/mocov3/benchmarks/vit-s-p16_linear-8xb128-coslr-90e_in1k.py:
# frozen backbone in eval mode, one linear layer N(0, 0.01), SGD momentum
# 0.9, wd 0, batch 1024, cosine over 90 epochs, lr 3 x 1024 / 256 = 12).
# Features: the [CLS] token after the final norm (192-d), the MAE
# linear-probe feature (official MAE main_linprobe.py: --cls_token is the
# default; its timm ViT applies `norm` before taking token 0).
#
# Why this protocol and not the DINO one (100 epochs, lr 0.004): MAE-Lite
# publishes no linear probe, and official MAE's follows MoCo v3 (paper
# App. A.2; main_linprobe.py: 90 epochs, head trunc-normal std 0.01, no
# weight decay, RandomResizedCrop + flip), whose lr rule is made for
# un-normalised ViT features rather than DINO's. It also puts MAE-Tiny on
# the protocol of the MoCo v3 ViT rows.
# Departures from official MAE's probe (kept to the toolkit's protocol so
# that rows compare): no BatchNorm without affine before the linear layer,
# SGD instead of LARS (lr 0.1 x batch / 256), batch 1024 instead of 16384,
# no 10-epoch warm-up, bilinear val resize (main_lincls.py's) instead of
# bicubic.
#
# Train (ENCODER: the encoder of the pretraining run, keys 'backbone.*'):
#   tools/dist_train.sh \
#   configs/maelite/benchmarks/vit-tiny-p16_linear-8xb128-coslr-90e_in1k.py \
#       8 --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth \
#       train_dataloader.dataset.data_root=/data/imagenet/ \
#       val_dataloader.dataset.data_root=/data/imagenet/
# The checkpoint is loaded strictly (LinearProbeClassifier): every key of
# the pretraining encoder, its final norm included, and nothing else.
_base_ = '../../mocov3/benchmarks/vit-s-p16_linear-8xb128-coslr-90e_in1k.py'

# the encoder of the MAE-Tiny pretraining (keys 'backbone.*'), named after
# its config
pretrained = 'checkpoints/maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.pth'
model = dict(
    backbone=dict(
        type='VisionTransformer',
        # the pretraining's MAEViT arch: 12 heads (DeiT-Tiny has 3)
        arch=dict(
            _delete_=True,  # a dict replacing the base's arch name
            embed_dims=192,
            num_layers=12,
            num_heads=12,
            feedforward_channels=192 * 4),
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(checkpoint=pretrained)),
    head=dict(in_channels=192))
