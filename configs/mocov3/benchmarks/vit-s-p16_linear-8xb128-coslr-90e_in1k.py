# Linear probe of the 300-epoch MoCo v3 ViT-S/16 with the MoCo v3 protocol
# (official main_lincls.py; official linear top-1 73.2, docs/recipes.md §8).
# Backbone: the pretraining's, mmpretrain's MoCoV3ViT 'mocov3-small' (384-d,
# 12 heads as MoCo v3's ViT-S; the DINO probe's DeiT-S has 6 heads, loads
# the same keys and computes something else). Features: the [CLS] token
# after the final norm (384-d), as main_lincls.py's timm ViT. lr:
# main_lincls.py's ViT value, 3 x batch / 256 = 3 x 1024 / 256 = 12. The
# BC-SSL-T config otherwise (90 epochs, batch 1024, bilinear val resize).
_base_ = './bcssl-t-k9_linear-8xb128-coslr-90e_in1k.py'

pretrained = 'checkpoints/mocov3_vit-s-p16_16xb256-amp-coslr-300e_in1k.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='MoCoV3ViT',
        arch='mocov3-small',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(in_channels=384))

optim_wrapper = dict(optimizer=dict(lr=3 * 1024 / 256))
