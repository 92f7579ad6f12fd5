# D-MAE-Lite: the MAE-Lite ViT-Tiny recipe
# (maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py) plus attention
# distillation from a frozen MAE-Base encoder (docs/recipes.md §10; official
# projects/mae_lite/mae_lite_distill_exp.py): the teacher sees the same
# visible patches, in the same order; the student's last-block attention
# (12 heads), through a 1x1-conv head adapter, is matched to the teacher's
# last-block attention (12 heads) by MSE, weight 1.0, beside the student's
# MAE loss. Matched are the pre-softmax logits Q K^T / sqrt(d), as official
# (its hook sits before the softmax); model.attn_target='probs' matches the
# attention probabilities instead.
#
# The teacher: official MAE's ViT-B encoder (mae_pretrain_vit_base.pth; the
# paper distils from a 1600-epoch MAE-Base), converted first:
#   python tools/model_converters/mae_to_mmpretrain.py \
#       mae_pretrain_vit_base.pth checkpoints/mae_pretrain_vit-base-p16.pth
# Train:
#   tools/dist_train.sh \
#       configs/maelite/dmaelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py 8 \
#       --cfg-options train_dataloader.dataset.data_root=/data/imagenet/
_base_ = './maelite_vit-tiny-p16_8xb512-amp-coslr-400e_in1k.py'

model = dict(
    type='DMAELite',
    teacher=dict(
        type='AttnMAEViT',
        arch='b',
        img_size=224,
        patch_size=16,
        mask_ratio=0.75,
        out_type='cls_token'),
    teacher_checkpoint='checkpoints/mae_pretrain_vit-base-p16.pth',
    attn_loss_weight=1.,
    student_layer=-1,
    teacher_layer=-1,
    attn_target='logits',
    head_adapter=True)
