# DINO pretraining of BC-SSL-T (k9), 300 epochs: paper Tables 3, 4 (bottom)
# and 5 (bottom). Only the schedule length differs from the 100-epoch config.
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'

max_epochs = 300
warmup_epochs = 10
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-9,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=1e-6,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingWeightDecay',
        T_max=max_epochs,
        eta_min=0.4,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
