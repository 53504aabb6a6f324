"""Loss benchmark at RetinaNet scale: inputs, interleaved timing, records and their tables.

Inputs are what RetinaNet's head passes for ``images`` images of ``H x W``:
9 anchors per location on the five FPN levels (strides 8-128), 80 classes,
integer labels (80 = background), the loss called once per level; box deltas
``(N, 4)`` with weights on the positives. Variants of one group run forward +
backward on the same tensors, interleaved inside each round; a group's first
variant is its baseline. The figures of a run form a *record* (JSON, under
``docs/results/benchmarks/``), from which the tables of ``docs/benchmark.md``
are generated (:func:`update_benchmark_blocks`), so the page says what a
committed run measured.

The baselines are the plain PyTorch losses a head could call instead:
``F.binary_cross_entropy_with_logits`` on a float one-hot target built
before timing (sigmoid classification), ``F.cross_entropy`` on integer
labels (softmax classification), MMDetection's ``L1Loss`` (regression).
"""
import datetime
import json
import os
import os.path as osp
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdet_ghm.losses.fused import kernels_compiled
from mmdet_ghm.utils.doc_blocks import block_pattern, regenerate_blocks

STRIDES = (8, 16, 32, 64, 128)
ANCHORS_PER_LOCATION = 9
SCHEMA = 1
#: Where committed records live, relative to the repository.
RECORDS_DIR = 'docs/results/benchmarks'

Level = Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], float]


def level_sizes(height: int, width: int, images: int) -> List[int]:
    """Anchors per FPN level for ``images`` images of ``height x width``."""
    sizes = []
    for stride in STRIDES:
        rows, cols = -(-height // stride), -(-width // stride)
        sizes.append(rows * cols * ANCHORS_PER_LOCATION * images)
    return sizes


def classification_inputs(sizes: Sequence[int], num_classes: int, device,
                          generator: torch.Generator) -> List[Level]:
    """Per level: logits ``(n, C)``, labels ``(n,)`` (0.2 % positive), weights (1 % ignored)."""
    levels = []
    for n in sizes:
        logits = (torch.randn(n, num_classes, generator=generator) * 1.5 - 4.6).to(device)
        labels = torch.full((n,), num_classes, dtype=torch.long)
        positive = torch.rand(n, generator=generator) < 0.002
        labels[positive] = torch.randint(0, num_classes, (int(positive.sum()),),
                                         generator=generator)
        weights = (torch.rand(n, generator=generator) > 0.01).float()
        levels.append((logits, labels.to(device), weights.to(device),
                       max(int(positive.sum()), 1)))
    return levels


def softmax_inputs(sizes: Sequence[int], num_classes: int, device,
                   generator: torch.Generator) -> List[Level]:
    """All levels as one call: logits ``(N, C + 1)``, labels ``(N,)``, weights ``(N,)``.

    A softmax dense head (SSD, ``GHMSSDHead``) calls its loss once per batch.
    """
    (logits, labels, weights, avg), = classification_inputs([sum(sizes)], num_classes + 1,
                                                           device, generator)
    labels = torch.where(labels == num_classes + 1, num_classes, labels)
    return [(logits, labels, weights, avg)]


def regression_inputs(sizes: Sequence[int], device, generator: torch.Generator) -> List[Level]:
    """Per level: predicted deltas ``(n, 4)``, targets, weights on the 0.2 % positives."""
    levels = []
    for n in sizes:
        pred = (torch.randn(n, 4, generator=generator) * 0.3).to(device)
        target = (torch.randn(n, 4, generator=generator) * 0.3).to(device)
        positive = (torch.rand(n, 1, generator=generator) < 0.002).float()
        levels.append((pred, target, positive.expand(n, 4).contiguous().to(device),
                       max(int(positive.sum()), 1)))
    return levels


class PlainBCE(nn.Module):
    """``F.binary_cross_entropy_with_logits`` on float one-hot targets built beforehand.

    The targets of ``levels`` are made in the constructor, outside the timed
    calls: the baseline is the loss itself, not the one-hot expansion
    (MMDetection's ``CrossEntropyLoss`` does that expansion in the call).
    """

    def __init__(self, levels: Sequence[Level]):
        super().__init__()
        self._targets = {}
        for logits, labels, _, _ in levels:
            self._targets[id(labels)] = F.one_hot(labels, logits.shape[1] + 1)[:, :-1].float()

    def forward(self, pred, labels, weight=None, avg_factor=None):
        return F.binary_cross_entropy_with_logits(pred, self._targets[id(labels)])


class PlainCE(nn.Module):
    """``F.cross_entropy`` over ``(N, C + 1)`` logits and integer labels."""

    def forward(self, pred, labels, weight=None, avg_factor=None):
        return F.cross_entropy(pred, labels)


class EagerKernels(nn.Module):
    """``loss`` called with its kernels eager, to compare with the compiled ones in one process."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, *args, **kwargs):
        with kernels_compiled(False):
            return self.loss(*args, **kwargs)


def run_once(loss: Callable, levels: Sequence[Level]) -> torch.Tensor:
    """Forward + backward of ``loss`` over all levels, as the head calls it."""
    total = 0
    for pred, target, weight, avg_factor in levels:
        pred = pred.detach().requires_grad_()
        total = total + loss(pred, target, weight, avg_factor=avg_factor)
    total.backward()
    return total


def _status_bytes(key: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'{key} not in /proc/self/status')


class PeakMemory:
    """Peak memory allocated during a block, beyond what was live before it.

    CUDA: ``torch.cuda.max_memory_allocated`` growth. CPU: growth of the
    process's peak resident set (``VmHWM``, reset through
    ``/proc/self/clear_refs``); meaningful when glibc returns freed tensors
    to the system (``MALLOC_MMAP_THRESHOLD_`` fixed low, as the benchmark
    script does).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = None

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # resets VmHWM to the current RSS
            self.start = _status_bytes('VmRSS')
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.start
        else:
            self.peak = _status_bytes('VmHWM') - self.start


