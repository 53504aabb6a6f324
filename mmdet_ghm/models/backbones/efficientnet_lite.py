"""EfficientNet-Lite, the TensorFlow Lite variant of EfficientNet, as a detector backbone.

The Lite models (Tan and Le's EfficientNet, re-designed for mobile
accelerators in the TensorFlow TPU repository's ``efficientnet/lite``)
differ from EfficientNet-B0 in three ways: no squeeze-and-excitation,
ReLU6 instead of Swish, and a stem (32 channels) and head (1280 channels)
that are not scaled with the width. Their checkpoints were trained with
TensorFlow's ``SAME`` padding (``Conv2dAdaptivePadding``: the extra pixel
of a stride-2 convolution on an even input goes to the bottom / right),
batch normalisation with ``eps=1e-3``, and inputs ``(x - 127) / 128`` in
RGB order.

Built from MMDetection's ``InvertedResidual`` (1x1 expansion, depthwise
k x k, 1x1 linear projection, identity shortcut when the shape allows) and
MMCV's ``ConvModule``. The 16 blocks are grouped by output stride, as
MMDetection's ``EfficientNet`` groups them, into ``self.layers``:

====  =======================  ========  ========
idx   content                  channels  stride
====  =======================  ========  ========
0     stem 3x3 conv            32        2
1     block 0                  16        2
2     blocks 1-2               24        4
3     blocks 3-4               40        8
4     blocks 5-10              112       16
5     blocks 11-15             320       32
6     head 1x1 conv            1280      32
====  =======================  ========  ========

``out_indices`` pick from this table; layers past the largest index are
not built. Only ``lite0`` (width and depth 1.0, 224 px input) is here:
the one whose weights this package converts and checks
(``tools/model_converters/efficientnet_lite2mmdet.py``).
"""
import os.path as osp
from typing import List, Sequence, Tuple

from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, Sequential
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet.models.layers import InvertedResidual
from mmdet.registry import MODELS

#: The command that writes the converted ImageNet checkpoint.
CONVERTER = 'tools/model_converters/efficientnet_lite2mmdet.py'
#: Where the configs expect it (relative to the working directory).
DEFAULT_CHECKPOINT = 'checkpoints/efficientnet-lite0_imagenet.pth'

#: Per arch: stem channels, head channels, and the block stages as
#: ``(repeats, kernel, stride, expand_ratio, out_channels)``; the first block
#: of a stage has its stride, the others stride 1.
ARCHS = {
    'lite0': dict(stem=32, head=1280, stages=(
        (1, 3, 1, 1, 16),
        (2, 3, 2, 6, 24),
        (2, 5, 2, 6, 40),
        (3, 3, 2, 6, 80),
        (3, 5, 1, 6, 112),
        (4, 5, 2, 6, 192),
        (1, 3, 1, 6, 320),
    )),
}
#: Which block stages (indices into ``stages``) each of ``layers[1:6]`` holds.
LAYER_STAGES = ((0, ), (1, ), (2, ), (3, 4), (5, 6))
NUM_LAYERS = len(LAYER_STAGES) + 2


def block_positions(arch: str = 'lite0') -> List[Tuple[int, int]]:
    """Where each block sits in the backbone, in the checkpoints' order.

    Returns:
        list: ``(layer, index)`` per block: block ``n`` is
        ``self.layers[layer][index]``.
    """
    stages = _arch(arch)['stages']
    positions = []
    for layer, stage_ids in enumerate(LAYER_STAGES, start=1):
        index = 0
        for s in stage_ids:
            for _ in range(stages[s][0]):
                positions.append((layer, index))
                index += 1
    return positions


