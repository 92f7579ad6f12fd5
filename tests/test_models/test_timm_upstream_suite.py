"""timm's own model tests, run against the ``bcssl_convnext_*`` models.

The tests are timm's ``tests/test_models.py`` of the installed timm version,
not a copy: ``tools/fetch_timm_tests.py`` (run by ``tools/install_env.sh``)
takes that file from timm's source distribution on PyPI into
``~/.cache/bcssl_mm/timm-tests/<version>/``; without it the tests here skip,
except under ``.ci/run`` (``BCSSL_REQUIRE_UPSTREAM_TESTS=1``), where the
module fails to collect.

Each upstream test that applies to a CNN classifier with NCHW features is
called with our model name in place of timm's (:data:`APPLICABLE`, with the
other arguments of its parametrisation); ``bcssl_convnext_atto`` at the small
input sizes timm's tests choose keeps them fast. Every other upstream test is
in :data:`INAPPLICABLE` with the reason; a test of another timm version that
is in neither fails :func:`test_every_upstream_test_is_classified`.
"""
import importlib.util
import os
import os.path as osp
import sys
import warnings
from types import ModuleType
from typing import Dict, Tuple

import pytest
import timm

import bcssl_mm.models.timm_models  # noqa: F401  (registers the models)
from conftest import load_tool

ATTO = 'bcssl_convnext_atto'
NAMES = (ATTO, 'bcssl_convnext_tiny', 'bcssl_convnext_small',
         'bcssl_convnext_base')