def timed(fn: Callable, device: torch.device, clock: Callable[[], float] = time.perf_counter
          ) -> float:
    """Seconds of ``fn()`` by ``clock`` (wall time by default; device work included)."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = clock()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return clock() - start


def time_variants(variants: Dict[str, Callable], levels: Sequence[Level], rounds: int,
                  device: torch.device, clock: Callable[[], float] = time.perf_counter,
                  alternate: bool = False
                  ) -> Tuple[Dict[str, List[float]], Dict[str, float]]:
    """Seconds per round of each variant, interleaved, and each variant's first call.

    The first call (compilation, allocator warm-up) is timed separately and
    not counted in the rounds. ``alternate``: every other round runs the
    variants in reverse order, so that no variant always runs first (on
    inputs its predecessor left in the caches, or not).
    """
    first = {name: timed(lambda: run_once(loss, levels), device, clock)
             for name, loss in variants.items()}
    times = {name: [] for name in variants}
    order = list(variants.items())
    for index in range(rounds):
        for name, loss in (order[::-1] if alternate and index % 2 else order):
            times[name].append(timed(lambda: run_once(loss, levels), device, clock))
    return times, first


def benchmark_group(variants: Dict[str, Callable], levels: Sequence[Level], rounds: int,
                    device: torch.device, measure_memory: bool = True) -> List[Dict]:
    """Figures of each variant of one group (the first is the baseline)."""
    times, first = time_variants(variants, levels, rounds, device)
    elements = sum(level[0].numel() for level in levels)
    base = statistics.median(times[next(iter(variants))])
    rows = []
    for name, loss in variants.items():
        row = dict(name=name, median_ms=statistics.median(times[name]) * 1e3,
                   min_ms=min(times[name]) * 1e3,
                   ratio=statistics.median(times[name]) / base,
                   first_call_s=first[name], rounds_ms=[t * 1e3 for t in times[name]])
        if measure_memory:
            with PeakMemory(device) as peak:
                run_once(loss, levels)
            row.update(peak_extra_mib=peak.peak / 2**20, bytes_per_element=peak.peak / elements)
        rows.append(row)
    return rows


def environment(device: torch.device) -> Dict:
    """Versions, machine, threads, date and the commit of the imported ``mmdet_ghm``.

    Paths are not recorded (records travel between machines).
    """
    import mmdet_ghm
    from mmdet_ghm.study.records import code_state
    from mmdet_ghm.study.records import environment as study_environment
    env = study_environment()
    env.pop('mmdet_ghm_path', None)
    env['device'] = str(device)
    if device.type == 'cuda':
        env['machine']['gpu'] = torch.cuda.get_device_name(device)
    env['compile'] = os.environ.get('MMDET_GHM_COMPILE', '1')
    return dict(env=env, code=code_state(osp.dirname(osp.dirname(mmdet_ghm.__file__))))


def make_record(groups: Dict[str, Dict], setting: Dict, device: torch.device,
                note: str = '') -> Dict:
    """A JSON-ready record: the groups' figures, the setting and the environment."""
    record = dict(schema=SCHEMA, kind='loss-benchmark', note=note, setting=setting,
                  groups=groups)
    record.update(environment(device))
    # Other work on the machine changes the figures: say how busy it was.
    record['env']['load_average'] = [round(x, 2) for x in os.getloadavg()]
    return record


