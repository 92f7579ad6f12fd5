# DINO pretraining of Swin-T, 300 epochs: the backbone of paper Table 3's
# "DINO Swin-T" row and Table 4's "300-ep DINO Swin-T" Mask R-CNN row
# (configs/dino/benchmarks/mask-rcnn_swin-t-p4-w7_fpn_amp-ms-crop-3x_coco.py
# loads its teacher). Only the schedule length differs from the 100-epoch
# config (its lr and weight-decay schedules run to the end of training).
_base_ = './dino_swin-t_8xb64-amp-coslr-100e_in1k.py'

train_cfg = dict(max_epochs=300)
