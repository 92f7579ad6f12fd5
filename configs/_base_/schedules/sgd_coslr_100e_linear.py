# The linear probe's schedule (paper §4.1; official DINO eval_linear.py):
# SGD momentum 0.9, no weight decay, cosine from the lr to 0 stepped per
# epoch over 100 epochs, validation after every epoch; only the head has
# trainable parameters.
#
# lr: the paper says "a small learning rate of 0.001" and not whether it is
# scaled with the batch. Chosen: official DINO's rule, lr = 0.001 x batch /
# 256, i.e. 0.004 for the 1024 images (8 GPUs x 128) of eval_linear.py's
# defaults. Why: the authors' code is a fork of DINO (docs/recipes.md §1),
# whose eval_linear.py takes --lr 0.001 (its default) and multiplies it by
# batch / 256 itself, so "0.001" in a DINO-derived paper most likely names
# that argument. The other reading, 0.001 unscaled, is one override:
#   --cfg-options optim_wrapper.optimizer.lr=0.001
# With another total batch, tools/train.py --auto-scale-lr keeps the rule
# (lr x real batch / 1024).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='SGD', lr=0.001 * 1024 / 256, momentum=0.9, weight_decay=0.))
auto_scale_lr = dict(base_batch_size=1024)

max_epochs = 100
# no `end`: the Runner ends it at max_epochs, so T_max follows max_epochs
param_scheduler = [
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=0)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# top-1 / top-5 of every epoch; linear.result.json with the last and the
# best epoch's at the end
custom_hooks = [dict(type='LinearProbeResultHook')]
