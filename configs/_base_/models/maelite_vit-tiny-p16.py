# MAE (He et al. 2022, https://arxiv.org/abs/2111.06377) of MAE-Lite's
# ViT-Tiny (Wang et al. 2023, https://arxiv.org/abs/2205.10063;
# docs/recipes.md §10): 192 wide, 12 blocks, 12 heads (DeiT-Tiny has 3),
# qkv bias, LayerNorm eps 1e-6, fixed sin-cos position embedding; decoder 96
# wide, 1 block, 3 heads; 75% of the patches masked; the loss is the MSE on
# the normalised pixels of the masked patches. The encoder is the toolkit's
# AttnMAEViT (mmpretrain's MAEViT with a shareable mask and attention maps on
# request, for D-MAE-Lite); in eval mode it encodes the whole image and
# returns the final-normed class token (out_type='cls_token'), the feature
# k-NN and the linear probe read.
model = dict(
    type='MAE',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='AttnMAEViT',
        arch=dict(
            embed_dims=192,
            num_layers=12,
            num_heads=12,
            feedforward_channels=768),
        img_size=224,
        patch_size=16,
        mask_ratio=0.75,
        out_type='cls_token'),
    neck=dict(
        type='MAEPretrainDecoder',
        num_patches=196,
        patch_size=16,
        in_chans=3,
        embed_dim=192,
        decoder_embed_dim=96,
        decoder_depth=1,
        decoder_num_heads=3,
        mlp_ratio=4.),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,
        patch_size=16,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    # official MAE / MAE-Lite: Xavier-uniform linear layers, unit LayerNorms
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])
