# Mask R-CNN on COCO from a self-supervised ViT-S/16 (the MoCo v3 base encoder
# by default), with ViTDet's simple feature pyramid. Recipe: ViTDet (Li et al.
# 2022, https://arxiv.org/abs/2203.16527, §3 and Appendix A.2; its ViT-B
# Mask R-CNN config, detectron2
# projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py), on mmdet's
# 100-epoch large-scale-jitter base (mmdet::common/lsj-100e_coco-instance.py):
# - input: large-scale jitter, 1024 x 1024 crops of images resized by a
#   factor in [0.1, 2.0], flip, padded to 1024 x 1024; test: longer side
#   1024, padded to 1024 x 1024 (the training grid, see data_preprocessor);
# - backbone: drop path 0.1; neck: 4 levels (strides 4-32) from the last
#   stride-16 map plus P6, LayerNorm after its convs; RPN with 2 convs;
#   box head 4 convs + 1 fc and mask head with LayerNorm (ViTDet's heads);
# - AdamW lr 1e-4, betas (0.9, 0.999), wd 0.1 (none on norms and position
#   embedding), layer-wise lr decay 0.7, AMP, batch 64 = 8 GPUs x 8;
# - 100 epochs = 25 epochs of RepeatDataset(times=4) (mmdet's base); lr
#   x0.1 after 88 and 96 epochs (milestones 22 and 24 of 25; ViTDet: after
#   iterations 163889 and 177546 of 184375 = 100 epochs x 118000 / 64, i.e.
#   after 88.9 and 96.3 epochs);
#   warm-up 250 iterations from 0.001 x lr (ViTDet's).
# Departures from ViTDet, and why:
# - global attention in all 12 blocks: mmpretrain's VisionTransformer (the
#   pretraining class, whose keys the checkpoint has) has no windowed
#   attention, nor ViTDet's relative position biases (ViTDet: 14 x 14
#   windows in 8 of the 12 blocks, global in 4); all-global costs more
#   memory and compute at 1024 px (4096 tokens per image);
# - the class token and the final LayerNorm of the pretrained backbone are
#   kept: every checkpoint key is loaded (strictly), and the last block's
#   output passes through that norm before the pyramid;
# - the backbone keeps img_size=224 (a 14 x 14 position-embedding grid, the
#   checkpoint's shape, which strict loading checks); mmpretrain resizes the
#   embedding bicubically to the 64 x 64 grid of a 1024 input at every
#   forward instead of once at loading.
#
# Train:
#   tools/dist_train.sh CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=ENCODER.pth
# The checkpoint is loaded strictly: missing, unexpected or mis-shaped backbone
# keys stop the run with a list of them.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py',
]

custom_imports = dict(
    imports=['mmpretrain.models', 'bcssl_mm'], allow_failed_imports=False)

# the one key to override: a backbone checkpoint (keys 'backbone.*', from
# tools/model_converters; MoCo v3: the base encoder)
pretrained = 'checkpoints/mocov3_vit-s-p16_16xb256-amp-coslr-300e_in1k.pth'

image_size = (1024, 1024)
# ViTDet's "LN": a LayerNorm over the channels of each position
norm_cfg = dict(type='mmpretrain.LN2d', eps=1e-6)
model = dict(
    data_preprocessor=dict(
        # every batch, training or test, becomes 1024 x 1024 (the images are
        # at most that after the crop / the test resize), padded with 0
        # after normalisation (the pixel mean), as ViTDet's: the position
        # embedding is then resized to the same 64 x 64 grid at test time as
        # in training
        pad_size_divisor=1024,
        # mmdet's LSJ configs pad the ground-truth masks too
        batch_augments=[
            dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)
        ]),
    backbone=dict(
        _delete_=True,
        type='StrictVisionTransformer',
        # ViT-S/16 as official MoCo v3's vit_small (mmpretrain 'mocov3-small'):
        # 12 heads. DeiT-S and DINO's ViT-S have 6 heads and the same
        # parameter shapes, so the checkpoint cannot tell: for a DINO ViT-S
        # teacher set model.backbone.arch='deit-small'.
        arch=dict(
            embed_dims=384,
            num_layers=12,
            num_heads=12,
            feedforward_channels=384 * 4),
        img_size=224,  # the checkpoint's grid, see the header
        patch_size=16,
        drop_path_rate=0.1,
        out_type='featmap',
        out_indices=-1,  # the last block: (N, 384, H / 16, W / 16)
        final_norm=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        _delete_=True,
        type='SimpleFeaturePyramid',
        in_channels=384,
        out_channels=256,
        scale_factors=(4., 2., 1., .5),  # strides 4, 8, 16, 32
        num_outs=5,  # + P6 (stride 64) for the RPN
        norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',
            conv_out_channels=256,
            norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

train_dataloader = dict(batch_size=8, num_workers=4)  # x 8 GPUs = 64

# test: longer side 1024 (ViTDet's), padded by the data preprocessor
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='AmpOptimWrapper',
    # mmpretrain's layer-wise decay through the detector's backbone:
    # patch embedding, class token and position embedding x 0.7 ** 13,
    # block i x 0.7 ** (12 - i), the final norm, neck and heads x 1
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.999),
        weight_decay=0.1),
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        norm_decay_mult=0.,
        custom_keys={
            '.pos_embed': dict(decay_mult=0.),
            '.cls_token': dict(decay_mult=0.)
        }))

param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(
        type='MultiStepLR',
        begin=0,
        end=25,
        by_epoch=True,
        milestones=[22, 24],
        gamma=0.1)
]

# exact resume: RNG states go into checkpoints
custom_hooks = [dict(type='RNGStateHook')]

# lr 1e-4 is for 64 images (8 GPUs x 8); --auto-scale-lr rescales it to the
# real batch
auto_scale_lr = dict(enable=False, base_batch_size=64)
