# DINO pretraining of BC-SSL-T (k9), 300 epochs: paper Tables 3, 4 (bottom)
# and 5 (bottom). Only the schedule length differs from the 100-epoch config
# (its lr and weight-decay schedules run to the end of training).
_base_ = './dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k.py'

train_cfg = dict(max_epochs=300)
