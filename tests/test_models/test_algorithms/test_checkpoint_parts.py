"""The part prefixes of ``checkpoint_parts`` name the backbones of the
algorithms' real state dicts."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import bcssl_mm  # noqa: F401
from bcssl_mm.models.algorithms.checkpoint_parts import (ALGORITHMS, PARTS,
                                                         detect_algorithm,
                                                         source_meta)
from bcssl_mm.utils.state_dict_remap import ConversionError, remap
from conftest import ROOT

CONFIGS = ROOT / 'configs'
# demo config -> (algorithm, its parts present in the model)
DEMOS = {
    'dino/dino_bcssl-atto-k9_1xb32-coslr-10e_shapes.py':
    ('dino', ['teacher', 'student']),
    'selfpatch/selfpatch_bcssl-atto-k9_1xb32-coslr-10e_shapes.py':
    ('dino', ['teacher', 'student']),
    'mocov3/mocov3_bcssl-atto-k9_1xb32-coslr-10e_shapes.py':
    ('mocov3', ['base', 'momentum']),
    'maelite/maelite_vit-pico-p16_1xb32-coslr-100e_shapes.py': ('mae',
                                                                ['encoder']),
    'maelite/dmaelite_vit-pico-p16_1xb32-coslr-100e_shapes.py':
    ('mae', ['encoder', 'teacher']),
}


@pytest.mark.parametrize('config', sorted(DEMOS))
def test_parts_are_the_models_backbones(config):
    cfg = Config.fromfile(str(CONFIGS / config))
    cfg.model.pop('teacher_checkpoint', None)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    # a distinct value per tensor: a DINO teacher starts equal to the student
    for i, tensor in enumerate(model.state_dict().values()):
        if tensor.is_floating_point():
            tensor.fill_(i)
    state_dict = model.state_dict()
    name, parts = DEMOS[config]
    algorithm = detect_algorithm(state_dict, config, None)
    assert algorithm.name == name
    for part in algorithm.parts:
        if part not in parts:  # plain MAE has no teacher
            with pytest.raises(ConversionError, match='no key starts with'):
                algorithm.check_part(part, state_dict, config)
            continue
        assert algorithm.check_part(part, state_dict, config) == part
        out, _ = remap(state_dict, algorithm.part_rules(part), config)
        # the prefix names a module of the model: exactly its tensors,
        # renamed, and nothing of the other parts, necks or heads
        module = model.get_submodule(algorithm.parts[part].rstrip('.'))
        expected = module.state_dict()
        assert list(out) == [f'backbone.{k}' for k in expected]
        for k, v in expected.items():
            assert torch.equal(out[f'backbone.{k}'], v), k
        # the config builds the part under model.<config_key>
        assert isinstance(cfg.model[algorithm.config_key(part)], dict)


def test_markers_and_default_parts():
    markers = [a.marker for a in ALGORITHMS]
    assert len(set(markers)) == len(markers)
    assert {a.name: a.default_part
            for a in ALGORITHMS} == dict(
                dino='teacher', mocov3='base', mae='encoder')
    assert PARTS == sorted({p for a in ALGORITHMS for p in a.parts})
    with pytest.raises(ConversionError, match='--part is one of'):
        ALGORITHMS[0].check_part('momentum', {'teacher.backbone.w': 0}, 'x')


def test_source_meta_keeps_plain_run_facts():
    ckpt = dict(
        meta=dict(
            epoch=3,
            iter=30,
            experiment_name='dino_x',
            seed=0,
            hook_msgs=dict(last_ckpt='a.pth')))
    assert source_meta(ckpt) == dict(
        epoch=3, iter=30, experiment_name='dino_x')
    assert source_meta(dict(meta=dict(epoch=torch.ones(1)))) == {}
    assert source_meta(dict(state_dict={})) == source_meta(None) == {}