def write_record(path: str, record: Dict) -> None:
    """Write ``record`` to a new file; an existing record is never overwritten."""
    if osp.exists(path):
        raise FileExistsError(f'benchmark record {path} exists; choose another --out')
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'x') as f:
        json.dump(record, f, indent=1)
        f.write('\n')


def load_record(records_dir: str, name: str) -> Dict:
    """The record ``records_dir/name.json``."""
    path = osp.join(records_dir, f'{name}.json')
    if not osp.exists(path):
        raise FileNotFoundError(f'no benchmark record {path} (a benchmark block names {name!r})')
    with open(path) as f:
        return json.load(f)


def _num(value: float) -> str:
    return f'{value:.0f}' if value >= 10 else f'{value:.1f}'


def render_record(record: Dict) -> str:
    """Markdown: where and when it ran, then one table per group."""
    env, code, setting = record['env'], record['code'], record['setting']
    machine = env['machine']
    compiled = 'eager kernels (MMDET_GHM_COMPILE=0)' if env.get('compile') == '0' else \
        'compiled kernels'
    head = (f"Record `{record['name']}`: {env['date'][:10]}, commit "
            f"`{(code.get('commit') or 'unknown')[:7]}`{' (dirty)' if code.get('dirty') else ''}, "
            f"{env['device']} ({machine['cpu']}, {machine['cores']} cores, "
            f"{machine['torch_threads']} threads, load average "
            f"{', '.join(str(x) for x in env.get('load_average', [])) or 'not recorded'}), "
            f"torch {env['torch']}, {compiled}; "
            f"{setting['images']} images of {setting['height']}x{setting['width']}, "
            f"{setting['num_classes']} classes, median of {setting['rounds']} rounds.")
    parts = [head]
    for group in record['groups'].values():
        base = group['variants'][0]['name']
        lines = [f"\n| {group['title']} | fwd+bwd ms | × {base} | first call s | "
                 'peak extra MiB | bytes / element |',
                 '| --- | ---: | ---: | ---: | ---: | ---: |']
        for row in group['variants']:
            lines.append(f"| {row['name']} | {_num(row['median_ms'])} | {row['ratio']:.2f} | "
                         f"{row['first_call_s']:.1f} | {_num(row.get('peak_extra_mib', 0))} | "
                         f"{row.get('bytes_per_element', 0):.1f} |")
        parts.append('\n'.join(lines))
    return '\n'.join(parts)


def render_change(*records: Dict) -> str:
    """Markdown table: each variant's ratio to its baseline in two or more records.

    Rows are the variants of the last record; ``—`` where an earlier one lacks it.
    """
    header = ' | '.join(f"× baseline, `{record['name']}`" for record in records)
    lines = [f'| variant | {header} |', '| --- |' + ' ---: |' * len(records)]
    for key, group in records[-1]['groups'].items():
        base = group['variants'][0]['name'].split(' (')[0]
        for row in group['variants'][1:]:
            cells = []
            for record in records:
                rows = {r['name']: r for r in record['groups'].get(key, {}).get('variants', [])}
                cells.append(f"{rows[row['name']]['ratio']:.2f}" if row['name'] in rows else '—')
            lines.append(f"| {row['name']} (× {base}) | {' | '.join(cells)} |")
    return '\n'.join(lines)


BLOCK = block_pattern('benchmark')


def update_benchmark_blocks(text: str, records_dir: str) -> str:
    """``text`` (a Markdown page) with every ``<!-- benchmark:SPEC:begin/end -->`` block regenerated.

    ``SPEC`` is a record name (its tables, :func:`render_record`) or
    ``BEFORE,...,AFTER`` (the change over two or more records, :func:`render_change`).
    """
    def render(spec: str) -> str:
        names = spec.split(',')
        records = []
        for name in names:
            record = load_record(records_dir, name)
            record['name'] = name
            records.append(record)
        return render_record(records[0]) if len(records) == 1 else render_change(*records)

    return regenerate_blocks(text, BLOCK, render)[0]


def default_record_name(device: torch.device) -> str:
    """``<device>-<UTC date and time>``, e.g. ``cpu-20261130-181500``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{device.type}-{now.strftime('%Y%m%d-%H%M%S')}"