def _arch(arch: str) -> dict:
    if arch not in ARCHS:
        raise ValueError(f'unknown EfficientNet-Lite arch {arch!r}; known: {", ".join(ARCHS)}')
    return ARCHS[arch]


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite backbone with multi-scale outputs for an FPN.

    Args:
        arch: ``'lite0'``.
        out_indices: Which of ``self.layers`` (module docstring's table)
            to return, in increasing order, each in ``[0, 6]``.
        frozen_stages: ``-1``: nothing frozen; ``k >= 0``: ``layers[0..k]``
            are put in eval mode with ``requires_grad=False`` (as ResNet's
            ``frozen_stages``: ``0`` is the stem alone, ``2`` the stem and the
            first three blocks).
        conv_cfg: Convolution type; the default is TensorFlow's ``SAME``
            padding, which the checkpoints were trained with.
        norm_cfg: Normalisation; ``requires_grad=False`` freezes the affine
            parameters of every BN layer.
        act_cfg: Activation after the stem, expansion, depthwise and head
            convolutions (not after the projections).
        norm_eval: Keep every BN layer in eval mode while training (frozen
            running statistics).
        drop_path_rate: Stochastic depth, rising linearly over the blocks
            from 0 to this value.
        with_cp: Gradient checkpointing in the blocks.
        init_cfg: Initialisation; ``dict(type='Pretrained', checkpoint=...)``
            loads converted weights. Default: Kaiming for convolutions and
            1 for BN weights, as MMDetection's ``EfficientNet``.

    Input: (N, 3, H, W). Output: a tuple with one (N, C_i, H / s_i, W / s_i)
    tensor per ``out_indices`` entry (sizes rounded up at each stride 2).
    """

    def __init__(self,
                 arch: str = 'lite0',
                 out_indices: Sequence[int] = (3, 4, 5),
                 frozen_stages: int = -1,
                 conv_cfg: dict = dict(type='Conv2dAdaptivePadding'),
                 norm_cfg: dict = dict(type='BN', eps=1e-3),
                 act_cfg: dict = dict(type='ReLU6'),
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 with_cp: bool = False,
                 init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                           dict(type='Constant', layer=['_BatchNorm', 'GroupNorm'], val=1))):
        super().__init__(list(init_cfg) if isinstance(init_cfg, tuple) else init_cfg)
        spec = _arch(arch)
        out_indices = tuple(out_indices)
        if (not out_indices or any(isinstance(i, bool) or not isinstance(i, int)
                                   or not 0 <= i < NUM_LAYERS for i in out_indices)
                or list(out_indices) != sorted(set(out_indices))):
            raise ValueError(f'out_indices must be increasing ints in [0, {NUM_LAYERS - 1}], '
                             f'got {out_indices!r}')
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or \
                not -1 <= frozen_stages < NUM_LAYERS:
            raise ValueError(f'frozen_stages must be an int in [-1, {NUM_LAYERS - 1}], '
                             f'got {frozen_stages!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        self.arch = arch
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        conv = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.layers = nn.ModuleList([ConvModule(3, spec['stem'], 3, stride=2, **conv)])
        num_blocks = sum(stage[0] for stage in spec['stages'])
        in_channels, block = spec['stem'], 0
        for stage_ids in LAYER_STAGES[:max(out_indices)]:
            blocks = []
            for s in stage_ids:
                repeats, kernel, stride, expand, out_channels = spec['stages'][s]
                for r in range(repeats):
                    mid = in_channels * expand
                    blocks.append(InvertedResidual(
                        in_channels, out_channels, mid, kernel_size=kernel,
                        stride=stride if r == 0 else 1, with_expand_conv=mid != in_channels,
                        drop_path_rate=drop_path_rate * block / max(num_blocks - 1, 1),
                        with_cp=with_cp, **conv))
                    in_channels, block = out_channels, block + 1
            self.layers.append(Sequential(*blocks))
        if max(out_indices) == NUM_LAYERS - 1:
            self.layers.append(ConvModule(in_channels, spec['head'], 1, **conv))
        self.out_channels = [self._channels(i) for i in out_indices]
        self._freeze_stages()

    def _channels(self, index: int) -> int:
        last = self.layers[index]
        if isinstance(last, Sequential):
            last = last[-1].linear_conv
        return last.conv.out_channels

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(N, 3, H, W) -> one feature map per ``out_indices`` entry."""
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def init_weights(self):
        """Initialise; a missing local ``Pretrained`` checkpoint names the converter.

        Raises:
            FileNotFoundError: ``init_cfg`` loads a checkpoint from a local
                path that does not exist.
        """
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            path = str(cfg.get('checkpoint'))
            if '://' not in path and not osp.isfile(path):
                raise FileNotFoundError(
                    f'EfficientNetLite: pretrained checkpoint {path!r} not found (working '
                    f'directory {osp.abspath(".")!r}). Convert the ImageNet weights first: '
                    f'python {CONVERTER} --out {path}')
        super().init_weights()

    def _freeze_stages(self):
        for layer in self.layers[:self.frozen_stages + 1]:
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Set the mode, keeping frozen layers (and, with ``norm_eval``, all BN) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
