"""What can be checked in a config is checked before a run starts."""
import pytest
from mmengine.config import Config

from bcssl_mm.utils.config_check import (ConfigError, ConfigWarning,
                                         check_cfg_options, check_config,
                                         check_hook_args,
                                         check_param_schedulers,
                                         check_top_level_keys)


def _cfg(**kwargs) -> Config:
    base = dict(
        default_scope='mmdet',
        load_from=None,
        data_root='data/',
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=5),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=50)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=1e-3, begin=0, end=2),
            dict(type='CosineAnnealingLR', begin=2, eta_min=0.)
        ])
    base.update(kwargs)
    return Config(base)


def test_misspelt_runner_key_is_refused():
    check_top_level_keys(_cfg(), 'c.py')  # data_root etc. are fine
    with pytest.raises(ConfigError, match="'load_form'.*'load_from'"):
        check_top_level_keys(_cfg(load_form='x.pth'), 'c.py')


def test_misspelt_hook_argument_is_refused_before_training():
    cfg = _cfg()
    check_hook_args(cfg)
    cfg.default_hooks.checkpoint.intreval = 1
    with pytest.raises(ConfigError) as e:
        check_hook_args(cfg)
    assert 'default_hooks.checkpoint.intreval' in str(e.value)
    assert "'interval'" in str(e.value)
    # keyword arguments CheckpointHook passes on to save_checkpoint are fine
    cfg = _cfg()
    cfg.default_hooks.checkpoint.save_optimizer = False
    check_hook_args(cfg)
    cfg.default_hooks.logger.intervl = 1
    with pytest.raises(ConfigError, match='LoggerHook has no argument'):
        check_hook_args(cfg)


def test_unread_cfg_options_warn():
    cfg = _cfg()
    with pytest.warns(ConfigWarning, match="no key 'max_epoch'.*max_epochs"):
        check_cfg_options(cfg, {'train_cfg.max_epoch': 3})
    with pytest.warns(ConfigWarning, match="'lod_from'"):
        check_cfg_options(cfg, {'lod_from': 'x.pth'})
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert check_cfg_options(
            cfg, {
                'train_cfg.max_epochs': 3,
                'param_scheduler.1.eta_min': 1e-6,
                'resume': True
            }) == []


def test_schedule_past_the_run_names_the_keys():
    cfg = _cfg(train_cfg=dict(max_epochs=2))
    with pytest.raises(ConfigError) as e:
        check_param_schedulers(cfg)
    msg = str(e.value)
    assert 'param_scheduler[1] (CosineAnnealingLR)' in msg
    assert 'train_cfg.max_epochs=2' in msg
    cfg = _cfg(
        train_cfg=dict(max_epochs=2),
        param_scheduler=[
            dict(type='LinearLR', start_factor=1e-3, begin=0, end=2)
        ])
    with pytest.warns(ConfigWarning, match='whole run'):
        assert len(check_param_schedulers(cfg)) == 1
    assert check_config(_cfg(), 'c.py') == []
