#!/usr/bin/env python
"""Throughput and latency of ``kobert-gluon serve`` with dynamic batching on and off.

    python benchmarks/serve.py                          # demo model and KoBERT size, 10 s a cell
    python benchmarks/serve.py --duration 5 --models demo --clients 1 16
    python benchmarks/serve.py --demo-model runs/demo-20261126-101500/best

For each model two server processes run on 127.0.0.1: dynamic batching on, and
``--no-batching`` (one request per forward pass, the baseline). For 1, 4 and 16 concurrent
clients, each server in turn gets every client sending one sentence per request, back to back
over a kept-alive connection, for ``--duration`` seconds (after ``--warmup`` untimed seconds);
alternating the two keeps a change in machine load from favouring one of them. Reported:
sentences/s and p50/p99 request latency, then the on/off throughput ratio at the most clients.

Models: ``demo`` is the demo model (trained here for one epoch unless ``--demo-model`` names
one); ``kobert`` is a randomly initialised BERTClassifier of KoBERT's size (12 x 768, SKT's
tokenizer from ``$KOBERT_GLUON_SHARED/kobert``): its speed is KoBERT's, its labels are noise.
Sentences are the embedded demo set's. Exits 1 when batching is not faster at the most clients.
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
if os.path.isdir(os.path.join(REPO_ROOT, 'kobert_gluon')) and REPO_ROOT not in sys.path:
    sys.path.insert(1, REPO_ROOT)  # benchmark the checkout this script belongs to

READY = re.compile(r'serving \S+ on http://([\d.]+):(\d+)/')
KOBERT_SPIECE = os.path.join('kobert', 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
SETTINGS = {'on': [], 'off': ['--no-batching']}


# ---------------------------------------------------------------------------- models

def demo_model(workdir):
    from kobert_gluon import TrainConfig, train

    output_dir = os.path.join(workdir, 'demo-run')
    train(TrainConfig.demo(output_dir=output_dir, num_epochs=1))
    return os.path.join(output_dir, 'best')


def kobert_size_model(workdir, shared_dir, max_len):
    """A randomly initialised 12 x 768 classifier directory with KoBERT's tokenizer."""
    import mxnet as mx
    from kobert_gluon import BertConfig, LabelMap, TextClassifier, build_classifier, get_bert_tokenizer, get_vocab

    spiece = os.path.join(shared_dir, KOBERT_SPIECE)
    if not os.path.isfile(spiece):
        sys.exit(f'{spiece}: not found; set KOBERT_GLUON_SHARED or --shared-dir (or use --models demo)')
    vocab = get_vocab(spiece)
    config = BertConfig.kobert()
    model = build_classifier(config, num_classes=2, ctx=mx.cpu())
    classifier = TextClassifier(model, get_bert_tokenizer(spiece, vocab), LabelMap(['긍정', '부정']), config,
                                max_len, {'tokenizer': spiece})
    classifier.logits(['첫 순전파가 미뤄진 초기화를 끝냅니다'])  # deferred initialisation needs one forward pass
    return classifier.save(os.path.join(workdir, 'kobert-size'))


def demo_sentences():
    from kobert_gluon import calibration_sample

    return calibration_sample()


# ---------------------------------------------------------------------------- measuring

class Server:
    def __init__(self, model_dir, flags, max_batch):
        command = [sys.executable, '-m', 'kobert_gluon.cli', 'serve', '--model', model_dir, '--port', '0',
                   '--max_batch', str(max_batch), *flags]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, encoding='utf-8')
        self.address = None

    def wait_ready(self):
        log = []
        for line in self.process.stderr:
            log.append(line)
            found = READY.search(line)
            self.address = self.address or (found and (found.group(1), int(found.group(2))))
            if self.address and 'model ready' in line:
                break
        else:
            sys.exit('server did not start:\n' + ''.join(log))
        # Keep draining its log so the pipe never fills up and blocks it.
        threading.Thread(target=lambda: [None for _ in self.process.stderr], daemon=True).start()

    def stop(self):
        self.process.terminate()
        self.process.wait(120)


def client(address, sentences, offset, warm_until, stop_at):
    """Latencies (seconds) of the requests sent and answered inside the timed window."""
    connection = http.client.HTTPConnection(*address, timeout=300)
    latencies, i = [], offset
    while True:
        body = json.dumps({'texts': [sentences[i % len(sentences)]]}, ensure_ascii=False).encode('utf-8')
        started = time.monotonic()
        if started >= stop_at:
            break
        connection.request('POST', '/predict', body, {'Content-Type': 'application/json'})
        response = connection.getresponse()
        response.read()
        finished = time.monotonic()
        if response.status != 200:
            raise RuntimeError(f'HTTP {response.status}')
        if started >= warm_until and finished <= stop_at:
            latencies.append(finished - started)
        i += 1
    connection.close()
    return latencies


