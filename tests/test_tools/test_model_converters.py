import contextlib
import io
import os
import re
import runpy
import sys
from argparse import Namespace

import pytest
import timm
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer, MMLogger
from mmengine.registry import DefaultScope

from bcssl_mm.evaluation.results import pretrain_from_checkpoint
from bcssl_mm.models import BCSSLConvNeXt
from bcssl_mm.models.utils import load_backbone_checkpoint
from bcssl_mm.utils import CheckpointLoadError
from bcssl_mm.utils.state_dict_remap import ConversionError
from conftest import DEMO_CONFIG, ROOT, load_tool, randomize_bn, run_tool

# mmengine's logger (used by the strict loader) writes to the sys.stdout of
# when it was created: create it now, not inside a test that redirects stdout
MMLogger.get_current_instance()

extract = load_tool('model_converters/extract_backbone.py')
fork = load_tool('model_converters/bcssl_fork_to_mmpretrain.py')
convnext = load_tool('model_converters/convnext_to_bcssl.py')
CONVERTERS = dict(
    extract_backbone=extract,
    bcssl_fork_to_mmpretrain=fork,
    convnext_to_bcssl=convnext,
    mae_to_mmpretrain=load_tool('model_converters/mae_to_mmpretrain.py'))
# the demo's DINO pretraining config: atto, k9, BN
DINO_DEMO_CONFIG = str(ROOT / 'configs' / 'dino' /
                       'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py')


