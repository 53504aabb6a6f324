"""What a checkpoint of a config's model costs, and what RNGStateHook adds to it.

Builds the config's model and optimizer (pretrained weights switched off:
only the shapes matter), gives the optimizer its state with one step on
zero gradients, and saves a checkpoint as MMEngine lays it out (meta,
state_dict, optimizer, param_schedulers) with and without the generator
states, ``--repeat`` times each to a file in a temporary folder. Prints the
sizes and the median save times, and writes them to ``--out`` (default
``docs/results/checkpoints/cost.json``, merged by config, each entry with
its versions, machine, date and commit).

Example::

    python tools/analysis_tools/checkpoint_cost.py \\
        configs/synthetic/retinanet_tiny-r18_fpn_ghm_synthetic-shapes.py
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:  # run from a clone without installing
    sys.path.insert(0, REPO)
OUT = 'docs/results/checkpoints/cost.json'


def _no_pretrained(node):
    if isinstance(node, dict):
        if 'init_cfg' in node:
            node['init_cfg'] = None
        for value in node.values():
            _no_pretrained(value)
    elif isinstance(node, list):
        for value in node:
            _no_pretrained(value)


def checkpoint_of(config: str) -> dict:
    """A checkpoint dict of ``config``'s model with a stepped optimizer."""
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS

    import mmdet_ghm  # noqa: F401  (registers the plugin's types)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    _no_pretrained(cfg.model)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    for param in model.parameters():
        if param.requires_grad:
            param.grad = torch.zeros_like(param)
    wrapper.optimizer.step()
    return dict(meta=dict(epoch=1, iter=10, seed=0), state_dict=model.state_dict(),
                optimizer=wrapper.state_dict(), param_schedulers=[])


def measure(config: str, repeat: int) -> dict:
    """Sizes (bytes) and median save times (ms) with and without the generator states."""
    from mmdet_ghm.engine.hooks.rng_state_hook import CHECKPOINT_KEY
    from mmdet_ghm.engine.rng_state import capture_rng_states, restore_rng_states
    checkpoint = checkpoint_of(config)
    result = dict(parameters=sum(v.numel() for v in checkpoint['state_dict'].values()))
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'checkpoint.pth')
        for name, with_states in (('plain', False), ('with_rng_states', True)):
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                saved = dict(checkpoint)
                if with_states:
                    saved[CHECKPOINT_KEY] = capture_rng_states()
                torch.save(saved, path)
                times.append(time.perf_counter() - start)
            result[name] = dict(bytes=os.path.getsize(path),
                                save_ms=round(statistics.median(times) * 1e3, 2))
    result['rng_states_bytes'] = result['with_rng_states']['bytes'] - result['plain']['bytes']
    result.update(rng_capture_ms=_per_call_ms(capture_rng_states),
                  rng_restore_ms=_per_call_ms(lambda states=capture_rng_states():
                                              restore_rng_states(states)))
    return result


def _per_call_ms(fn, calls: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return round((time.perf_counter() - start) / calls * 1e3, 4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--out', default=OUT, help='JSON record (merged by config); "" for none')
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f'--repeat must be >= 1, got {args.repeat}')
    from mmdet_ghm.analysis.loss_benchmark import environment
    results = {}
    for config in args.configs:
        if not osp.isfile(config):
            parser.error(f'no config file {config!r}')
        key = osp.relpath(osp.abspath(config), REPO)
        results[key] = measure(config, args.repeat)
        results[key].update(environment(torch.device('cpu')), repeat=args.repeat)  # env, code
        r = results[key]
        print(f'{key}: {r["parameters"] / 1e6:.2f} M parameters; checkpoint '
              f'{r["plain"]["bytes"] / 2**20:.1f} MiB, saved in {r["plain"]["save_ms"]:.0f} ms; '
              f'with the generator states +{r["rng_states_bytes"]} bytes, '
              f'{r["with_rng_states"]["save_ms"]:.0f} ms')
    if args.out:
        path = osp.join(REPO, args.out)
        record = {}
        if osp.isfile(path):
            with open(path) as f:
                record = json.load(f)
        record.setdefault('configs', {}).update(results)
        with open(path, 'w') as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.write('\n')
        print(f'written to {args.out}')


if __name__ == '__main__':
    main()
