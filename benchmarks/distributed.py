"""Fine-tuning throughput with 1 and 2 processes, and the bytes each worker sends per step.

    python benchmarks/distributed.py --steps 20

Every setup trains the same BERT classifier (default: the 2-layer 'small' BERT with KoBERT's
8,002-piece vocabulary) for --steps optimizer steps of --batch_size sentences per worker on
random token ids (max_len 64), after 3 warm-up steps, through kobert_gluon.training.distributed's
engines exactly as train() steps (sum of losses, gradients summed over the workers, clipped,
divided by the global batch):

- ``1 process``: the baseline, measured in the same run
- ``dist_sync``: 2 workers + 1 server + scheduler on 127.0.0.1 (kobert_gluon.training.launch)
- ``horovod``: 2 workers, Gloo over 127.0.0.1 (horovodrun), when horovod is installed

Traffic is read from the kernel's TCP counters of each worker's sockets (``ss -ti``) before
and after the timed steps, so it is what really crossed the (loopback) network per step. It
grows linearly with the number of parameters: every step each worker sends its whole gradient
(4 bytes a parameter) and receives the summed one. The last lines extrapolate from the measured
bytes per parameter to KoBERT's size.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

WARMUP_STEPS = 3
MAX_LEN = 64


def socket_bytes(pid):
    """(sent, received) over every TCP socket of process ``pid``."""
    listing = subprocess.run(['ss', '-tinpH'], capture_output=True, text=True, check=True).stdout
    sent = received = 0
    # ss prints each socket on one line and its counters on the next.
    for owner, counters in zip(*[iter(listing.splitlines())] * 2):
        if f'pid={pid},' in owner:
            sent += sum(int(v) for v in re.findall(r'bytes_sent:(\d+)', counters))
            received += sum(int(v) for v in re.findall(r'bytes_received:(\d+)', counters))
    return sent, received


def build_model(size):
    import mxnet as mx
    from kobert_gluon import BertConfig, build_classifier
    config = BertConfig.kobert() if size == 'kobert' else BertConfig.small(vocab_size=8002)
    model = build_classifier(config, num_classes=2, dropout=0.1)
    token_ids = mx.nd.ones((1, MAX_LEN), dtype='int32')
    model(token_ids, mx.nd.zeros_like(token_ids), mx.nd.array([MAX_LEN]))
    model.hybridize(static_alloc=True, static_shape=True)
    return model


def num_parameters(model):
    return sum(int(p.data().size) for p in model.collect_params().values())


def worker(args):
    import mxnet as mx
    import numpy as np
    from mxnet import autograd, gluon
    from kobert_gluon import create_engine, optimizer_step, synchronize_start

    engine = create_engine(args.worker)
    model = build_model(args.model)
    params = model.collect_params()
    params.setattr('grad_req', 'add')
    trainable = list(params.values())
    trainer = engine.make_trainer(params, 'bertadam', {'learning_rate': 1e-5, 'epsilon': 1e-9, 'wd': 0.01})
    synchronize_start(engine, model, trainer, MAX_LEN, mx.cpu())
    rng = np.random.RandomState(engine.rank)
    token_ids = mx.nd.array(rng.randint(5, 8002, (args.batch_size, MAX_LEN)), dtype='int32')
    segment_ids, valid_length = mx.nd.zeros_like(token_ids), mx.nd.array([MAX_LEN] * args.batch_size)
    label = mx.nd.array(rng.randint(0, 2, args.batch_size))
    loss_function = gluon.loss.SoftmaxCELoss()
    global_batch = args.batch_size * engine.num_workers

    def train_step():
        with autograd.record():
            loss = loss_function(model(token_ids, segment_ids, valid_length), label).sum()
        loss.backward()
        optimizer_step(trainer, trainable, global_batch, max_grad_norm=1.0)
        mx.nd.waitall()

    for _ in range(WARMUP_STEPS):
        train_step()
    engine.barrier()
    sent, received = socket_bytes(os.getpid())
    started = time.perf_counter()
    for _ in range(args.steps):
        train_step()
    seconds = time.perf_counter() - started
    sent_after, received_after = socket_bytes(os.getpid())
    total_seconds = engine.allreduce_sum('seconds', [seconds])[0]
    if engine.is_root:
        with open(args.output, 'w', encoding='utf-8') as out:
            json.dump({'workers': engine.num_workers, 'global_batch': global_batch,
                       'samples_per_second': global_batch * args.steps / (total_seconds / engine.num_workers),
                       'sent_per_step': (sent_after - sent) / args.steps,
                       'received_per_step': (received_after - received) / args.steps,
                       'parameters': num_parameters(model)}, out)


def run_setup(engine, args, output):
    from kobert_gluon import launch
    command = [sys.executable, os.path.abspath(__file__), '--worker', engine, '--output', output,
               '--steps', str(args.steps), '--batch_size', str(args.batch_size), '--model', args.model]
    if engine == 'none':
        subprocess.run(command, check=True)
    else:
        launch(command, engine, num_workers=2, timeout=1800)
    with open(output, encoding='utf-8') as result:
        return json.load(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--batch_size', type=int, default=16, help='sentences per worker and step')
    parser.add_argument('--model', choices=('small', 'kobert'), default='small')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--output', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import importlib.util
    setups = [('1 process', 'none'), ('dist_sync, 2 workers + 1 server', 'dist_sync')]
    if importlib.util.find_spec('horovod'):
        setups.append(('horovod (Gloo), 2 workers', 'horovod'))
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, engine in setups:
            rows.append((name, run_setup(engine, args, os.path.join(workdir, f'{engine}.json'))))
    baseline = rows[0][1]['samples_per_second']
    parameters = rows[0][1]['parameters']
    print(f'{args.model} BERT classifier, {parameters:,} parameters ({4 * parameters / 2**20:.1f} MiB of float32 '
          f'gradients), {args.steps} steps of {args.batch_size} sentences x {MAX_LEN} tokens per worker, '
          f'{os.cpu_count()} CPUs')
    print("| setup | global batch | samples/s | vs 1 process | MiB sent / step / worker | "
          "MiB received / step / worker | bytes per parameter |")
    print('|---|---:|---:|---:|---:|---:|---:|')
    for name, row in rows:
        traffic = row['sent_per_step'] + row['received_per_step']
        print(f"| {name} | {row['global_batch']} | {row['samples_per_second']:.1f} | "
              f"{row['samples_per_second'] / baseline:.2f}x | {row['sent_per_step'] / 2**20:.2f} | "
              f"{row['received_per_step'] / 2**20:.2f} | {traffic / parameters:.2f} |")
    kobert = num_parameters(build_model('kobert'))
    for name, row in rows[1:]:
        per_parameter = (row['sent_per_step'] + row['received_per_step']) / parameters
        print(f'{name}: at KoBERT size ({kobert:,} parameters) about {per_parameter * kobert / 2**20:.0f} MiB '
              f'sent + received per worker and step ({per_parameter:.2f} bytes per parameter, measured above)')


if __name__ == '__main__':
    main()