def _random_backbone(kernel_size=9, bn=True, seed=0, **kwargs):
    """An atto BCSSLConvNeXt with every parameter and BN statistic random."""
    torch.manual_seed(seed)
    model = BCSSLConvNeXt(
        'atto',
        kernel_size=kernel_size,
        dw_norm_cfg=dict(type='BN') if bn else None,
        **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    randomize_bn(model, seed)
    return model.eval()


def _convert(tool, *argv) -> str:
    """Run a converter's ``main`` on command-line arguments; return its log."""
    args = tool.get_args_parser().parse_args([str(a) for a in argv])
    with contextlib.redirect_stdout(io.StringIO()) as log:
        tool.main(args)
    return log.getvalue()


def _features(model, x):
    with torch.no_grad():
        return model.eval()(x)[-1]


def _load(filename):
    return torch.load(filename, map_location='cpu', weights_only=True)


def _to_official(state_dict, fork_names=False):
    """BCSSLConvNeXt keys -> official ConvNeXt (or the authors' fork) keys."""
    with_bn = any('.dw_norm.' in k for k in state_dict)
    out = {}
    for k, v in state_dict.items():
        k = re.sub(r'^norm3\.', 'norm.', k)
        k = k.replace('pointwise_conv', 'pwconv')
        if fork_names and with_bn:
            k = k.replace('.depthwise_conv.', '.large_kernel.lkb_origin.conv.')
            k = k.replace('.dw_norm.', '.large_kernel.lkb_origin.bn.')
        k = k.replace('.depthwise_conv.', '.dwconv.')
        out[k] = v.clone()
    return out


DINO_RUN = 'dino_bcssl-t-k9_8xb64-amp-coslr-100e_in1k'


def _dino_checkpoint(student, teacher, backbone_keys=None):
    """A checkpoint in the layout of bcssl_mm's DINO algorithm."""
    sd = {}
    for prefix, model in (('', student), ('teacher.', teacher)):
        for k, v in model.state_dict().items():
            sd[f'{prefix}backbone.{k}'] = v
        for i in (0, 2, 4):
            sd[f'{prefix}neck.mlp.{i}.weight'] = torch.randn(8, 8)
            sd[f'{prefix}neck.mlp.{i}.bias'] = torch.randn(8)
        sd[f'{prefix}neck.last_layer.weight_g'] = torch.ones(16, 1)
        sd[f'{prefix}neck.last_layer.weight_v'] = torch.randn(16, 256)
    sd['head.loss_module.center'] = torch.zeros(1, 16)
    return dict(
        meta=dict(
            epoch=100,
            iter=5000,
            cfg='model = dict()',
            experiment_name=f'{DINO_RUN}_20261124_063000'),
        state_dict=sd,
        optimizer=dict(state={}, param_groups=[]),
        message_hub=dict(log_scalars=dict(loss=HistoryBuffer())))


def _fork_checkpoint(student, teacher):
    """Checkpoint laid out like the authors' DINO fork (docs/recipes.md §1)."""
    ckpt = dict(
        optimizer={},
        epoch=99,
        args=Namespace(arch='convnext'),
        dino_loss={'center': torch.zeros(1, 16)},
        fp16_scaler=None)
    for part, model in (('student', student), ('teacher', teacher)):
        sd = {
            f'module.backbone.{k}': v
            for k, v in _to_official(model.state_dict(), True).items()
        }
        sd['module.head.mlp.0.weight'] = torch.randn(8, 320)
        sd['module.head.last_layer.weight_g'] = torch.ones(16, 1)
        ckpt[part] = sd
    return ckpt


@pytest.mark.parametrize('part', ['teacher', 'student'])
def test_extract_dino_backbone(tmp_path, part):
    student, teacher = _random_backbone(seed=0), _random_backbone(seed=1)
    src, dst = tmp_path / 'dino.pth', tmp_path / f'{part}.pth'
    torch.save(_dino_checkpoint(student, teacher), src)
    log = _convert(extract, src, dst, '--part', part)

    out = _load(dst)  # plain tensors and values only
    assert out['meta']['part'] == part and out['meta']['epoch'] == 100
    assert out['meta']['algorithm'] == 'dino'
    assert out['meta']['backbone']['kernel_size'] == 9
    # the evaluation tools name the pretraining run from the meta
    assert pretrain_from_checkpoint(str(dst)) == dict(
        name=DINO_RUN,
        method='dino',
        backbone='bcssl-t-k9',
        epochs=100,
        data='in1k',
        checkpoint_epoch=100)
    expected = (teacher if part == 'teacher' else student).state_dict()
    assert list(out['state_dict']) == [f'backbone.{k}' for k in expected]
    for k, v in expected.items():
        assert torch.equal(out['state_dict'][f'backbone.{k}'], v), k
    prefix = 'teacher.backbone.' if part == 'teacher' else 'backbone.'
    n = len(expected)
    assert f'{n:6d}  {prefix}* -> backbone.*' in log
    assert 'kernel size: 9' in log and "arch='atto'" in log
    assert 'dw_norm=BN' in log and 'verified' in log
    # dropped: the other backbone, both necks (8 keys each), the centre
    assert f'dropped {n + 8 + 8 + 1} keys' in log

    model = _random_backbone(seed=2)
    load_backbone_checkpoint(model, str(dst), prefix='backbone.')
    x = torch.randn(2, 3, 64, 64)
    original = teacher if part == 'teacher' else student
    torch.testing.assert_close(_features(model, x), _features(original, x))


# tiny mmpretrain backbones of the kinds the toolkit pretrains besides
# BC-SSL / ConvNeXt
TINY_BACKBONES = dict(
    resnet=dict(type='ResNet', depth=18, stem_channels=8, base_channels=8),
    vit=dict(
        type='MoCoV3ViT',
        arch=dict(
            embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=32,
        patch_size=16,
        stop_grad_conv1=True),
    swin=dict(
        type='SwinTransformer',
        arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
        img_size=64,
        window_size=2),
)
# where each part's backbone (and projector) lives in the contract layouts
PART_PREFIXES = dict(
    dino=dict(teacher='teacher.', student=''),
    mocov3=dict(base='', momentum='momentum_encoder.'))


def _tiny_backbone(kind, seed=0, **kwargs):
    """A tiny mmpretrain backbone with random parameters and BN buffers."""
    from mmpretrain.registry import MODELS
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(TINY_BACKBONES[kind], **kwargs))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    randomize_bn(model, seed)
    return model


def _pretrain_checkpoint(algorithm, models):
    """A checkpoint in the contract layout of bcssl_mm's DINO or MoCo v3
    (``models``: part -> backbone), with projectors (and predictor / loss
    centre) that the extraction must drop."""
    sd = {}
    for part, model in models.items():
        prefix = PART_PREFIXES[algorithm][part]
        sd.update({
            f'{prefix}backbone.{k}': v
            for k, v in model.state_dict().items()
        })
        sd[f'{prefix}neck.mlp.0.weight'] = torch.randn(8, 8)
        sd[f'{prefix}neck.mlp.1.running_mean'] = torch.randn(8)
    if algorithm == 'mocov3':
        sd['head.predictor.mlp.0.weight'] = torch.randn(8, 8)
    else:
        sd['head.loss_module.center'] = torch.zeros(1, 8)
    return dict(
        meta=dict(epoch=3, experiment_name=f'{algorithm}_x_300e_in1k'),
        state_dict=sd)


def _pretrain_config(tmp_path, kind, **kwargs):
    """A pretraining config file whose model.backbone is a tiny ``kind``."""
    backbone = dict(
        TINY_BACKBONES[kind],
        init_cfg=dict(type='Pretrained', checkpoint='missing.pth'),
        **kwargs)
    path = tmp_path / f'pretrain_{kind}.py'
    Config(
        dict(
            default_scope='mmpretrain',
            model=dict(type='MoCoV3', backbone=backbone))).dump(str(path))
    return path


@pytest.mark.parametrize('kind', ['resnet', 'vit'])
@pytest.mark.parametrize('algorithm,part', [('dino', None),
                                            ('dino', 'student'),
                                            ('mocov3', None),
                                            ('mocov3', 'momentum')])
def test_extract_parts_of_mmpretrain_backbones(tmp_path, kind, algorithm,
                                               part):
    parts = list(PART_PREFIXES[algorithm])
    models = {p: _tiny_backbone(kind, seed=i) for i, p in enumerate(parts)}
    src, dst = tmp_path / 'pretrain.pth', tmp_path / 'out.pth'
    torch.save(_pretrain_checkpoint(algorithm, models), src)
    log = _convert(extract, src, dst, *(['--part', part] if part else []))

    # DINO's teacher and MoCo v3's base encoder by default
    expected_part = part or {'dino': 'teacher', 'mocov3': 'base'}[algorithm]
    out = _load(dst)
    assert out['meta']['algorithm'] == algorithm
    assert out['meta']['part'] == expected_part
    assert out['meta']['epoch'] == 3
    expected = models[expected_part].state_dict()
    # exactly the part's backbone, in its order: no other backbone, no neck
    assert list(out['state_dict']) == [f'backbone.{k}' for k in expected]
    for k, v in expected.items():
        assert torch.equal(out['state_dict'][f'backbone.{k}'], v), k
    assert 'saved without a strict check' in log and '--config' in log


@pytest.mark.parametrize('kind', sorted(TINY_BACKBONES))
def test_extract_config_check_passes(tmp_path, kind):
    base, momentum = _tiny_backbone(kind, 0), _tiny_backbone(kind, 1)
    src, dst = tmp_path / 'mocov3.pth', tmp_path / 'base.pth'
    torch.save(
        _pretrain_checkpoint('mocov3', dict(base=base, momentum=momentum)),
        src)
    config = _pretrain_config(tmp_path, kind)
    log = _convert(extract, src, dst, '--config', config)
    name = type(base).__name__
    assert f'verified: loads strictly into the {name} of {config}' in log
    out = _load(dst)
    assert out['meta']['config'] == str(config)
    # the file loads strictly into a fresh backbone of the config
    fresh = _tiny_backbone(kind, seed=5)
    load_backbone_checkpoint(fresh, str(dst), prefix='backbone.')
    for k, v in base.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_extract_config_check_lists_mismatched_keys(tmp_path):
    # the checkpoint's ViT has 2 blocks of width 32, the config's 1 of 48
    base = _tiny_backbone('vit')
    src, dst = tmp_path / 'mocov3.pth', tmp_path / 'base.pth'
    torch.save(
        _pretrain_checkpoint('mocov3', dict(base=base, momentum=base)), src)
    config = _pretrain_config(
        tmp_path,
        'vit',
        arch=dict(
            embed_dims=48, num_layers=1, num_heads=2, feedforward_channels=64))
    with pytest.raises(ConversionError) as e:
        _convert(extract, src, dst, '--config', config)
    msg = str(e.value)
    assert f'does not load strictly into the MoCoV3ViT of {config}' in msg
    assert f'nothing was written to {dst}' in msg
    num_unexpected = sum(k.startswith('layers.1.') for k in base.state_dict())
    assert f'{num_unexpected} unexpected keys:' in msg
    assert '    layers.1.ffn.layers.1.weight\n' in msg
    assert 'cls_token: checkpoint (1, 1, 32) vs model (1, 1, 48)' in msg
    assert sorted(os.listdir(tmp_path)) == ['mocov3.pth', 'pretrain_vit.py']

    # a ConvNeXt is checked against the config too, not only its shapes
    model = _random_backbone(kernel_size=9)
    torch.save(_dino_checkpoint(model, model), src)
    k7_config = tmp_path / 'dino_k7.py'
    k7_config.write_text(f'_base_ = {DINO_DEMO_CONFIG!r}\n'
                         'model = dict(backbone=dict(kernel_size=7))\n')
    with pytest.raises(ConversionError) as e:
        _convert(extract, src, dst, '--config', k7_config)
    assert 'depthwise_conv.weight: checkpoint (40, 1, 9, 9) vs model ' \
        '(40, 1, 7, 7)' in str(e.value)
    assert not dst.exists()


def test_extract_config_check_with_the_demo_config(tmp_path):
    teacher = _random_backbone(seed=1)  # the demo's backbone: atto, k9, BN
    src, dst = tmp_path / 'dino.pth', tmp_path / 'teacher.pth'
    torch.save(_dino_checkpoint(_random_backbone(seed=0), teacher), src)
    log = _convert(extract, src, dst, '--config', DINO_DEMO_CONFIG)
    assert 'verified: loads strictly into the BCSSLConvNeXt of' in log
    # and the check of the shapes' BCSSLConvNeXt, as without --config
    assert "verified: loads strictly into BCSSLConvNeXt" in log
    out = _load(dst)
    assert out['meta']['backbone']['kernel_size'] == 9
    for k, v in teacher.state_dict().items():
        assert torch.equal(out['state_dict'][f'backbone.{k}'], v), k


def test_extract_backbone_errors(tmp_path):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'

    # the authors' fork: named, with the converter to use
    model = _random_backbone()
    torch.save(_fork_checkpoint(model, model), src)
    with pytest.raises(ConversionError) as e:
        _convert(extract, src, dst)
    msg = str(e.value)
    assert msg.startswith(f'{src}: not a bcssl_mm pretraining checkpoint')
    assert 'bcssl_fork_to_mmpretrain.py' in msg

    # a classifier: neither layout; the file, both markers and its keys
    torch.save(
        dict(
            state_dict={
                'backbone.conv1.weight': torch.ones(1),
                'head.fc.weight': torch.ones(1)
            }), src)
    with pytest.raises(ConversionError) as e:
        _convert(extract, src, dst)
    assert str(e.value) == (
        f'{src}: not a bcssl_mm pretraining checkpoint: no key of DINO '
        '(teacher.backbone.*) or MoCo v3 (momentum_encoder.backbone.*) or '
        'MAE / D-MAE-Lite (neck.decoder_embed.*); '
        "first keys: ['backbone.conv1.weight', 'head.fc.weight'].")

    # a part of the other algorithm
    resnet = _tiny_backbone('resnet')
    torch.save(
        _pretrain_checkpoint('mocov3', dict(base=resnet, momentum=resnet)),
        src)
    with pytest.raises(ConversionError) as e:
        _convert(extract, src, dst, '--part', 'teacher')
    assert str(e.value) == (
        f"{src} is a MoCo v3 checkpoint: --part is one of ['base', "
        "'momentum'], not 'teacher'")

    # a MoCo v3 checkpoint without the base encoder
    ckpt = _pretrain_checkpoint('mocov3', dict(momentum=resnet))
    torch.save(ckpt, src)
    with pytest.raises(
            ConversionError,
            match="no key starts with "
            "'backbone.' \\(the base backbone of a MoCo v3"):
        _convert(extract, src, dst)

    # keys of both algorithms
    ckpt['state_dict']['teacher.backbone.conv1.weight'] = torch.ones(1)
    torch.save(ckpt, src)
    with pytest.raises(ConversionError, match='keys of both DINO'):
        _convert(extract, src, dst)

    # a config without a backbone
    config = tmp_path / 'no_backbone.py'
    config.write_text('model = dict(type="MoCoV3")\n')
    torch.save(
        _pretrain_checkpoint('mocov3', dict(base=resnet, momentum=resnet)),
        src)
    with pytest.raises(
            ConversionError, match=re.escape(f'{config}: no model.backbone')):
        _convert(extract, src, dst, '--config', config)
    with pytest.raises(FileNotFoundError, match='--config missing.py'):
        _convert(extract, src, dst, '--config', 'missing.py')
    assert not dst.exists()


def test_makefile_demo_extraction_runs(tmp_path):
    # the `make demo` line, with its variables pointed at a temporary run
    makefile = (ROOT / 'Makefile').read_text()
    line = re.search(
        r'\$\(PY\) (tools/model_converters/\S+\.py) \\\n'
        r'\s*\$\$\(cat \$\(DINO_WORK_DIR\)/last_checkpoint\) '
        r'\$\(TEACHER\) (--force)\n', makefile)
    assert line is not None, 'the demo extraction line of the Makefile'
    script, flag = line.groups()
    assert script == 'tools/model_converters/extract_backbone.py'
    teacher = _random_backbone(seed=1)
    src, dst = tmp_path / 'epoch_10.pth', tmp_path / 'teacher.pth'
    torch.save(_dino_checkpoint(_random_backbone(seed=0), teacher), src)
    dst.write_bytes(b'an earlier demo run')
    _convert(load_tool(script[len('tools/'):]), src, dst, flag)
    out = _load(dst)
    assert (out['meta']['algorithm'], out['meta']['part']) == ('dino',
                                                               'teacher')
    for k, v in teacher.state_dict().items():
        assert torch.equal(out['state_dict'][f'backbone.{k}'], v), k


def test_extract_teacher_loads_into_demo_maskrcnn(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    # the demo backbone: atto, k9, BN
    teacher = _random_backbone(seed=1)
    src, dst = tmp_path / 'dino.pth', tmp_path / 'teacher.pth'
    torch.save(_dino_checkpoint(_random_backbone(seed=0), teacher), src)
    _convert(extract, src, dst)

    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(DEMO_CONFIG)
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=str(dst), prefix='backbone.')
    with DefaultScope.overwrite_default_scope('mmdet'):
        detector = MODELS.build(cfg.model)
        detector.init_weights()
    loaded = detector.backbone.state_dict()
    for k, v in teacher.state_dict().items():
        assert torch.equal(loaded[k], v), k


@pytest.mark.parametrize('part', ['teacher', 'student'])
def test_bcssl_fork_to_mmpretrain(tmp_path, part):
    student, teacher = _random_backbone(seed=0), _random_backbone(seed=1)
    src, dst = tmp_path / 'fork.pth', tmp_path / 'out.pth'
    torch.save(_fork_checkpoint(student, teacher), src)
    log = _convert(fork, src, dst, '--part', part)

    original = teacher if part == 'teacher' else student
    out = _load(dst)
    assert out['meta']['part'] == part and out['meta']['epoch'] == 99
    for k, v in original.state_dict().items():
        assert torch.equal(out['state_dict'][f'backbone.{k}'], v), k
    model = _random_backbone(seed=2)
    load_backbone_checkpoint(model, str(dst), prefix='backbone.')
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(_features(model, x), _features(original, x))

    # atto: 12 blocks, each with 1 conv weight and 5 BN tensors
    assert '12  stages.i.j.large_kernel.lkb_origin.conv -> depthwise' in log
    assert '60  stages.i.j.large_kernel.lkb_origin.bn -> dw_norm' in log
    assert '2  norm (final) -> norm3' in log
    assert 'DINO projection head' in log and 'module.head.*' in log
    assert 'kernel size: 9' in log


def test_bcssl_fork_bare_backbone_without_bn_cli(tmp_path):
    original = _random_backbone(kernel_size=5, bn=False)
    src, dst = tmp_path / 'bare.pth', tmp_path / 'out.pth'
    torch.save(_to_official(original.state_dict(), fork_names=True), src)
    proc = run_tool([
        sys.executable, 'tools/model_converters/bcssl_fork_to_mmpretrain.py',
        str(src),
        str(dst)
    ])
    assert 'bare backbone state dict' in proc.stdout
    assert 'stages.i.j.dwconv -> depthwise_conv' in proc.stdout
    assert 'kernel size: 5' in proc.stdout and 'dw_norm=None' in proc.stdout
    model = _random_backbone(kernel_size=5, bn=False, seed=2)
    load_backbone_checkpoint(model, str(dst), prefix='backbone.')
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(_features(model, x), _features(original, x))


def test_bcssl_fork_errors(tmp_path):
    model = _random_backbone()
    src, dst = tmp_path / 'fork.pth', tmp_path / 'out.pth'

    # another backbone: the message names the file and the expected prefix
    torch.save({'module.backbone.blocks.0.attn.qkv.weight': torch.ones(1)},
               src)
    with pytest.raises(ConversionError) as e:
        _convert(fork, src, dst)
    assert str(src) in str(e.value)
    assert "'module.backbone.{downsample_layers,stages}.'" in str(e.value)

    # a bcssl_mm DINO checkpoint is not the fork's layout
    torch.save(_dino_checkpoint(model, model), src)
    with pytest.raises(ConversionError) as e:
        _convert(fork, src, dst)
    assert str(src) in str(e.value)
    assert 'already in BCSSLConvNeXt names' in str(e.value)
    assert 'extract_backbone.py' in str(e.value)

    # a mis-shaped tensor is reported by its converted name; nothing written
    ckpt = _fork_checkpoint(model, model)
    key = 'module.backbone.stages.2.3.pwconv1.weight'
    ckpt['teacher'][key] = torch.randn(640, 80)
    torch.save(ckpt, src)
    with pytest.raises(ConversionError) as e:
        _convert(fork, src, dst)
    assert ('stages.2.3.pointwise_conv1.weight: checkpoint (640, 80) vs '
            'model (640, 160)') in str(e.value)
    assert sorted(os.listdir(tmp_path)) == ['fork.pth']  # no temporary file

    # a key no rule maps (e.g. a reparameterisation branch) is refused
    ckpt = _fork_checkpoint(model, model)
    extra = 'module.backbone.stages.0.0.large_kernel.small_conv.conv.weight'
    ckpt['teacher'][extra] = torch.randn(40, 1, 3, 3)
    torch.save(ckpt, src)
    with pytest.raises(ConversionError, match=re.escape(extra)):
        _convert(fork, src, dst)


def test_refuse_overwrite_then_force(tmp_path):
    student, teacher = _random_backbone(seed=0), _random_backbone(seed=1)
    src, dst = tmp_path / 'dino.pth', tmp_path / 'out.pth'
    torch.save(_dino_checkpoint(student, teacher), src)
    dst.write_bytes(b'precious')
    with pytest.raises(FileExistsError, match='--force'):
        _convert(extract, src, dst)
    assert dst.read_bytes() == b'precious'
    _convert(extract, src, dst, '--force')
    out = _load(dst)['state_dict']
    assert torch.equal(out['backbone.stages.3.1.depthwise_conv.weight'],
                       teacher.stages[3][1].depthwise_conv.weight)
    assert sorted(os.listdir(tmp_path)) == ['dino.pth', 'out.pth']


def _classifier(out_channels=320):
    from mmpretrain.registry import MODELS
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='BCSSLConvNeXt', arch='atto', kernel_size=7,
            dw_norm_cfg=None),
        head=dict(
            type='LinearClsHead', num_classes=1000, in_channels=out_channels))
    # an earlier test may have left another default scope current
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg).eval()


