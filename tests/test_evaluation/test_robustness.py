"""CE / mCE arithmetic and the ImageNet-A / -R 200-class masks."""
import os.path as osp

import pytest
import timm
import torch

from bcssl_mm.evaluation import robustness as rb


def test_alexnet_table_is_the_15_corruptions():
    assert tuple(rb.ALEXNET_ERRORS) == rb.IMAGENET_C_CORRUPTIONS
    assert rb.ALEXNET_ERRORS['gaussian_noise'] == 0.886428
    assert rb.ALEXNET_ERRORS['jpeg_compression'] == 0.606500


def test_ce_against_alexnet_by_hand():
    errors = {1: .7, 2: .8, 3: .9, 4: .95, 5: .99}
    # (0.7 + 0.8 + 0.9 + 0.95 + 0.99) / (5 x 0.886428)
    ce = rb.corruption_error(errors, rb.ALEXNET_ERRORS['gaussian_noise'])
    assert ce == pytest.approx(0.9792109455026239, rel=1e-12)


def test_mce_on_a_hand_made_table():
    # corruption i errs f_i = (i + 1) / 20 times AlexNet at every severity,
    # so CE_i = f_i and mCE = 100 x mean(1..15) / 20 = 40
    errors = {
        c: {s: rb.ALEXNET_ERRORS[c] * (i + 1) / 20
            for s in rb.SEVERITIES}
        for i, c in enumerate(rb.IMAGENET_C_CORRUPTIONS)
    }
    metrics = rb.corruption_metrics(errors)
    for i, c in enumerate(rb.IMAGENET_C_CORRUPTIONS):
        assert metrics[f'CE/{c}'] == pytest.approx((i + 1) / 20, rel=1e-12)
        assert metrics[f'error/{c}/3'] == errors[c][3]
    assert metrics['mCE'] == pytest.approx(40., rel=1e-12)
    mean = sum(sum(t.values()) for t in errors.values()) / 75
    assert metrics['mean_error'] == pytest.approx(100 * mean, rel=1e-12)


def test_ce_with_a_custom_reference_sums_before_dividing():
    errors = {'a': {1: .25, 2: .5}, 'b': {1: .5, 2: .5}}
    reference = {'a': {1: .5, 2: .5, 3: .9}, 'b': {1: .25, 2: .75}}
    metrics = rb.corruption_metrics(errors, reference)
    assert metrics['CE/a'] == .75  # (.25 + .5) / (.5 + .5); severity 3 unused
    assert metrics['CE/b'] == 1.  # (.5 + .5) / (.25 + .75), not mean(2, 2/3)
    assert metrics['mCE'] == 87.5
    assert metrics['mean_error'] == 43.75
    # no reference: errors only
    plain = rb.corruption_metrics(errors, None)
    assert 'mCE' not in plain and not any(k.startswith('CE/') for k in plain)
    # read back from a result's metrics: the same table
    assert rb.errors_from_metrics(metrics) == errors


def test_ce_refuses_what_it_cannot_normalise():
    with pytest.raises(ValueError, match='severities 1-5'):
        rb.corruption_error({1: .5, 2: .5}, rb.ALEXNET_ERRORS['fog'], 'fog')
    with pytest.raises(ValueError, match=r'severities \[3\]'):
        rb.corruption_error({1: .5, 3: .5}, {1: .5, 2: .5}, 'fog')
    with pytest.raises(ValueError, match="no errors for 'speckle_noise'"):
        rb.corruption_metrics(
            {'speckle_noise': {s: .5
                               for s in rb.SEVERITIES}})
    with pytest.raises(ValueError, match='not a fraction'):
        rb.corruption_metrics({'fog': {s: 50. for s in rb.SEVERITIES}})
    with pytest.raises(ValueError, match='no error/'):
        rb.errors_from_metrics({'top1': 50.}, 'x.result.json')


@pytest.mark.parametrize('subset', ['imagenet-a', 'imagenet-r'])
def test_subset_lists_are_timms(subset):
    indices, synsets = rb.imagenet_subset(subset)
    info = osp.join(osp.dirname(timm.__file__), 'data', '_info')
    stem = subset.replace('-', '_')
    with open(osp.join(info, f'{stem}_indices.txt')) as f:
        assert indices == [int(line) for line in f.read().split()]
    with open(osp.join(info, f'{stem}_synsets.txt')) as f:
        assert synsets == f.read().split()
    assert len(indices) == len(set(indices)) == 200
    all_synsets = rb.imagenet_1k_synsets()
    assert len(all_synsets) == 1000 and all_synsets == sorted(all_synsets)
    assert [all_synsets[i] for i in indices] == synsets


@pytest.mark.parametrize('subset', ['imagenet-a', 'imagenet-r'])
def test_masking_scores_among_the_200_classes(subset):
    indices, _ = rb.imagenet_subset(subset)
    outside = next(i for i in range(1000) if i not in indices)
    logits = torch.zeros(3, 1000)
    # every row's overall argmax is a class outside the subset
    logits[:, outside] = 10.
    logits[0, indices[17]] = 5.  # best of the 200: position 17
    logits[1, indices[199]] = 5.
    logits[2, indices[0]] = 5.
    targets = torch.tensor([17, 199, 3])
    scores = rb.masked_logits(logits, indices)
    assert scores.shape == (3, 200)
    assert scores.argmax(1).tolist() == [17, 199, 0]
    assert rb.topk_correct(scores, targets, 1).tolist() == [True, True, False]
    # the unmasked 1000-way argmax would have been wrong for every row
    full_targets = torch.tensor(indices)[targets]
    assert not rb.topk_correct(logits, full_targets, 1).any()


def test_topk_correct():
    scores = torch.tensor([[.1, .5, .4], [.3, .2, .5]])
    targets = torch.tensor([2, 1])
    assert rb.topk_correct(scores, targets, 1).tolist() == [False, False]
    assert rb.topk_correct(scores, targets, 2).tolist() == [True, False]
    assert rb.topk_correct(scores, targets, 3).tolist() == [True, True]


def test_class_folders_must_be_among_the_synsets():
    _, synsets = rb.imagenet_subset('imagenet-r')
    assert rb.check_class_folders([synsets[5], synsets[2]], synsets,
                                  '/data/r') == [5, 2]
    with pytest.raises(ValueError, match='/data/r: 1 class folder.*n00000001'):
        rb.check_class_folders([synsets[0], 'n00000001'], synsets, '/data/r')
