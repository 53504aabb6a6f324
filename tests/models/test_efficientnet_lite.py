"""EfficientNetLite's structure, padding, freezing and errors (random weights, no download).

The ImageNet weights and their classification check are in
``tests/tools/test_efficientnet_lite2mmdet.py``.
"""
import pytest
import torch
import torch.nn.functional as F
from mmdet.models.layers import InvertedResidual
from mmdet.registry import MODELS
from torch import nn

from mmdet_ghm.models.backbones import efficientnet_lite as lite
from mmdet_ghm.models.backbones.efficientnet_lite import EfficientNetLite, block_positions

ALL = tuple(range(7))


def _bn_layers(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_registered_in_mmdet_models():
    assert MODELS.get('EfficientNetLite') is EfficientNetLite
    assert type(MODELS.build(dict(type='EfficientNetLite', out_indices=(2, )))) is EfficientNetLite


def test_lite0_structure_shapes_and_parameters():
    model = EfficientNetLite(out_indices=ALL)
    assert model.out_channels == [32, 16, 24, 40, 112, 320, 1280]
    blocks = [b for b in model.modules() if isinstance(b, InvertedResidual)]
    assert len(blocks) == 16
    # no squeeze-excitation, ReLU6 everywhere an activation is
    assert not any(b.with_se for b in blocks)
    acts = {type(m) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.SiLU))}
    assert acts == {nn.ReLU6}
    assert [b.depthwise_conv.conv.kernel_size[0] for b in blocks] == \
        [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    assert [b.with_res_shortcut for b in blocks] == \
        [False, False, True, False, True, False, True, True, False, True, True,
         False, True, True, True, False]
    # block 0 has no expansion (ratio 1); the others expand 6x
    assert [b.with_expand_conv for b in blocks] == [False] + [True] * 15
    # parameters of the checkpoint's backbone (without the 1000-class classifier)
    assert sum(p.numel() for p in model.parameters()) == 3_371_008
    outs = model(torch.zeros(2, 3, 224, 224))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (32, 112, 112), (16, 112, 112), (24, 56, 56), (40, 28, 28), (112, 14, 14),
        (320, 7, 7), (1280, 7, 7)]
    # odd sizes round up at each stride 2, as TensorFlow's SAME padding does
    outs = model(torch.zeros(1, 3, 225, 97))
    assert [tuple(o.shape[2:]) for o in outs][2:6] == [(57, 25), (29, 13), (15, 7), (8, 4)]


def test_block_positions_follow_the_stride_groups():
    assert block_positions() == (
        [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1)] + [(4, i) for i in range(6)] +
        [(5, i) for i in range(5)])


def test_stride_two_pads_bottom_and_right_as_tensorflow():
    model = EfficientNetLite(out_indices=(0, )).eval()
    x = torch.randn(1, 3, 32, 32)
    stem = model.layers[0]
    # SAME padding of a 3x3 stride-2 conv on an even input: 0 before, 1 after
    want = stem.activate(stem.bn(F.conv2d(F.pad(x, [0, 1, 0, 1]), stem.conv.weight, stride=2)))
    (got, ) = model(x)
    assert torch.allclose(got, want, atol=1e-6)
    symmetric = stem.activate(stem.bn(F.conv2d(x, stem.conv.weight, stride=2, padding=1)))
    assert not torch.allclose(got, symmetric, atol=1e-3)


def test_only_the_needed_layers_are_built():
    assert len(EfficientNetLite(out_indices=(3, )).layers) == 4
    assert len(EfficientNetLite(out_indices=(3, 4, 5)).layers) == 6
    assert len(EfficientNetLite(out_indices=(6, )).layers) == 7


def test_frozen_stages_freeze_parameters_and_statistics():
    model = EfficientNetLite(out_indices=(3, 4), frozen_stages=2)
    frozen = [p.requires_grad for layer in model.layers[:3] for p in layer.parameters()]
    trained = [p.requires_grad for layer in model.layers[3:] for p in layer.parameters()]
    assert frozen and not any(frozen)
    assert trained and all(trained)
    model.train()
    assert not any(bn.training for bn in _bn_layers(model.layers[:3]))
    assert all(bn.training for bn in _bn_layers(model.layers[3:]))
    before = [bn.running_mean.clone() for bn in _bn_layers(model)]
    model(torch.randn(2, 3, 64, 64))
    after = [bn.running_mean for bn in _bn_layers(model)]
    n_frozen = len(_bn_layers(model.layers[:3]))
    assert all(torch.equal(a, b) for a, b in zip(before[:n_frozen], after[:n_frozen]))
    assert not any(torch.equal(a, b) for a, b in zip(before[n_frozen:], after[n_frozen:]))
    assert all(p.requires_grad for p in EfficientNetLite(frozen_stages=-1).parameters())
    stem_only = EfficientNetLite(frozen_stages=0)
    assert [any(p.requires_grad for p in layer.parameters()) for layer in stem_only.layers] == \
        [False, True, True, True, True, True]


def test_norm_eval_keeps_every_statistic_and_frozen_affine_stays():
    model = EfficientNetLite(norm_eval=True, norm_cfg=dict(type='BN', eps=1e-3,
                                                           requires_grad=False))
    model.train()
    assert model.training and not any(bn.training for bn in _bn_layers(model))
    assert not any(p.requires_grad for bn in _bn_layers(model) for p in bn.parameters())
    before = [bn.running_var.clone() for bn in _bn_layers(model)]
    model(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(a, bn.running_var) for a, bn in zip(before, _bn_layers(model)))
    assert all(bn.training for bn in _bn_layers(EfficientNetLite().train()))


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='lite1'), "'lite1'"),
    (dict(out_indices=(7, )), r'\(7,\)'),
    (dict(out_indices=()), r'\(\)'),
    (dict(out_indices=(4, 3)), r'\(4, 3\)'),
    (dict(frozen_stages=7), 'got 7'),
    (dict(frozen_stages=-2), 'got -2'),
    (dict(drop_path_rate=1.0), 'got 1.0'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EfficientNetLite(**kwargs)


def test_missing_pretrained_checkpoint_names_the_converter(tmp_path):
    path = str(tmp_path / 'nothing' / 'lite0.pth')
    model = EfficientNetLite(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(FileNotFoundError) as info:
        model.init_weights()
    assert f'python {lite.CONVERTER} --out {path}' in str(info.value)
    assert lite.CONVERTER == 'tools/model_converters/efficientnet_lite2mmdet.py'


def test_default_init_is_kaiming_and_unit_bn():
    model = EfficientNetLite(out_indices=(2, ))
    model.init_weights()
    stem = model.layers[0]
    assert torch.equal(stem.bn.weight, torch.ones(32))
    # Kaiming normal (fan_out, ReLU gain): std sqrt(2 / (32 * 3 * 3)) = 0.083;
    # PyTorch's default (uniform, bound 1 / sqrt(27)) would give 0.111
    assert abs(stem.conv.weight.std().item() - (2 / (32 * 9)) ** 0.5) < 0.01
