# Table 3 (and its 300-epoch BC-SSL-S row): linear probe of the DINO BC-SSL-S
# (k9; ConvNeXt-S depths 3-3-27-3); the BC-SSL-T k9 config otherwise.
_base_ = './bcssl-t-k9_linear-8xb128-coslr-100e_in1k.py'

pretrained = 'checkpoints/dino_bcssl-s-k9_8xb64-amp-coslr-300e_in1k.pth'
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
