# Linear probe on ImageNet-1K of a DINO-pretrained BC-SSL-T (k9): paper §4.1,
# Tables 1-3 and the classifier of Table 5; official DINO eval_linear.py's
# recipe otherwise (docs/recipes.md §3, §7). The backbone is frozen (output
# norm included) and in eval mode, its pooled output (GAP, then the final
# norm) feeds one linear layer N(0, 0.01); SGD momentum 0.9, no weight decay,
# lr 0.001 x batch / 256 = 0.004 for 8 GPUs x 128 (the choice and the
# one-line alternative are explained in
# configs/_base_/schedules/sgd_coslr_100e_linear.py), cosine over 100 epochs.
# At the end LinearProbeResultHook writes <work_dir>/linear.result.json with
# the top-1 / top-5 of the last and of the best epoch.
#
# Train (the teacher extracted from the pretraining run, e.g.
#   python tools/model_converters/extract_backbone.py \
#       work_dirs/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k/epoch_100.pth \
#       checkpoints/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.pth):
#   tools/dist_train.sh \
#       configs/dino/benchmarks/bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=TEACHER.pth \
#       train_dataloader.dataset.data_root=/data/imagenet/ \
#       val_dataloader.dataset.data_root=/data/imagenet/
# The checkpoint is loaded strictly: a missing, unexpected or mis-shaped
# backbone key stops the run with the list of them. The result names the
# pretraining run from the checkpoint's meta (extract_backbone.py keeps
# it), else from its file name.
_base_ = [
    '../../_base_/models/linear-probe_bcssl-t-k9.py',
    '../../_base_/datasets/imagenet_bs128_linear.py',
    '../../_base_/schedules/sgd_coslr_100e_linear.py',
    '../../_base_/default_runtime.py',
]

# the teacher backbone of the pretraining run (keys 'backbone.*'), named
# after its config; the 100- and 300-epoch rows differ only here
pretrained = 'checkpoints/dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.pth'
model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
