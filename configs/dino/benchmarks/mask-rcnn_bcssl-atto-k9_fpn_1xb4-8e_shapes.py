# Demo: Mask R-CNN with a tiny BC-SSL backbone (ConvNeXt 'atto' widths, k9,
# BN) fine-tuned on the generated shapes data (tools/data/make_shapes_coco.py:
# 256-px images, circles / squares / triangles), on CPU in a few minutes,
# from the teacher of the demo DINO run
# (configs/dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py, extracted with
# tools/model_converters/extract_backbone.py); `make demo` runs the whole
# chain. It inherits the headline T config, so it runs the same layer-decay
# optimizer, RNG-state hook and custom imports; it overrides the widths
# (64-channel FPN and heads), the checkpoint, the data, the schedule and the
# plain (non-AMP) optimizer wrapper.
# mask-rcnn_bcssl-atto-k9-scratch_fpn_1xb4-8e_shapes.py is the same run from a
# random initialisation.
_base_ = './mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py'

data_root = 'data/shapes/'
classes = ('circle', 'square', 'triangle')
metainfo = dict(
    classes=classes, palette=[(220, 20, 60), (0, 128, 255), (0, 200, 80)])
img_scale = (256, 256)
width = 64
pretrained = 'work_dirs/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes/teacher.pth'

model = dict(
    backbone=dict(
        arch='atto',
        dw_norm_cfg=dict(type='BN'),
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[40, 80, 160, 320], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(
            in_channels=width, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(
            in_channels=width,
            conv_out_channels=width,
            num_classes=len(classes))),
    # fewer proposals and RoI samples than COCO's: a few objects per image
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=300), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# num_workers=0: data is tiny, and main-process loading keeps resume exact
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min_ratio=0.01,
        begin=0,
        end=max_epochs,
        by_epoch=True)
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=1e-3),
    clip_grad=dict(max_norm=10.0))

default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=4)
