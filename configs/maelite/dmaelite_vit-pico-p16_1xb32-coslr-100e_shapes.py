# Demo: D-MAE-Lite on the shapes images: the 'pico' MAE demo
# (maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py, same data, schedule and
# student) plus attention distillation from the 'nano' ViT MAE-pretrained by
# maelite_vit-nano-p16_1xb32-coslr-100e_shapes.py (its encoder extracted by
# `make demo-maelite`): last-block attention logits, 6 student heads mapped
# to the teacher's 12 by the 1x1 head adapter, MSE weight 1.0.
_base_ = './maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py'

model = dict(
    type='DMAELite',
    teacher=dict(
        type='AttnMAEViT',
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=12,
            feedforward_channels=768),
        img_size=96,
        patch_size=16,
        mask_ratio=0.75,
        out_type='cls_token'),
    teacher_checkpoint=(
        'work_dirs/maelite_vit-nano-p16_1xb32-coslr-100e_shapes/'
        'encoder.pth'),
    attn_loss_weight=1.,
    attn_target='logits',
    head_adapter=True)