def measure(address, sentences, clients, warmup, duration):
    start = time.monotonic()
    warm_until, stop_at = start + warmup, start + warmup + duration
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        runs = [pool.submit(client, address, sentences, 37 * k, warm_until, stop_at) for k in range(clients)]
        latencies = sorted(latency for run in runs for latency in run.result())
    if not latencies:
        return {'sentences_per_s': 0.0, 'p50_ms': float('nan'), 'p99_ms': float('nan'), 'requests': 0}
    return {'sentences_per_s': len(latencies) / duration, 'requests': len(latencies),
            'p50_ms': 1000 * statistics.median(latencies),
            'p99_ms': 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


# ---------------------------------------------------------------------------- main

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--models', nargs='+', choices=('demo', 'kobert'), default=['demo', 'kobert'])
    parser.add_argument('--demo-model', help='a trained demo model directory (default: train one, 1 epoch)')
    parser.add_argument('--clients', nargs='+', type=int, default=[1, 4, 16])
    parser.add_argument('--duration', type=float, default=10.0, help='timed seconds per cell')
    parser.add_argument('--warmup', type=float, default=2.0, help='untimed seconds before each cell')
    parser.add_argument('--max-batch', type=int, default=64, help="the server's --max_batch")
    parser.add_argument('--max-len', type=int, default=64, help='max_len of the KoBERT-size model')
    parser.add_argument('--shared-dir', default=os.environ.get('KOBERT_GLUON_SHARED', ''))
    parser.add_argument('--json', dest='json_path', help='also write the rows here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix='serve-bench-') as workdir:
        sentences = demo_sentences()
        model_dirs = {'demo': lambda: args.demo_model or demo_model(workdir),
                      'kobert': lambda: kobert_size_model(workdir, args.shared_dir, args.max_len)}
        for name in args.models:
            model_dir = str(model_dirs[name]())
            servers = {}
            try:  # both settings up at once, measured in turn, so a load change hits both alike
                for setting, flags in SETTINGS.items():
                    servers[setting] = Server(model_dir, flags, args.max_batch)
                for server in servers.values():  # they start side by side
                    server.wait_ready()
                for clients in args.clients:
                    for setting, server in servers.items():
                        result = measure(server.address, sentences, clients, args.warmup, args.duration)
                        rows.append({'model': name, 'batching': setting, 'clients': clients, **result})
                        print_row(rows[-1], flush=True)
            finally:
                for server in servers.values():
                    server.stop()
    print_table(rows, args)
    if args.json_path:
        with open(args.json_path, 'w', encoding='utf-8') as out:
            json.dump({'rows': rows, 'load_average': os.getloadavg(), 'args': vars(args)}, out, indent=2)
    ratios = on_off_ratios(rows, max(args.clients))
    return 0 if ratios and all(ratio > 1 for ratio in ratios.values()) else 1


def print_row(row, flush=False):
    print(f"{row['model']:<7} {row['batching']:<8} {row['clients']:>7} {row['sentences_per_s']:>12.1f} "
          f"{row['p50_ms']:>9.1f} {row['p99_ms']:>9.1f} {row['requests']:>9}", file=sys.stderr, flush=flush)


def print_table(rows, args):
    print(f'# kobert-gluon serve, {args.duration:g} s per cell after {args.warmup:g} s warm-up, one sentence '
          f'per request, max_batch {args.max_batch}; {os.cpu_count()} CPUs, load average '
          f'{os.getloadavg()[0]:.1f} at the end; OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "unset")} '
          f'OMP_WAIT_POLICY={os.environ.get("OMP_WAIT_POLICY", "unset")}')
    print('| model | batching | clients | sentences/s | p50 ms | p99 ms | requests |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for row in rows:
        print(f"| {row['model']} | {row['batching']} | {row['clients']} | {row['sentences_per_s']:.1f} | "
              f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['requests']} |")
    for name, ratio in on_off_ratios(rows, max(args.clients)).items():
        print(f'{name}: dynamic batching on/off throughput at {max(args.clients)} clients = {ratio:.2f}x')


def on_off_ratios(rows, clients):
    speed = {(row['model'], row['batching']): row['sentences_per_s'] for row in rows if row['clients'] == clients}
    return {model: speed[model, 'on'] / speed[model, 'off'] for model, setting in speed
            if setting == 'on' and speed.get((model, 'off'))}


if __name__ == '__main__':
    sys.exit(main())
