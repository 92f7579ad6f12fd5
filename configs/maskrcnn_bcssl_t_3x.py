# The old path of the config below, kept because users call it:
#   tools/dist_train.sh configs/maskrcnn_bcssl_t_3x.py 8
# trains exactly that config (in work_dirs/maskrcnn_bcssl_t_3x/).
_base_ = ('./dino/benchmarks/'
          'mask-rcnn_bcssl-t-k9_fpn_amp-ms-crop-3x_coco.py')
