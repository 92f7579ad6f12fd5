# The shapes classification split (tools/data/make_shapes_coco.py:
# cls/{train,val}/{circle,square,triangle}/*.png, 112 px, 300 train / 150
# val) with labels, for the CPU linear-probe demo: the ImageNet pipelines
# scaled to the demo's 96-px pretraining crops, RandomResizedCrop 96 + flip
# for training, Resize 110 (= 96 x 256 / 224, short side, bicubic) +
# CenterCrop 96 for validation. 64 images per batch.
data_root = 'data/shapes/cls/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=96,
        backend='pillow',
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=110,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=96),
    dict(type='PackInputs')
]
# num_workers=0: the images are tiny; loading in the main process is faster
# than starting workers on 2 cores
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train/',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val/',
        pipeline=test_pipeline))
# 3 classes: top-1 only (top-5 needs 5 classes)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
