# The linear probe's schedule of the MoCo v3 protocol (official MoCo v3
# main_lincls.py, docs/recipes.md §8): DINO's (./sgd_coslr_100e_linear.py:
# SGD momentum 0.9, no weight decay, cosine to 0 stepped per epoch,
# validation every epoch, LinearProbeResultHook) over 90 epochs, with
# main_lincls.py's lr rule, lr = --lr x batch / 256 for a batch of 1024.
#
# lr: main_lincls.py's default --lr 0.1, the ResNet-50 value:
# 0.1 x 1024 / 256 = 0.4. ViT takes --lr 3 (3 x 1024 / 256 = 12); the ViT
# configs set it. With another total batch, tools/train.py --auto-scale-lr
# keeps the rule (lr x real batch / 1024).
_base_ = ['./sgd_coslr_100e_linear.py']

optim_wrapper = dict(optimizer=dict(lr=0.1 * 1024 / 256))
auto_scale_lr = dict(base_batch_size=1024)

max_epochs = 90
train_cfg = dict(max_epochs=max_epochs)
