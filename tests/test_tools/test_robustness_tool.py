"""tools/benchmarks/robustness.py end to end on tiny generated sets."""
import os
import os.path as osp
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from bcssl_mm.evaluation import read_result
from bcssl_mm.evaluation.robustness import imagenet_1k_synsets, imagenet_subset
from conftest import load_tool, randomize_bn

tool = load_tool('benchmarks/robustness.py')
make_corruptions = load_tool('data/make_corruptions.py')
CORRUPTIONS = ['gaussian_noise', 'motion_blur']

# a tiny BC-SSL + linear head classifier on the 64-px shapes of the fixture
TINY_CLASSIFIER = """\
custom_imports = dict(imports=['bcssl_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
data_preprocessor = dict(
    num_classes={num_classes},
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='BCSSLConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 16, 16]),
        kernel_size=3),
    head=dict(type='LinearClsHead', num_classes={num_classes},
              in_channels=16))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=72, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs')
]
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    dataset=dict(
        type='CustomDataset', data_root='{data_root}',
        pipeline=test_pipeline))
"""


def make_classifier(tmp, data_root, num_classes, seed, name, rows=(0, 1, 2)):
    """A config, and a checkpoint of its model: random weights, except the
    head rows ``rows`` (one per class folder of ``data_root``), set to the
    class means of the features, so that predictions depend on the image.
    """
    config = osp.join(tmp, f'{name}.py')
    with open(config, 'w') as f:
        f.write(
            TINY_CLASSIFIER.format(
                num_classes=num_classes, data_root=data_root))
    cfg = Config.fromfile(config)
    model = build_model(cfg)
    torch.manual_seed(seed)
    model.init_weights()
    randomize_bn(model, seed)
    pipeline = Compose(cfg.test_pipeline)
    with torch.no_grad():
        means = []
        for cls in sorted(os.listdir(data_root)):
            data = [
                pipeline(dict(img_path=osp.join(data_root, cls, f)))
                for f in sorted(os.listdir(osp.join(data_root, cls)))
            ]
            batch = model.data_preprocessor(
                dict(
                    inputs=[d['inputs'] for d in data],
                    data_samples=[d['data_samples'] for d in data]), False)
            means.append(model.extract_feat(batch['inputs'])[-1].mean(0))
        means = torch.stack(means)
        model.head.fc.weight[list(rows)] = 10 * (means - means.mean(0))
        model.head.fc.bias.zero_()
    checkpoint = osp.join(tmp, f'{name}.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(experiment_name=f'{name}_20261124_063000')), checkpoint)
    return config, checkpoint


def build_model(cfg):
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS
    return MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.data_preprocessor)).eval()


@torch.no_grad()
def direct_logits(config, checkpoint, root, resize=True):
    """{relative image path: logits}, one image at a time, no tool code."""
    cfg = Config.fromfile(config)
    model = build_model(cfg)
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    model.load_state_dict(state)
    pipeline = Compose(
        [t for t in cfg.test_pipeline if resize or t['type'] != 'ResizeEdge'])
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith('.png'):
                data = pipeline(dict(img_path=osp.join(d, f)))
                batch = model.data_preprocessor(
                    dict(
                        inputs=[data['inputs']],
                        data_samples=[data['data_samples']]), False)
                out[osp.relpath(osp.join(d, f), root)] = model(
                    batch['inputs'], mode='tensor')[0]
    return out


def run(config, checkpoint, work_dir, *extra):
    args = tool.get_args_parser().parse_args(
        [config, checkpoint, '--work-dir', work_dir, *extra])
    return tool.main(args)


@pytest.fixture(scope='module')
def corrupted(shapes_cls_root, tmp_path_factory):
    """2 corruptions x 2 severities of the fixture's 6 val images."""
    out = str(tmp_path_factory.mktemp('corrupted'))
    src = osp.join(shapes_cls_root, 'cls', 'val')
    make_corruptions.main(make_corruptions.get_args_parser().parse_args(
        [src, out, '--corruptions', *CORRUPTIONS, '--severities', '1', '3']))
    return out