def _load_module(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _upstream() -> ModuleType:
    path = load_tool('fetch_timm_tests.py').timm_tests_file(timm.__version__)
    if not osp.isfile(path):
        if os.environ.get('BCSSL_REQUIRE_UPSTREAM_TESTS'):  # set by .ci/run
            pytest.fail(
                f"timm {timm.__version__}'s tests/test_models.py is not at "
                f'{path} (tools/install_env.sh could not fetch it), and '
                'BCSSL_REQUIRE_UPSTREAM_TESTS is set: CI does not pass '
                'without them',
                pytrace=False)
        pytest.skip(
            f"timm {timm.__version__}'s tests/test_models.py is not at "
            f'{path}; run `python tools/fetch_timm_tests.py`',
            allow_module_level=True)
    name = 'timm_upstream_test_models'
    if name not in sys.modules:
        # NOTE: its markers (timeout, cfg, features, ...) are registered by
        # timm's own pytest configuration, not ours
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', pytest.PytestUnknownMarkWarning)
            sys.modules[name] = _load_module(name, path)
    return sys.modules[name]


upstream = _upstream()
# timm's fixture for the cfg tests: the meta device where torch has a device
# context manager
CFG_DEVICE = 'meta' if upstream._HAS_DEVICE_CONTEXT else upstream.torch_device

# upstream test -> (model names, the other arguments)
APPLICABLE: Dict[str, Tuple[Tuple[str, ...], dict]] = {
    # parametrised over every registered model
    'test_model_forward': ((ATTO, ), dict(batch_size=1)),
    'test_model_backward': ((ATTO, ), dict(batch_size=2)),
    'test_model_default_cfgs':
    (NAMES, dict(batch_size=1, cfg_device=CFG_DEVICE)),
    'test_model_forward_torchscript': ((ATTO, ), dict(batch_size=1)),
    'test_model_forward_features': ((ATTO, ), dict(batch_size=1)),
    'test_model_forward_fx': ((ATTO, ), dict(batch_size=1)),
    'test_model_backward_fx': ((ATTO, ), dict(batch_size=2)),
    # defined upstream only outside GitHub Actions (memory)
    'test_model_forward_fx_torchscript': ((ATTO, ), dict(batch_size=1)),
    # parametrised over the modules with forward_intermediates (convnext
    # among them); ours is not a timm module, so named here
    'test_model_forward_intermediates_features':
    ((ATTO, ), dict(batch_size=1)),
    'test_model_forward_intermediates': ((ATTO, ), dict(batch_size=1)),
    'test_prune_intermediate_layers_contract': ((ATTO, ), {}),
    # parametrised over named models (timm's ConvNeXt or others): properties
    # of timm's feature / pruning / head API that every model should have
    'test_features_only_grad_checkpointing_backward': ((ATTO, ), {}),
    'test_features_only_feature_cls_class': ((ATTO, ), {}),
    'test_feature_getter_stage_ends_torchscript': ((ATTO, ), {}),
    'test_prune_intermediate_layers_params_used': ((ATTO, ), {}),
    'test_forward_after_prune_intermediate_layers': ((ATTO, ), {}),
    'test_prune_intermediate_layers_last_feature':
    ((ATTO, ), dict(stop_early_final=True)),
    'test_forward_intermediates_stop_early_final_norm':
    ((ATTO, ), dict(model_kwargs={})),
    # without timm ConvNeXt's head_hidden_size=64 (an MLP before the
    # classifier, which our linear head does not have)
    'test_head_hidden_size': ((ATTO, ), dict(model_kwargs={})),
    'test_catavgmax_unsupported': ((ATTO, ), {}),
    'test_model_init_weights_after_to_empty': ((ATTO, ), dict(kwargs={})),
    # defined upstream only outside GitHub Actions
    'test_model_forward_torchscript_with_features_fx': ((ATTO, ),
                                                        dict(batch_size=1)),
}

_NO_WEIGHTS = ('needs published pretrained weights (and reference outputs on '
               'the Hugging Face hub); BC-SSL publishes none, and '
               'pretrained=True raises (see test_timm_models.py)')
_MODEL_SPECIFIC = ('checks a feature of the named timm models only (see the '
                   'test), which a ConvNeXt has no counterpart of')

_NEED_WEIGHTS = ('test_model_inference', 'test_model_load_pretrained',
                 'test_model_features_pretrained')
_NAMED_MODELS_ONLY = (
    'test_model_features_space2depth_reduction',
    'test_gcvit_batch_consistency',
    'test_pruned_efficientnet_in_chans',
    'test_convit_dtype_change_after_forward',
    'test_inception_v3_aux_logits_reset_prune',
    'test_prune_extra_blocks_stem_width',
    'test_prune_class_token_avg_pool',
    'test_eva_reset_classifier_removes_attention_pool',
    'test_samvit_feature_getter_channels',
    'test_mobilenetv5_intermediate_final_features',
    'test_efficientvim_branch_features',
    'test_hybrid_vit_set_input_size_dtype',
    'test_eval_attention_forward_after_dtype_change',
    'test_attention_bias_cache_apply_preserves_recurse_argument',
    'test_eval_refreshes_attention_bias_cache',
    'test_eval_attention_bias_cache_after_dtype_change',
)

# upstream test -> why it does not apply to bcssl_convnext_*
INAPPLICABLE: Dict[str, str] = {
    **dict.fromkeys(_NEED_WEIGHTS, _NO_WEIGHTS),
    'test_model_default_cfgs_non_std':
    ('for models matching NON_STD_FILTERS (transformers, MLPs) whose '
     'features are not NCHW maps; ours are, and test_model_default_cfgs '
     'runs on them'),
    'test_reset_classifier_keeps_pool':
    ("creates the model with global_pool='max'; ours offer 'avg' (the "
     "paper's head, whose final norm is trained on averaged features) and "
     "'' (none); test_timm_models.py checks that reset_classifier keeps the "
     'pooling'),
    'test_model_features_output_stride':
    ('needs dilated stages (output_stride 8 or 16), which BC-SSL does not '
     'have; create_model rejects output_stride'),
    'test_pruned_features_torchscript':
    ('creates the model with img_size=64, an argument of fixed-size '
     'transformers; scripting a pruned FeatureGetterNet of ours is '
     'test_feature_getter_stage_ends_torchscript'),
    'test_resnet_pruned_grad_checkpointing':
    ('takes no model name (test_resnet only); its calls on ours are in '
     'test_model_forward_intermediates and '
     'test_prune_intermediate_layers_params_used'),
    'test_feature_hook_net_grad_checkpointing_order':
    ("takes no model name (xception41's FeatureHookNet); our features_only "
     'model with checkpointing is '
     'test_features_only_grad_checkpointing_backward'),
    'test_prune_to_stem_feature':
    ('prunes to a stem feature tap; our feature_info starts at stage 0 (the '
     'stem has no tap, as in timm ConvNeXt)'),
    'test_resnetv2_stem_feature_odd_size':
    ('expects the (33, 34) map of a stride-2 stem tap for a 65x67 input; '
     'our first tap is stage 0, stride 4'),
    'test_nfnet_stem_feature_consistency':
    ("FeatureListNet over NFNet's stem tap; ours has none, and its "
     'features_only model is a FeatureGetterNet'),
    'test_mobile_model_fusion_features':
    ("timm.utils.reparameterize_model of mobile models' fused branches; "
     'ours are folded by switch_to_deploy (test_timm_models.py)'),
    'test_headless_checkpoint_reload':
    ("reloads through the model module's checkpoint_filter_fn, which ours "
     'does not need: its state dicts (mmpretrain names) load as they are'),
    **dict.fromkeys(_NAMED_MODELS_ONLY, _MODEL_SPECIFIC),
}
# families of tests of one model family (NaFlexViT, RADIO, Gemma 4, the ViT
# classifier encoders, Swin resizing, relative position ViTs)
_FAMILY_PREFIXES = ('test_naflexvit_', 'test_radio_', 'test_gemma4_',
                    'test_vit_classifier_', 'test_swin_family_',
                    'test_relpos_')


def _upstream_tests() -> set:
    return {
        name
        for name, obj in vars(upstream).items()
        if name.startswith('test_') and callable(obj)
    }


def test_every_upstream_test_is_classified():
    unclassified = sorted(
        name for name in _upstream_tests() if name not in APPLICABLE
        and name not in INAPPLICABLE and not name.startswith(_FAMILY_PREFIXES))
    assert not unclassified, (
        f'timm {timm.__version__} has tests that are neither in APPLICABLE '
        f'nor in INAPPLICABLE: {unclassified}')
    assert not set(APPLICABLE) & set(INAPPLICABLE)


@pytest.mark.parametrize('test_name, model_name, kwargs', [
    (test_name, model_name, kwargs)
    for test_name, (model_names, kwargs) in APPLICABLE.items()
    for model_name in model_names
])
def test_upstream(test_name, model_name, kwargs, tmp_path):
    if not hasattr(upstream, test_name):
        pytest.skip(f'timm {timm.__version__} does not define {test_name} '
                    'here (upstream defines some tests only outside GitHub '
                    'Actions)')
    getattr(upstream, test_name)(model_name, **kwargs)
