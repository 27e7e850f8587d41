#!/usr/bin/env python
"""OpenMP thread settings for mxnet 1.9.1 on an idle and on a busy machine.

    python benchmarks/threads.py                  # about 3 minutes on 2 cores
    python benchmarks/threads.py --repeats 3 --json threads.json

mxnet 1.9.1's libmxnet.so uses GNU OpenMP (``ldd`` shows libgomp.so.1), so the candidates are
libgomp's: the thread count, ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` (KMP_BLOCKTIME is Intel's
and ignored here). Each setting runs two workloads, each in a fresh process (OpenMP reads its
variables once, at load):

- ``small ops``: gluonnlp's Pad/Stack batchify on small arrays plus a few tiny NDArray ops, the
  pattern of gluonnlp's own test_pad_wrap_batchify that suffered on a busy machine;
- ``bert forward``: BertConfig.small(), batch 8 x 64 tokens.

"busy" adds a second process that runs BERT forwards with every CPU's worth of threads (the
library's old default) for the whole measurement. The table gives seconds (median of
``--repeats``) and the ratio to one thread measured in the same conditions.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.dirname(HERE))  # the checkout this script belongs to

from kobert_gluon import runtime  # noqa: E402  (imports nothing heavy)

NCPU = runtime.cpu_count()
# libgomp's own default spin count, spelled out: any wait setting keeps kobert_gluon's off.
LIBGOMP_DEFAULT = {'GOMP_SPINCOUNT': '300000'}
SETTINGS = {
    '1 thread': {'OMP_NUM_THREADS': '1', **LIBGOMP_DEFAULT},
    f'{NCPU} threads (old default)': {'OMP_NUM_THREADS': str(NCPU), **LIBGOMP_DEFAULT},
    f'{NCPU} threads, OMP_WAIT_POLICY=PASSIVE': {'OMP_NUM_THREADS': str(NCPU), 'OMP_WAIT_POLICY': 'PASSIVE'},
    f'{NCPU} threads, GOMP_SPINCOUNT=10000': {'OMP_NUM_THREADS': str(NCPU), 'GOMP_SPINCOUNT': '10000'},
    'kobert_gluon default (nothing set)': {},
}
CONTROLLED = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'OMP_WAIT_POLICY',
              'GOMP_SPINCOUNT', 'KMP_BLOCKTIME')
WORKLOADS = ('small ops', 'bert forward')


def small_ops(rounds):
    import gluonnlp as nlp
    import mxnet as mx
    import numpy as np
    rng = np.random.RandomState(0)
    samples = [(rng.randint(0, 100, size=rng.randint(3, 20)).astype('int32'), rng.randint(0, 2))
               for _ in range(16)]
    batchify = nlp.data.batchify.Tuple(nlp.data.batchify.Pad(axis=0, pad_val=1), nlp.data.batchify.Stack())
    for _ in range(rounds):
        token_ids, labels = batchify(samples)
        mask = (token_ids != 1).astype('float32')
        (mask.sum(axis=1) + labels.astype('float32')).asnumpy()
        mx.nd.concat(token_ids, token_ids, dim=1).asnumpy()


def bert_forward(rounds):
    import mxnet as mx
    from kobert_gluon import BertConfig, build_classifier
    model = build_classifier(BertConfig.small(), num_classes=2)
    model.hybridize(static_alloc=True)
    token_ids = mx.nd.ones((8, 64), dtype='int32')
    segment_ids = mx.nd.zeros((8, 64), dtype='int32')
    valid_length = mx.nd.full((8,), 64, dtype='int32')
    model(token_ids, segment_ids, valid_length).asnumpy()  # build the graph
    for _ in range(rounds):
        model(token_ids, segment_ids, valid_length).asnumpy()


def worker(workload, rounds):
    import kobert_gluon  # noqa: F401  (its defaults apply where the setting leaves a variable unset)
    started = time.perf_counter()
    (small_ops if workload == 'small ops' else bert_forward)(rounds)
    return time.perf_counter() - started


def run(workload, rounds, setting, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env.update(setting)
    command = [sys.executable, os.path.abspath(__file__), '--worker', workload, '--rounds', str(rounds)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_busy_neighbour():
    """A second mxnet process doing BERT forwards on every CPU's worth of threads, until stopped."""
    env = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    env['OMP_NUM_THREADS'] = str(NCPU)
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), '--worker', 'bert forward',
                             '--rounds', '1000000'], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(args):
    results = {}
    for condition in ('idle', 'busy'):
        neighbour = start_busy_neighbour() if condition == 'busy' else None
        try:
            if neighbour:
                time.sleep(5)  # let it load mxnet and start computing
            names = list(SETTINGS)
            for repeat in range(args.repeats):
                # Each round starts at another setting: the machine's other load drifts.
                for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                    setting = SETTINGS[name]
                    for workload in WORKLOADS:
                        rounds = args.small_rounds if workload == 'small ops' else args.bert_rounds
                        seconds = run(workload, rounds, setting)
                        results.setdefault((condition, workload, name), []).append(seconds)
                        print(f'{condition:5} {workload:12} {name:45} {seconds:7.2f} s', file=sys.stderr, flush=True)
        finally:
            if neighbour:
                neighbour.terminate()
                neighbour.wait()
    return results


def table(results):
    lines = [f'{NCPU} CPUs; load average at the end {os.getloadavg()[0]:.1f}. Seconds (median), and '
             f'the ratio to 1 thread in the same conditions (below 1: faster).', '',
             '| setting | ' + ' | '.join(f'{w} {c}' for c in ('idle', 'busy') for w in WORKLOADS) + ' |',
             '|---|' + '---:|' * (2 * len(WORKLOADS))]
    for name in SETTINGS:
        cells = []
        for condition in ('idle', 'busy'):
            for workload in WORKLOADS:
                seconds = statistics.median(results[(condition, workload, name)])
                baseline = statistics.median(results[(condition, workload, '1 thread')])
                cells.append(f'{seconds:.2f} ({seconds / baseline:.2f}×)')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--small-rounds', type=int, default=3000)
    parser.add_argument('--bert-rounds', type=int, default=30)
    parser.add_argument('--json', dest='json_path')
    parser.add_argument('--worker', choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument('--rounds', type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.rounds)))
        return 0
    results = measure(args)
    print(table(results))
    if args.json_path:
        with open(args.json_path, 'w', encoding='utf-8') as out:
            json.dump({'|'.join(k): v for k, v in results.items()}, out, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
