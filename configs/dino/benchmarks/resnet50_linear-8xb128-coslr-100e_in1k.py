# Table 1 baseline: linear probe of the 100-epoch DINO ResNet-50
# (configs/dino/dino_resnet50_8xb64-amp-coslr-100e_in1k.py). Features: the
# last stage's map, globally average-pooled (the GlobalAveragePooling neck,
# frozen with the backbone), 2048-d, as eval_linear.py's (torchvision's
# avgpool with fc removed). Same schedule as BC-SSL-T; official DINO's
# released ResNet-50 linear log ran at lr 0.3 instead (dino #131): the probe
# of a ResNet wants a far larger lr than 0.004, so compare lrs with
# tools/benchmarks/linear_probe_features.py before spending 100 epochs.
_base_ = './bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/dino_resnet50_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(3, ),
        norm_cfg=dict(type='BN'),
        zero_init_residual=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(in_channels=2048))