def test_convnext_official(tmp_path):
    original = _random_backbone(kernel_size=7, bn=False)
    head = torch.nn.Linear(320, 1000)
    official = _to_official(original.state_dict())
    official.update({'head.weight': head.weight, 'head.bias': head.bias})

    # the layout is the one timm's own converter expects of FB checkpoints
    timm_model = timm.create_model('convnext_atto').eval()
    timm_model.load_state_dict(
        timm.models.convnext.checkpoint_filter_fn(
            dict(model=official), timm_model))

    src, dst = tmp_path / 'official.pth', tmp_path / 'out.pth'
    torch.save(dict(model=official), src)
    log = _convert(convnext, src, dst)
    assert '(official ConvNeXt)' in log and 'kernel size: 7' in log
    assert '24  stages.i.j.dwconv -> depthwise_conv' in log
    assert '2  head -> head.fc' in log

    out = _load(dst)
    assert out['meta']['layout'] == 'official'
    classifier = _classifier()
    classifier.load_state_dict(out['state_dict'], strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            classifier.backbone(x)[-1], _features(original, x))
        torch.testing.assert_close(
            classifier(x, mode='tensor'), timm_model(x), atol=1e-5, rtol=0)


def test_convnext_timm(tmp_path):
    torch.manual_seed(0)
    timm_model = timm.create_model('convnext_atto').eval()
    with torch.no_grad():
        for p in timm_model.parameters():  # layer scale is 1e-6 at init
            p.copy_(torch.randn_like(p) * 0.2)
    src, dst = tmp_path / 'timm.pth', tmp_path / 'out.pth'
    torch.save(timm_model.state_dict(), src)
    log = _convert(convnext, src, dst)
    assert '(timm ConvNeXt)' in log and 'dw_norm=None' in log
    assert '24  stages.i.blocks.j.mlp.fc1 -> stages.i.j.pointwise_conv1' in log
    assert '2  head.norm -> norm3' in log

    classifier = _classifier()
    classifier.load_state_dict(_load(dst)['state_dict'], strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        timm_feats = timm_model.forward_head(
            timm_model.forward_features(x), pre_logits=True)
        torch.testing.assert_close(
            classifier.backbone(x)[-1], timm_feats, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            classifier(x, mode='tensor'), timm_model(x), atol=1e-5, rtol=0)


def test_convnext_errors(tmp_path):
    src, dst = tmp_path / 'in.pth', tmp_path / 'out.pth'
    torch.save({'backbone.downsample_layers.0.0.weight': torch.randn(1)}, src)
    with pytest.raises(ConversionError, match='already in mmpretrain'):
        _convert(convnext, src, dst)

    torch.save({'model': {'patch_embed.proj.weight': torch.randn(1)}}, src)
    with pytest.raises(ConversionError) as e:
        _convert(convnext, src, dst)
    assert str(src) in str(e.value) and "'downsample_layers.*'" in str(e.value)

    # ConvNeXt V2 (GRN) is not plain ConvNeXt: its GRN keys are refused
    official = _to_official(
        _random_backbone(kernel_size=7, bn=False).state_dict())
    official['stages.0.0.grn.gamma'] = torch.zeros(1, 1, 1, 160)
    torch.save(dict(model=official), src)
    with pytest.raises(ConversionError, match=r'stages\.0\.0\.grn\.gamma'):
        _convert(convnext, src, dst)
    assert not dst.exists()


class _CreatesFile:
    """Unpickling it creates ``path``: a checkpoint that runs code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


@pytest.fixture
def malicious_checkpoint(tmp_path):
    """A checkpoint whose unpickling creates a marker file; and the marker."""
    marker = tmp_path / 'marker'
    src = tmp_path / 'evil.pth'
    model = _random_backbone()
    torch.save(
        dict(
            _dino_checkpoint(model, model), payload=_CreatesFile(str(marker))),
        src)
    # the payload works: a full unpickle does create the marker
    torch.load(src, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return src, marker


@pytest.mark.parametrize('name', sorted(CONVERTERS))
def test_converters_refuse_malicious_checkpoint(tmp_path, malicious_checkpoint,
                                                name):
    src, marker = malicious_checkpoint
    dst = tmp_path / 'out.pth'
    with pytest.raises(CheckpointLoadError) as e:
        _convert(CONVERTERS[name], src, dst)
    assert str(e.value).startswith(f'{src}: refused to load')
    assert 'io.open' in str(e.value)  # what the payload calls
    assert not marker.exists() and not dst.exists()


@pytest.mark.parametrize('name', sorted(CONVERTERS))
def test_converters_name_bad_source_files(tmp_path, name):
    dst = tmp_path / 'out.pth'
    empty, text = tmp_path / 'empty.pth', tmp_path / 'notes.pth'
    empty.write_bytes(b'')
    text.write_text('not a checkpoint\n')
    truncated = tmp_path / 'truncated.pth'  # e.g. an interrupted download
    torch.save(dict(w=torch.randn(1000)), truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(
            CheckpointLoadError,
            match=re.escape(
                f'{empty}: empty file (0 bytes), not a checkpoint')):
        _convert(CONVERTERS[name], empty, dst)
    with pytest.raises(
            CheckpointLoadError,
            match=re.escape(
                f'{truncated}: not a torch checkpoint, or truncated')):
        _convert(CONVERTERS[name], truncated, dst)
    with pytest.raises(CheckpointLoadError) as e:
        _convert(CONVERTERS[name], text, dst)
    assert str(e.value).startswith(f'{text}: ')
    with pytest.raises(
            FileNotFoundError,
            match=re.escape(repr(str(tmp_path / 'missing.pth')))):
        _convert(CONVERTERS[name], tmp_path / 'missing.pth', dst)
    assert not dst.exists()


def test_converters_output_paths(tmp_path):
    student, teacher = _random_backbone(seed=0), _random_backbone(seed=1)
    src = tmp_path / 'dino.pth'
    torch.save(_dino_checkpoint(student, teacher), src)

    # missing folders are created, as for `checkpoints/x.pth`
    dst = tmp_path / 'checkpoints' / 'sub' / 'teacher.pth'
    _convert(extract, src, dst)
    assert torch.equal(
        _load(dst)['state_dict']['backbone.stages.0.0.depthwise_conv.weight'],
        teacher.stages[0][0].depthwise_conv.weight)

    # a file where a folder should be: named, before the source is read
    a_file = tmp_path / 'notes.txt'
    a_file.write_text('x')
    with pytest.raises(NotADirectoryError) as e:
        _convert(extract, tmp_path / 'missing.pth', a_file / 'out.pth')
    assert str(e.value) == (f'cannot write {a_file}/out.pth: {a_file} is a '
                            'file, not a folder')
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        _convert(extract, src, tmp_path, '--force')
    assert a_file.read_text() == 'x'


@pytest.mark.parametrize('name,bad_input', [
    ('convnext_to_bcssl', 'empty source'),
    ('bcssl_fork_to_mmpretrain', 'malicious source'),
    ('extract_backbone', 'output under a file'),
])
def test_converter_cli_reports_user_errors_without_traceback(
        tmp_path, monkeypatch, malicious_checkpoint, name, bad_input):
    src, marker = malicious_checkpoint
    dst = tmp_path / 'out.pth'
    if bad_input == 'empty source':
        src = tmp_path / 'empty.pth'
        src.write_bytes(b'')
        expected = f'error: {src}: empty file (0 bytes), not a checkpoint'
    elif bad_input == 'malicious source':
        expected = f'error: {src}: refused to load'
    else:
        dst = src / 'out.pth'
        expected = f'error: cannot write {dst}: {src} is a file, not a folder'
    script = str(ROOT / 'tools' / 'model_converters' / f'{name}.py')
    monkeypatch.setattr(sys, 'argv', [script, str(src), str(dst)])
    # SystemExit with a message: Python prints it, without a traceback, to
    # stderr and exits with status 1
    with pytest.raises(SystemExit) as e, \
            contextlib.redirect_stdout(io.StringIO()):
        runpy.run_path(script, run_name='__main__')
    assert isinstance(e.value.code, str)
    assert e.value.code.startswith(expected), e.value.code
    assert not marker.exists() and not dst.exists()
