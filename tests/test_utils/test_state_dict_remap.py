import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bcssl_mm.utils.state_dict_remap import (ConversionError, Rule,
                                             check_output, remap,
                                             save_checkpoint)

PACKAGE = Path(__file__).parents[2] / 'bcssl_mm'

# Imports the engine with every bcssl_mm.models import refused. The package's
# own __init__ (which imports bcssl_mm.models to register the models) is
# skipped by a stand-in package module: what is checked is what the engine
# and its imports pull in.
_IMPORT_ENGINE = f'''
import importlib.abc, sys, types

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'bcssl_mm.models' or name.startswith('bcssl_mm.models.'):
            raise ImportError('the engine imported ' + name)

sys.meta_path.insert(0, Refuse())
package = types.ModuleType('bcssl_mm')
package.__path__ = [{str(PACKAGE)!r}]
sys.modules['bcssl_mm'] = package
import bcssl_mm.utils.state_dict_remap as engine
assert callable(engine.remap) and callable(engine.save_checkpoint)
print(sorted(m for m in sys.modules if m.startswith('bcssl_mm')))
'''


def test_engine_does_not_import_the_models():
    proc = subprocess.run([sys.executable, '-c', _IMPORT_ENGINE],
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = proc.stdout.split('\n')[-2]
    assert 'bcssl_mm.utils.state_dict_remap' in loaded
    assert 'bcssl_mm.models' not in loaded


def test_remap_renames_drops_and_transforms(capsys):
    sd = {
        'enc.0.weight': torch.randn(4, 2, 1, 1),
        'enc.1.weight': torch.randn(4),
        'teacher.proj.a': torch.randn(2),
        'teacher.proj.b': torch.randn(2),
    }
    rules = [
        Rule(r'enc\.0\.weight', 'backbone.fc.weight', 'enc.0 -> fc',
             lambda w: w.flatten(1)),
        Rule(r'enc\.(\d+)\.(.+)', r'backbone.layer\1.\2', 'enc.i -> layeri'),
        Rule(r'teacher\..+', None, 'teacher'),
    ]
    out, summary = remap(sd, rules, 'src.pth')
    assert list(out) == ['backbone.fc.weight', 'backbone.layer1.weight']
    w = sd['enc.0.weight']  # (4, 2, 1, 1)
    assert torch.equal(out['backbone.fc.weight'], w.view(4, 2))
    assert torch.equal(out['backbone.layer1.weight'], sd['enc.1.weight'])
    # a copy: the source's storage is not saved with the result
    assert out['backbone.layer1.weight'].data_ptr() != \
        sd['enc.1.weight'].data_ptr()
    assert summary.mapped == {'enc.0 -> fc': 1, 'enc.i -> layeri': 1}
    assert summary.dropped == {'teacher': {'teacher.proj.*': 2}}
    summary.print()
    printed = capsys.readouterr().out
    assert 'mapped 2 keys:' in printed and 'dropped 2 keys:' in printed
    assert '       2    teacher.proj.*' in printed


def test_remap_refuses_unmatched_colliding_and_non_tensor_keys():
    rule = Rule(r'a\.(\w+)', r'b.\1', 'a -> b')
    sd = {f'z.{i}': torch.ones(1) for i in range(25)}
    with pytest.raises(ConversionError) as e:
        remap(dict(sd, **{'a.x': torch.ones(1)}), [rule], 'src.pth')
    msg = str(e.value)
    assert msg.startswith('src.pth: 25 keys match no conversion rule')
    assert '    z.0\n' in msg and '    z.19\n' in msg and 'z.20' not in msg
    assert msg.endswith('... and 5 more')

    rules = [rule, Rule(r'b\.(\w+)', r'b.\1', 'b (unchanged)')]
    with pytest.raises(ConversionError, match="'a.x' and 'b.x' both map to"):
        remap({'a.x': torch.ones(1), 'b.x': torch.ones(1)}, rules, 'src.pth')

    with pytest.raises(ConversionError, match="'a.x' is a int, not a tensor"):
        remap({'a.x': 3}, [rule], 'src.pth')


def test_save_checkpoint_verifies_before_the_rename(tmp_path, capsys):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'precious')
    sd = {'w': torch.arange(3.)}
    seen = []

    def failing(path):
        seen.append(torch.load(path, weights_only=True))
        raise ConversionError('wrong')

    with pytest.raises(ConversionError, match='wrong'):
        save_checkpoint(sd, str(dst), dict(a=1), verify=failing, force=True)
    # the callback saw the full checkpoint under another name
    assert seen[0]['meta'] == dict(a=1)
    assert torch.equal(seen[0]['state_dict']['w'], sd['w'])
    assert dst.read_bytes() == b'precious'
    assert sorted(os.listdir(tmp_path)) == ['out.pth']  # no temporary file

    save_checkpoint(sd, str(dst), dict(a=1), verify=lambda p: None, force=True)
    assert torch.equal(
        torch.load(dst, weights_only=True)['state_dict']['w'], sd['w'])
    assert sorted(os.listdir(tmp_path)) == ['out.pth']
    assert f'saved 1 tensors to {dst}' in capsys.readouterr().out


def test_save_checkpoint_creates_missing_folders(tmp_path):
    dst = tmp_path / 'checkpoints' / 'sub' / 'x.pth'
    save_checkpoint({'w': torch.ones(1)}, str(dst), {})
    assert torch.load(dst, weights_only=True)['meta'] == {}


def test_check_output_names_what_is_in_the_way(tmp_path):
    a_file = tmp_path / 'file.txt'
    a_file.write_text('x')
    with pytest.raises(NotADirectoryError) as e:
        check_output(str(a_file / 'sub' / 'out.pth'))
    assert str(e.value) == (f'cannot write {a_file}/sub/out.pth: {a_file} '
                            'is a file, not a folder')
    with pytest.raises(IsADirectoryError, match='is a folder'):
        check_output(str(tmp_path), force=True)
    with pytest.raises(FileExistsError, match='--force'):
        check_output(str(a_file))
    check_output(str(a_file), force=True)
    check_output(str(tmp_path / 'missing' / 'out.pth'))
