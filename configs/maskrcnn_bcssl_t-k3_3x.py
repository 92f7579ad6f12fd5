# The old path of the config below, kept so that commands and configs
# written for it keep working.
_base_ = ('./dino/benchmarks/'
          'mask-rcnn_bcssl-t-k3_fpn_amp-ms-crop-3x_coco.py')
