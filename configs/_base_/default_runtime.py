# mmpretrain's runtime plus what this toolkit adds to every DINO config: the
# import that registers its modules, and a fixed seed.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['bcssl_mm'], allow_failed_imports=False)

randomness = dict(seed=0)
