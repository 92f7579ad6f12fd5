# k-NN evaluation data on ImageNet-1K, the DINO protocol (docs/recipes.md
# §3): the train images are the labelled bank, the val images the queries,
# both resized to 256 on the short side (bicubic) and centre-cropped to 224,
# normalised with ImageNet's mean and std. Read by tools/benchmarks/knn_eval.py
# (--dataset imagenet) and by KNNMonitorHook(data=...).

# mmpretrain's ImageNet layout (train/<wnid>/*, val/<wnid>/* or meta/);
# tools/benchmarks/knn_eval.py --data-root replaces it in both splits
knn_data_root = 'data/imagenet/'
knn_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs')
]
knn_data = dict(
    preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    bank=dict(
        type='ImageNet',
        data_root=knn_data_root,
        split='train',
        pipeline=knn_pipeline),
    query=dict(
        type='ImageNet',
        data_root=knn_data_root,
        split='val',
        pipeline=knn_pipeline))
