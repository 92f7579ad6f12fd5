# Demo: the teacher of the D-MAE-Lite demo, MAE-pretrained first: the
# 'pico' MAE demo (maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py: data,
# schedule, loss) with a larger ViT ('nano': 192 wide, 6 blocks, 12 heads
# of 16 dims; decoder 96 wide, 1 block, 3 heads), as MAE-Base is larger
# than MAE-Tiny.
_base_ = './maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py'

model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=12,
            feedforward_channels=768)),
    neck=dict(embed_dim=192, decoder_embed_dim=96))
