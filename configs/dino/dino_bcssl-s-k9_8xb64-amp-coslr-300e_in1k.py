# DINO pretraining of BC-SSL-S (k9, depths 3-3-27-3 like Swin-S), 300
# epochs: paper Table 3.
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-300e_in1k.py'

model = dict(backbone=dict(arch='small'))
