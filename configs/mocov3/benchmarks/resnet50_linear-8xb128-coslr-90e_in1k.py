# Linear probe of the 100-epoch MoCo v3 ResNet-50 with the MoCo v3 protocol
# (official main_lincls.py; official linear top-1 68.9, docs/recipes.md §8).
# Features: the last stage's map, globally average-pooled (GlobalAveragePooling
# neck, frozen with the backbone), 2048-d, as main_lincls.py's torchvision
# ResNet-50 without its fc. lr: main_lincls.py's ResNet-50 value,
# 0.1 x batch / 256 = 0.1 x 1024 / 256 = 0.4. The BC-SSL-T config
# otherwise (90 epochs, batch 1024, bilinear val resize).
_base_ = './bcssl-t-k9_linear-8xb128-coslr-90e_in1k.py'

pretrained = 'checkpoints/mocov3_resnet50_8xb512-amp-coslr-100e_in1k.pth'
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

optim_wrapper = dict(optimizer=dict(lr=0.1 * 1024 / 256))
