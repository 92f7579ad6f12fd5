# k-NN evaluation data of the demo: the generated shapes' classification
# split (tools/data/make_shapes_coco.py: cls/train 300 and cls/val 150 images
# of 112 px, classes circle / square / triangle), at the demo's 96-px scale:
# the 256 -> 224 protocol scaled by 96 / 224 (resize 110 on the short side,
# bicubic, centre crop 96), ImageNet's mean and std. Any folder of class
# sub-folders works the same way through CustomDataset.
knn_data_root = 'data/shapes/cls/'
knn_pipeline = [
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
knn_data = dict(
    preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    bank=dict(
        type='CustomDataset',
        data_root=knn_data_root,
        data_prefix='train/',
        pipeline=knn_pipeline),
    query=dict(
        type='CustomDataset',
        data_root=knn_data_root,
        data_prefix='val/',
        pipeline=knn_pipeline))
