"""The MoCo v3 linear-probe configs build, freeze all but the head, and
follow official MoCo v3's main_lincls.py (docs/recipes.md §8)."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS

import bcssl_mm  # noqa: F401
from bcssl_mm.evaluation.results import parse_pretrain_name
from bcssl_mm.utils.state_dict_remap import save_checkpoint
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / 'configs' / 'mocov3' / 'benchmarks'
CONFIGS = sorted(BENCHMARKS.glob('*_linear-*.py'))
# backbone -> (type, head in features, lr x 256 / batch, pretraining epochs)
EXPECTED = {
    'resnet50': ('ResNet', 2048, 0.1, 100),
    'vit-s-p16': ('MoCoV3ViT', 384, 3., 300),
    # the ViT value (the config says why)
    'bcssl-t-k9': ('BCSSLConvNeXt', 768, 3., 300),
}


def _backbone_name(path: Path) -> str:
    return path.name.split('_linear-')[0]


@pytest.fixture(scope='module', autouse=True)
def mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def test_every_backbone_has_a_config():
    assert {_backbone_name(p) for p in CONFIGS} == set(EXPECTED)
    for path in CONFIGS:
        assert path.name.endswith('_linear-8xb128-coslr-90e_in1k.py')


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_is_main_lincls_protocol(path):
    cfg = Config.fromfile(str(path))
    _, _, lr_per_256, epochs = EXPECTED[_backbone_name(path)]
    # batch 1024 = 8 GPUs x 128; lr = lr_per_256 x 1024 / 256
    batch = 8 * cfg.train_dataloader.batch_size
    assert batch == cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.optim_wrapper.optimizer == dict(
        type='SGD', lr=lr_per_256 * batch / 256, momentum=0.9, weight_decay=0.)
    [sched] = cfg.param_scheduler
    assert (sched.type, sched.eta_min, sched.by_epoch) == \
        ('CosineAnnealingLR', 0., True)
    assert 'end' not in sched  # T_max follows max_epochs
    assert (cfg.train_cfg.max_epochs, cfg.train_cfg.val_interval) == (90, 1)
    assert {'type': 'LinearProbeResultHook'} in cfg.custom_hooks

    # RandomResizedCrop 224 + flip; Resize 256 (bilinear, torchvision's
    # default in main_lincls.py) + CenterCrop 224
    train = cfg.train_dataloader.dataset.pipeline
    assert [t.type for t in train[1:3]] == ['RandomResizedCrop', 'RandomFlip']
    assert (train[1].scale, train[1].interpolation) == (224, 'bilinear')
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        val = loader.dataset.pipeline
        assert (val[1].type, val[1].scale, val[1].interpolation) == \
            ('ResizeEdge', 256, 'bilinear')
        assert (val[2].type, val[2].crop_size) == ('CenterCrop', 224)
    for t in list(train) + list(cfg.val_dataloader.dataset.pipeline):
        TRANSFORMS.build(t)

    # the base encoder of the run, named after its MoCo v3 config
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained' and init_cfg.prefix == 'backbone.'
    run = parse_pretrain_name(Path(init_cfg.checkpoint).stem)
    assert (run['method'], run['backbone'], run['epochs'], run['data']) == \
        ('mocov3', _backbone_name(path), epochs, 'in1k')


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_config_builds_frozen_with_pooled_features(path):
    cfg = Config.fromfile(str(path))
    backbone_type, dim, _, _ = EXPECTED[_backbone_name(path)]
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == backbone_type
    assert [n for n, p in model.named_parameters()
            if p.requires_grad] == ['head.fc.weight', 'head.fc.bias']
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 64, 64))
    assert feats[-1].shape == (1, dim)
    assert model.head.fc.in_features == dim
    if backbone_type == 'MoCoV3ViT':  # MoCo v3's ViT-S: 12 heads, not 6
        assert model.backbone.layers[0].attn.num_heads == 12


def test_vit_probe_loads_the_extracted_base_encoder(tmp_path):
    path = BENCHMARKS / 'vit-s-p16_linear-8xb128-coslr-90e_in1k.py'
    cfg = Config.fromfile(str(path))
    init_cfg = cfg.model.backbone.pop('init_cfg')
    torch.manual_seed(0)
    base = MODELS.build(cfg.model.backbone)
    # a MoCo v3 checkpoint (the contract layout), reduced to the keys the
    # extraction reads or drops: base encoder, momentum encoder, predictor
    state_dict = {f'backbone.{k}': v for k, v in base.state_dict().items()}
    state_dict.update({
        f'momentum_encoder.backbone.{k}': torch.zeros_like(v)
        for k, v in base.state_dict().items()
    })
    state_dict['head.predictor.mlp.0.weight'] = torch.randn(4, 4)
    src, dst = tmp_path / 'mocov3.pth', tmp_path / 'base.pth'
    save_checkpoint(
        state_dict, str(src),
        dict(experiment_name=Path(init_cfg.checkpoint).stem, epoch=300))
    extract = load_tool('model_converters/extract_backbone.py')
    extract.main(extract.get_args_parser().parse_args([str(src), str(dst)]))

    cfg.model.backbone.init_cfg = dict(init_cfg, checkpoint=str(dst))
    model = MODELS.build(cfg.model)
    model.init_weights()  # strict: any mismatch raises, listing the keys
    for k, v in base.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
