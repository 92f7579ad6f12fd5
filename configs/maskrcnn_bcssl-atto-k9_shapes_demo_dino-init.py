# The old path of the config below, kept so that commands and configs
# written for it keep working.
_base_ = ('./dino/benchmarks/'
          'mask-rcnn_bcssl-atto-k9_fpn_1xb4-8e_shapes.py')
