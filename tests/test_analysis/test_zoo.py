import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from bcssl_mm.analysis import (build_model, load_classifier_weights,
                               parse_model_name)
from bcssl_mm.analysis.zoo import BASELINES, RENAMED, renamed_hint
from bcssl_mm.models.utils import CheckpointMismatchError


@pytest.mark.parametrize('name, fields', [
    ('bcssl_convnext_tiny_k9', ('bcssl', 'tiny', 9, True, False)),
    ('bcssl_convnext_atto_k3_nobn', ('bcssl', 'atto', 3, False, False)),
    ('bcssl_convnext_small_k15_deploy', ('bcssl', 'small', 15, True, True)),
    ('bcssl_convnext_tiny_k7_nobn_deploy', ('bcssl', 'tiny', 7, False, True)),
    ('swin_tiny_patch4_window7_224', ('swin', 'tiny', None, True, False)),
    ('timm::convnext_tiny', ('timm', 'convnext_tiny', None, True, False)),
])
def test_parse_model_name(name, fields):
    spec = parse_model_name(name)
    assert spec.name == name
    assert (spec.family, spec.arch, spec.kernel_size, spec.with_bn,
            spec.deploy) == fields


@pytest.mark.parametrize('name, match', [
    ('bcssl_convnext_tiny_k8', 'bcssl_convnext_tiny_k8.*odd'),
    ('bcssl_convnext_q_k9', "arch 'q'.*'tiny'"),
    ('bcssl_convnext_tiny_k9_deploy_nobn', 'valid names: bcssl_convnext_'),
    ('resnet18', 'valid names: .*resnet50, vit_small_patch16_224'),
    ('timm::no_such_net', "timm has no model 'no_such_net'"),
    ('bcssl-t-k9', "renamed: use 'bcssl_convnext_tiny_k9'.*valid names"),
    ('bcssl-atto-k3-deploy', "use 'bcssl_convnext_atto_k3_deploy'"),
    ('convnext-t-ours', "use 'bcssl_convnext_tiny_k7_nobn'"),
])
def test_bad_names_are_clear_errors(name, match):
    with pytest.raises(ValueError, match=match):
        parse_model_name(name)


def test_every_old_name_points_to_a_valid_name():
    for old, new in RENAMED.items():
        assert parse_model_name(new).name == new
        assert renamed_hint(old) == f' (renamed: use {new!r})'
    assert renamed_hint('bcssl-s-k15') == \
        " (renamed: use 'bcssl_convnext_small_k15')"
    assert renamed_hint('bcssl_convnext_tiny_k9') == ''


def test_nobn_is_bcssl_without_the_depthwise_bn():
    with_bn, no_bn = (
        build_model(f'bcssl_convnext_atto_k3{s}', img_size=32)
        for s in ('', '_nobn'))
    bn = {k for k in with_bn.state_dict() if k not in no_bn.state_dict()}
    # 2 + 2 + 6 + 2 atto blocks, each BN with 5 tensors
    assert len(bn) == 12 * 5 and all('.dw_norm.' in k for k in bn)


def test_deploy_form_gives_the_eval_outputs():
    torch.manual_seed(0)
    model = build_model('bcssl_convnext_atto_k5', img_size=64)
    torch.manual_seed(0)
    deploy = build_model('bcssl_convnext_atto_k5_deploy', img_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(deploy(x), model(x), atol=1e-4)
    assert sum(p.numel() for p in deploy.parameters()) < \
        sum(p.numel() for p in model.parameters())


def test_timm_models_take_the_input_size_where_it_is_fixed():
    vit = build_model('timm::vit_small_patch16_224', 64, num_classes=7)
    assert vit(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    resnet = build_model('timm::resnet18', 64, num_classes=7)
    assert resnet(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@pytest.fixture
def trained():
    torch.manual_seed(1)
    return build_model('bcssl_convnext_atto_k3', img_size=32, num_classes=4)


def _save(tmp_path, state_dict, name='ckpt.pth'):
    path = tmp_path / name
    torch.save(dict(meta=dict(epoch=1), state_dict=state_dict), path)
    return str(path)


def test_backbone_checkpoint_loads_under_a_random_head(trained, tmp_path,
                                                       monkeypatch):
    # a DINO teacher or a detector: backbone.* (+ keys the model lacks)
    state = {
        k: v
        for k, v in trained.state_dict().items() if k.startswith('backbone.')
    }
    state['neck.fpn.weight'] = torch.zeros(3)
    path = _save(tmp_path, state)
    calls = []
    load = CheckpointLoader.load_checkpoint
    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint',
                        lambda *a, **k: calls.append(a[0]) or load(*a, **k))
    torch.manual_seed(2)
    model = build_model('bcssl_convnext_atto_k3', img_size=32, num_classes=4)
    head = model.head.fc.weight.clone()
    summary = load_classifier_weights(model, path)
    assert calls == [path]  # read by the package's registered loader
    for k, v in trained.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    assert torch.equal(model.head.fc.weight, head)
    assert summary == (f'{path}: loaded {len(state) - 1} tensors, ignored 1;'
                       ' random init kept: head')


def test_checkpoint_of_another_kernel_is_refused(trained, tmp_path):
    path = _save(tmp_path, trained.state_dict())
    model = build_model('bcssl_convnext_atto_k5', img_size=32, num_classes=4)
    with pytest.raises(CheckpointMismatchError) as info:
        load_classifier_weights(model, path)
    assert 'backbone.stages.0.0.depthwise_conv.weight: checkpoint ' \
        '(40, 1, 3, 3) vs model (40, 1, 5, 5)' in str(info.value)


def test_checkpoint_without_the_backbone_is_refused(trained, tmp_path):
    # a bare backbone state dict: no backbone.* key would silently load none
    path = _save(tmp_path, trained.backbone.state_dict())
    with pytest.raises(
            CheckpointMismatchError,
            match=r'missing backbone keys:\n.*backbone\.'):
        load_classifier_weights(trained, path)


def test_baseline_table_is_the_timm_names():
    import timm
    for name in BASELINES:
        assert timm.is_model(name), name