def test_corrupted_set_end_to_end(shapes_cls_root, corrupted, tmp_path):
    val = osp.join(shapes_cls_root, 'cls', 'val')
    classes = sorted(os.listdir(val))
    config, ckpt = make_classifier(str(tmp_path), val, 3, 0, 'probe_a')
    # batch 4 straddles the 6-image folders
    run(config, ckpt, str(tmp_path / 'a'), '--corrupted', corrupted)
    result = read_result(str(tmp_path / 'a' / 'corruption.result.json'))
    assert result['pretrain']['name'] == 'probe_a'
    assert result['source']['num_images'] == 24
    assert 'ResizeEdge' in result['source']['pipeline']
    assert 'mCE' not in result['metrics']

    logits = direct_logits(config, ckpt, corrupted)
    predictions = {p: int(v.argmax()) for p, v in logits.items()}
    assert len(set(predictions.values())) > 1  # not a constant model
    errors = {}
    for c in CORRUPTIONS:
        for s in (1, 3):
            wrong = [
                predictions[p] != classes.index(p.split(os.sep)[2])
                for p in predictions if p.startswith(f'{c}{os.sep}{s}')
            ]
            assert len(wrong) == 6
            errors[c, s] = sum(wrong) / 6
            assert result['metrics'][f'error/{c}/{s}'] == pytest.approx(
                errors[c, s], abs=1e-12)
    assert result['metrics']['mean_error'] == pytest.approx(
        100 * sum(errors.values()) / 4, abs=1e-9)

    # another model, normalised by the first: CE = sum E / sum E_ref
    config_b, ckpt_b = make_classifier(str(tmp_path), val, 3, 1, 'probe_b')
    run(config_b, ckpt_b, str(tmp_path / 'b'),
        '--corrupted', corrupted, '--reference',
        str(tmp_path / 'a' / 'corruption.result.json'), '--pretrain-name',
        'random_bcssl-atto-k9_init_shapes')
    b = read_result(str(tmp_path / 'b' / 'corruption.result.json'))
    assert b['pretrain']['backbone'] == 'bcssl-atto-k9'
    ces = []
    for c in CORRUPTIONS:
        ce = sum(b['metrics'][f'error/{c}/{s}']
                 for s in (1, 3)) / sum(errors[c, s] for s in (1, 3))
        assert b['metrics'][f'CE/{c}'] == pytest.approx(ce, rel=1e-12)
        ces.append(ce)
    assert b['metrics']['mCE'] == pytest.approx(50 * sum(ces), rel=1e-12)


def test_imagenet_sets_end_to_end(shapes_cls_root, corrupted, tmp_path):
    val = osp.join(shapes_cls_root, 'cls', 'val')
    synsets = imagenet_1k_synsets()
    mask, a_synsets = imagenet_subset('imagenet-a')
    # ImageNet-C: the corrupted shapes under three ImageNet-1k wnids
    wnids_c = [synsets[0], synsets[1], synsets[2]]
    # ImageNet-A: the clean shapes under three of A's 200 wnids
    wnids_a = [a_synsets[3], a_synsets[7], a_synsets[11]]
    shapes = sorted(os.listdir(val))
    root_c, root_a = tmp_path / 'c', tmp_path / 'a'
    shutil.copytree(corrupted, root_c)
    for c in CORRUPTIONS:
        for s in ('1', '3'):
            for shape, wnid in zip(shapes, wnids_c):
                os.rename(root_c / c / s / shape, root_c / c / s / wnid)
    for shape, wnid in zip(shapes, wnids_a):
        shutil.copytree(osp.join(val, shape), root_a / wnid)
    config, ckpt = make_classifier(
        str(tmp_path), val, 1000, 2, 'probe_in1k', (0, 1, 2))
    # the same class means for A's three classes
    state = torch.load(ckpt, weights_only=True)
    weight = state['state_dict']['head.fc.weight']
    weight[[mask[3], mask[7], mask[11]]] = weight[[0, 1, 2]]
    torch.save(state, ckpt)
    run(config, ckpt, str(tmp_path / 'wd'), '--imagenet-c', str(root_c),
        '--corruptions', *CORRUPTIONS, '--severities', '1', '3')
    c = read_result(str(tmp_path / 'wd' / 'imagenet_c.result.json'))
    logits_c = direct_logits(config, ckpt, str(root_c), resize=False)

    # now the 1000-way argmax is always a class outside A (and not C's)
    outside = next(i for i in range(3, 1000) if i not in mask)
    state['state_dict']['head.fc.bias'][outside] = 1e4
    torch.save(state, ckpt)
    run(config, ckpt, str(tmp_path / 'wd'), '--imagenet-a', str(root_a),
        '--imagenet-sketch', str(root_a))
    a = read_result(str(tmp_path / 'wd' / 'imagenet_a.result.json'))
    sketch = read_result(str(tmp_path / 'wd' / 'imagenet_sketch.result.json'))
    # ImageNet-C images are evaluated without the resize
    assert 'Resize' not in c['source']['pipeline']
    # only 2 severities: AlexNet's means cannot normalise them
    assert 'mCE' not in c['metrics'] and 'CE/motion_blur' not in c['metrics']
    assert sketch['metrics']['top1'] == 0.

    errors_c = []
    for corruption in CORRUPTIONS:
        for s in ('1', '3'):
            wrong = [
                int(v.argmax()) != synsets.index(p.split(os.sep)[2])
                for p, v in logits_c.items()
                if p.startswith(f'{corruption}{os.sep}{s}')
            ]
            assert c['metrics'][f'error/{corruption}/{s}'] == \
                pytest.approx(sum(wrong) / 6, abs=1e-12)
            errors_c.append(sum(wrong) / 6)
    assert 0 < sum(errors_c) < 4  # neither always right nor always wrong
    logits_a = direct_logits(config, ckpt, str(root_a))
    top1 = [
        int(v[mask].argmax()) == a_synsets.index(p.split(os.sep)[0])
        for p, v in logits_a.items()
    ]
    top5 = [
        a_synsets.index(p.split(os.sep)[0]) in v[mask].topk(5).indices
        for p, v in logits_a.items()
    ]
    assert a['metrics']['top1'] == pytest.approx(100 * sum(top1) / 6)
    # scored among the 200, unlike the 1000-way argmax (sketch: 0)
    assert a['metrics']['top1'] > 0
    assert a['metrics']['top5'] == pytest.approx(100 * sum(top5) / 6)
    assert a['source']['num_classes'] == 3
    sketch5 = [
        synsets.index(p.split(os.sep)[0]) in v.topk(5).indices
        for p, v in logits_a.items()
    ]
    assert sketch['metrics']['top5'] == pytest.approx(100 * sum(sketch5) / 6)


def test_bad_layouts_are_named(shapes_cls_root, corrupted, tmp_path):
    val = osp.join(shapes_cls_root, 'cls', 'val')
    config, ckpt = make_classifier(str(tmp_path), val, 3, 0, 'probe')

    def fails(match, *extra):
        with pytest.raises(tool.LayoutError, match=match):
            run(config, ckpt, str(tmp_path / 'wd'), *extra)

    fails('nothing to evaluate')
    fails(
        f'2 folder.*missing.*: {corrupted}/gaussian_noise/5, '
        f'{corrupted}/motion_blur/5$', '--corrupted', corrupted,
        '--severities', '5')
    fails(f'1 folder.*: {corrupted}/fog$', '--corrupted', corrupted,
          '--corruptions', 'fog')
    # ImageNet-C needs its 15 corruptions x 5 severities unless told
    fails(
        f'ImageNet-C: 19 folder.*: {corrupted}/gaussian_noise/2, '
        f'{corrupted}/gaussian_noise/4, {corrupted}/gaussian_noise/5, '
        f'{corrupted}/shot_noise, ', '--imagenet-c', corrupted)
    bad = tmp_path / 'bad'
    shutil.copytree(corrupted, bad)
    (bad / 'motion_blur' / 'high').mkdir()
    fails(r"motion_blur holds \['high'\]", '--corrupted', str(bad))
    shutil.rmtree(bad / 'motion_blur' / 'high')
    os.rename(bad / 'gaussian_noise' / '3' / 'circle',
              bad / 'gaussian_noise' / '3' / 'disc')
    fails(f'{bad}/gaussian_noise/3: 1 class folder.*disc', '--corrupted',
          str(bad))
    # ImageNet class folders are wnids
    fails(f'{val}: 3 class folder.*circle', '--imagenet-r', val)
    os.rename(bad / 'gaussian_noise' / '3' / 'disc',
              bad / 'gaussian_noise' / '3' / 'circle')
    for d, _, files in os.walk(bad / 'motion_blur' / '1'):
        for f in files:
            os.remove(osp.join(d, f))
    fails(f'{bad}/motion_blur/1: Found 0 files', '--corrupted', str(bad))
    fails('--reference applies', '--imagenet-a', val, '--reference', 'x')
    # a checkpoint of another head is refused, listing the key
    config_k, _ = make_classifier(str(tmp_path), val, 1000, 0, 'probe_k')
    with pytest.raises(tool.CheckpointMismatchError, match='head.fc.weight'):
        run(config_k, ckpt, str(tmp_path / 'wd'), '--corrupted', corrupted)


def test_pretrain_is_named_by_the_backbone_init_checkpoint(tmp_path):
    teacher = str(tmp_path / 'teacher.pth')
    torch.save(
        dict(
            state_dict={},
            meta=dict(
                experiment_name='dino_bcssl-atto-k9_1xb32-coslr-10e_shapes'
                '_20261124_063000',
                epoch=10)), teacher)
    probe = str(tmp_path / 'probe.pth')
    torch.save(dict(state_dict={}, meta=dict(experiment_name='linear')), probe)
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(init_cfg=[
                    dict(type='TruncNormal', layer='Linear'),
                    dict(type='Pretrained', checkpoint=teacher)
                ]))))
    pretrain = tool.pretrain_entry(cfg, probe, None)
    assert pretrain['name'] == 'dino_bcssl-atto-k9_1xb32-coslr-10e_shapes'
    assert pretrain['epochs'] == 10 and pretrain['checkpoint_epoch'] == 10
    assert tool.pretrain_entry(cfg, probe, 'random_x_init_shapes')['name'] \
        == 'random_x_init_shapes'
    # no init checkpoint: the classifier checkpoint's own run name
    assert tool.pretrain_entry(Config(dict(model=dict())), probe,
                               None)['name'] == 'linear'
