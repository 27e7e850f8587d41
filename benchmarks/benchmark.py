#!/usr/bin/env python
"""Throughput and peak memory of kobert_gluon against PyTorch/transformers, plus the data pipeline.

    python benchmarks/benchmark.py                 # KoBERT size (12 x 768), batch 32, seq 64
    python benchmarks/benchmark.py --small         # BertConfig.small() sizes, a few minutes
    python benchmarks/benchmark.py --smoke         # tiniest: checks the plumbing (the test runs this)
    python benchmarks/benchmark.py --json out.json --repeats 5 --threads 2

Each measurement runs in a fresh worker process (this file with ``--worker SPEC``, printing one
JSON line; all with the same thread count), so MXNet's and PyTorch's OpenMP runtimes never share a
process. Setups alternate (mxnet, torch, mxnet, ...) for ``--repeats`` rounds; medians are reported.
Only kobert_gluon's public names are used (``import kobert_gluon as kg``); the parent imports
neither mxnet nor torch (``kg.BertConfig`` and the ``kg.cpu_*`` facts load neither).
Peak RSS is VmHWM: a Linux child's ``ru_maxrss`` also counts its parent's peak from before exec.
"""
import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

logger = logging.getLogger('benchmark')

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(REPO_ROOT, 'kobert_gluon')) and REPO_ROOT not in sys.path:
    sys.path.insert(1, REPO_ROOT)  # benchmark the checkout this script belongs to

import kobert_gluon as kg  # noqa: E402  (sets the CPU thread defaults; loads neither mxnet nor gluonnlp)

MXNET, TORCH, DATA, PROBE = 'mxnet', 'torch', 'data', 'probe'
MODES = ('train', 'infer')
MXNET_PRECISION_ORDER = ('float32', 'bfloat16', 'int8')
TORCH_PRECISIONS = ('float32', 'bfloat16', 'int8')
TORCH_LABELS = {'bfloat16': 'bfloat16 (autocast)', 'int8': 'int8 (quantize_dynamic)'}
CPU_FLAGS_OF_INTEREST = ('avx2', 'avx512f', 'avx512_bf16', 'avx512_vnni', 'amx_bf16', 'amx_int8')
PAD_ID = 1           # KoBERT's [PAD]
FIRST_REGULAR_ID = 5  # ids 0-4 are [UNK] [PAD] [CLS] [SEP] [MASK]
KOBERT_SPIECE = os.path.join('kobert', 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
NSMC_TEST = os.path.join('data', 'nsmc', 'ratings_test_small.txt')


@dataclasses.dataclass
class Config:
    """Everything a worker needs; identical for the mxnet and the torch side."""
    bert: dict = dataclasses.field(default_factory=lambda: dataclasses.asdict(kg.BertConfig.kobert()))
    num_classes: int = 2
    batch_size: int = 32
    seq_len: int = 64
    steps: int = 10
    warmup: int = 2
    learning_rate: float = 5e-5
    epsilon: float = 1e-9
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    threads: int = 1
    seed: int = 0
    calibration_batches: int = 4
    sentences: int = 2000
    shared_dir: str = ''
    int8: dict = dataclasses.field(default_factory=dict)  # kg.for_inference's int8 settings

    def describe(self):
        bert = kg.BertConfig(**self.bert)
        return (f'{bert.num_layers} layers, {bert.units} units, {bert.hidden_size} hidden, '
                f'{bert.num_heads} heads, vocab {bert.vocab_size}, batch {self.batch_size}, '
                f'seq_len {self.seq_len}, {self.steps} timed steps after {self.warmup} warmup, '
                f'optimizer lr {self.learning_rate:g} eps {self.epsilon:g} wd {self.weight_decay:g} '
                f'clip {self.max_grad_norm:g}')


PRESETS = {
    'full': dict(bert=kg.BertConfig.kobert(), batch_size=32, seq_len=64, steps=10, warmup=2, repeats=3,
                 sentences=2000),
    'small': dict(bert=kg.BertConfig.small(), batch_size=32, seq_len=64, steps=10, warmup=2, repeats=3,
                  sentences=1000),
    'smoke': dict(bert=kg.BertConfig(num_layers=1, units=64, hidden_size=128, num_heads=2, max_length=64),
                  batch_size=4, seq_len=16, steps=2, warmup=1, repeats=1, sentences=100, calibration_batches=1),
}


def proc_value(path, key):
    """What follows the colon on the first line of a /proc file that starts with ``key``, or None."""
    try:
        with open(path, encoding='utf-8') as lines:
            return next((line.split(':', 1)[1].strip() for line in lines if line.startswith(key)), None)
    except OSError:
        return None


def cpu_model():
    return proc_value('/proc/cpuinfo', 'model name') or platform.processor() or platform.machine()


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def peak_rss_mb():
    """This process's peak resident memory in MB (VmHWM; see the module docstring)."""
    hwm = proc_value('/proc/self/status', 'VmHWM:')
    if hwm:
        return int(hwm.split()[0]) / 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024 if sys.platform == 'darwin' else 1024)


def make_batch(config, seed):
    """Random token ids in [5, vocab), valid_length in [seq_len//2, seq_len], padding [PAD]."""
    import numpy as np
    rng = np.random.RandomState(seed)
    shape = (config.batch_size, config.seq_len)
    token_ids = rng.randint(FIRST_REGULAR_ID, config.bert['vocab_size'], size=shape).astype('int32')
    valid_length = rng.randint(config.seq_len // 2, config.seq_len + 1, size=config.batch_size).astype('int32')
    token_ids[np.arange(config.seq_len)[None, :] >= valid_length[:, None]] = PAD_ID
    segment_ids = np.zeros(shape, dtype='int32')
    labels = rng.randint(0, config.num_classes, size=config.batch_size).astype('int32')
    return token_ids, segment_ids, valid_length, labels


def throughput(config, precision, mode, step, sync, summary):
    """Time ``config.steps`` calls of ``step`` after ``config.warmup`` untimed ones (ending with ``sync()``;
    no sync per step: mxnet's gradient clipping and ``asnumpy`` sync anyway). ``summary`` of the last
    step's output joins the result."""
    outputs = [step() for _ in range(config.warmup)]
    sync()
    stamps = [time.perf_counter()]
    for _ in range(config.steps):
        outputs.append(step())
        stamps.append(time.perf_counter())
    sync()
    seconds = time.perf_counter() - stamps[0]
    step_times = [b - a for a, b in zip(stamps, stamps[1:])]
    samples = config.batch_size * config.steps
    return {'precision': precision, 'mode': mode, 'seconds': seconds, 'step_seconds': step_times,
            'samples_per_s': samples / seconds, 'tokens_per_s': samples * config.seq_len / seconds,
            'peak_rss_mb': peak_rss_mb(), **summary(outputs[-1])}


def logits_shape(logits):
    return {'logits_shape': list(logits.shape)}


def mxnet_precisions():
    """Every precision of kg.PRECISIONS, in table order. Imports mxnet."""
    return list(dict.fromkeys(list(MXNET_PRECISION_ORDER) + list(kg.PRECISIONS)))


def unsupported(name, mode):
    """Why ``mode`` ('train' or 'infer') cannot run in precision ``name`` here, or None."""
    import mxnet as mx
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            resolved = kg.resolve_precision(name, mx.cpu(), training=mode == 'train')
    except ValueError as error:
        return str(error)
    return None if resolved == name else f'kobert_gluon falls back to {resolved} here'


def for_inference(name, model, calibration_batches, int8_settings=None):
    """kg.for_inference, with the calibration batches concatenated into one."""
    import mxnet as mx
    calibration = (tuple(mx.nd.concat(*parts, dim=0) for parts in zip(*calibration_batches))
                   if calibration_batches else None)
    return kg.for_inference(model, name, mx.cpu(), calibration, **(int8_settings or {}))


def no_weight_decay(name):
    """BERT's rule: no decay on biases and LayerNorm (gamma/beta in mxnet, LayerNorm.* in transformers)."""
    return name.endswith(('bias', 'gamma', 'beta')) or 'LayerNorm' in name


def measure(runs, why_not, infer, train):
    """Results of ``runs`` ([precision, mode] pairs): ``why_not(precision, mode)`` or a measurement."""
    results = []
    for precision, mode in runs:
        reason = why_not(precision, mode)
        results.append({'precision': precision, 'mode': mode, 'skipped': reason} if reason
                       else (infer if mode == 'infer' else train)(precision))
    return results


def mxnet_worker(config, runs):
    """Measure ``runs`` ([precision, mode] pairs, all of one precision) with kobert_gluon."""
    import gc

    import gluonnlp as nlp
    import mxnet as mx
    import numpy as np
    from mxnet import gluon

    bert_config = kg.BertConfig(**config.bert)
    ctx = mx.cpu()
    token_ids, segment_ids, valid_length, labels = (mx.nd.array(a, ctx=ctx, dtype='int32')
                                                    for a in make_batch(config, config.seed))

    def build():
        mx.random.seed(config.seed)
        np.random.seed(config.seed)
        model = kg.build_classifier(bert_config, num_classes=config.num_classes, dropout=bert_config.dropout, ctx=ctx)
        model.hybridize(static_alloc=True, static_shape=True)
        return model

    def infer(precision):
        model = build()
        calibration = [tuple(mx.nd.array(a, ctx=ctx, dtype='int32')
                             for a in make_batch(config, config.seed + 1 + i)[:3])
                       for i in range(config.calibration_batches if precision == 'int8' else 0)]
        model = for_inference(precision, model, calibration, config.int8)
        gc.collect()  # the float32 model (a Gluon block lives in a reference cycle), as a server would drop it
        return throughput(config, precision, 'infer', lambda: model(token_ids, segment_ids, valid_length).asnumpy(),
                          lambda: None, logits_shape)

    def train(precision):
        kg.init_training(precision)  # before the model exists (AMP needs that)
        model = build()
        params = model.collect_params()
        kg.exclude_from_weight_decay(params)
        trainable = [p for p in params.values() if p.grad_req != 'null']
        trainer = gluon.Trainer(params, 'bertadam', {'learning_rate': config.learning_rate,
                                                     'epsilon': config.epsilon, 'wd': config.weight_decay},
                                update_on_kvstore=False)
        loss_function = gluon.loss.SoftmaxCELoss()

        def step():
            with mx.autograd.record():
                loss = loss_function(model(token_ids, segment_ids, valid_length), labels).mean()
            loss.backward()
            trainer.allreduce_grads()
            nlp.utils.clip_grad_global_norm(trainable, config.max_grad_norm)
            trainer.update(1)
            return loss

        return throughput(config, precision, 'train', step, mx.nd.waitall,
                          lambda loss: {'last_loss': float(loss.asscalar())})

    return measure(runs, unsupported, infer, train)

def torch_worker(config, runs):
    """Measure ``runs`` ([precision, mode] pairs) with transformers' BertForSequenceClassification."""
    import contextlib

    import torch
    torch.set_num_threads(config.threads)
    from transformers import BertConfig, BertForSequenceClassification

    autocasts = {'float32': contextlib.nullcontext, 'int8': contextlib.nullcontext,
                 'bfloat16': lambda: torch.autocast('cpu', dtype=torch.bfloat16)}
    bert = config.bert
    hf_config = BertConfig(vocab_size=bert['vocab_size'], hidden_size=bert['units'],
                           num_hidden_layers=bert['num_layers'], num_attention_heads=bert['num_heads'],
                           intermediate_size=bert['hidden_size'], max_position_embeddings=bert['max_length'],
                           type_vocab_size=bert['token_type_vocab_size'], hidden_dropout_prob=bert['dropout'],
                           attention_probs_dropout_prob=bert['dropout'], num_labels=config.num_classes)
    token_ids, segment_ids, valid_length, labels = (torch.from_numpy(a).long()
                                                    for a in make_batch(config, config.seed))
    attention_mask = (torch.arange(config.seq_len)[None, :] < valid_length[:, None]).long()
    inputs = {'input_ids': token_ids, 'token_type_ids': segment_ids, 'attention_mask': attention_mask}

    def build(training):
        torch.manual_seed(config.seed)
        model = BertForSequenceClassification(hf_config)
        model.train(training)
        return model

    def facts(model):
        return {'attn_implementation': getattr(model.config, '_attn_implementation', None),
                'torch_threads': torch.get_num_threads()}

    def infer(precision):
        model = build(False)
        if precision == 'int8':  # PyTorch's int8 for BERT on a CPU: Linear weights int8, activations per batch
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)

        def step():
            with torch.inference_mode(), autocasts[precision]():
                return model(**inputs).logits.float().numpy()

        return throughput(config, precision, 'infer', step, lambda: None,
                          lambda logits: {**logits_shape(logits), **facts(model)})

    def train(precision):
        model = build(True)
        named = list(model.named_parameters())
        optimizer = torch.optim.AdamW(
            [{'params': [p for n, p in named if not no_weight_decay(n)], 'weight_decay': config.weight_decay},
             {'params': [p for n, p in named if no_weight_decay(n)], 'weight_decay': 0.0}],
            lr=config.learning_rate, eps=config.epsilon)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocasts[precision]():
                logits = model(**inputs).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            return loss.detach()

        return throughput(config, precision, 'train', step, lambda: None,
                          lambda loss: {'last_loss': float(loss), **facts(model)})

    def why_not(precision, mode):
        if precision == 'int8' and mode == 'train':
            return 'quantize_dynamic is for inference only'
        return None if precision in autocasts else f'no {precision} path for torch here'

    return measure(runs, why_not, infer, train)


def load_sentences(config):
    nsmc = os.path.join(config.shared_dir, NSMC_TEST) if config.shared_dir else None
    if nsmc and os.path.isfile(nsmc):
        sentences, source = list(kg.read_table(nsmc, 'document')['document']), nsmc
    else:
        sentences, source = list(kg.read_table(kg.demo_data_path(), 'text')['text']), 'kobert_gluon demo_sentiment.tsv'
    count = len(sentences)
    sentences = [sentences[i % count] for i in range(config.sentences)]  # repeats a short file
    return sentences, f'{source} ({count} distinct rows)'


def data_worker(config, workdir):
    BERTDataset, get_bert_tokenizer, get_vocab = kg.BERTDataset, kg.get_bert_tokenizer, kg.get_vocab  # before gluonnlp
    train_sentencepiece = kg.train_sentencepiece
    import gluonnlp as nlp
    import numpy as np

    sentences, source = load_sentences(config)
    spiece = os.path.join(config.shared_dir, KOBERT_SPIECE) if config.shared_dir else None
    if spiece and os.path.isfile(spiece):
        tokenizer_source = spiece
    else:
        spiece = train_sentencepiece(sentences, os.path.join(workdir, 'bench.spiece'), vocab_size=3000)
        tokenizer_source = 'SentencePiece trained on those sentences (KoBERT .spiece not found)'
    vocab = get_vocab(spiece)
    plain_tokenizer = nlp.data.BERTSPTokenizer(spiece, vocab, lower=False)
    our_tokenizer = get_bert_tokenizer(spiece, vocab)
    rows = [[s, 0] for s in sentences]
    max_len = config.seq_len

    def plain(items):
        transform = nlp.data.BERTSentenceTransform(plain_tokenizer, max_seq_length=max_len, pad=True, pair=False)
        return [transform([s]) for s in items]

    def ours(items):
        return BERTDataset(items, 0, 1, our_tokenizer, max_len, True, False)

    warm = min(50, len(sentences))
    plain(sentences[:warm])
    ours(rows[:warm])
    outputs, seconds = {}, {plain: [], ours: []}
    for run, items in ((plain, sentences), (ours, rows), (ours, rows), (plain, sentences)):  # ABBA
        started = time.perf_counter()
        outputs[run] = run(items)
        seconds[run].append(time.perf_counter() - started)
    expected, dataset = outputs[plain], outputs[ours]
    plain_seconds, our_seconds = min(seconds[plain]), min(seconds[ours])

    if len(dataset) != len(expected):
        raise AssertionError(f'BERTDataset has {len(dataset)} items for {len(expected)} sentences')
    for i, want in enumerate(expected):
        got = dataset[i][:3]
        for name, a, b in zip(('token_ids', 'valid_length', 'segment_ids'), want, got):
            a, b = np.asarray(a), np.asarray(b)
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                raise AssertionError(f'sentence {i} {sentences[i]!r}: {name} differs: plain {a.dtype}{a.shape} '
                                     f'{a.tolist()} vs BERTDataset {b.dtype}{b.shape} {b.tolist()}')
    n = len(sentences)
    return [{'precision': None, 'mode': 'data', 'sentences': n, 'max_len': max_len, 'source': source,
             'tokenizer': tokenizer_source, 'identical': True,
             'plain_sentences_per_s': n / plain_seconds, 'ours_sentences_per_s': n / our_seconds,
             'peak_rss_mb': peak_rss_mb()}]


def probe_worker():
    """Versions and which mxnet precisions can run, from the mxnet side."""
    import kobert_gluon
    precisions = {}
    for name in mxnet_precisions():
        precisions[name] = {}
        for mode in MODES:
            try:
                precisions[name][mode] = unsupported(name, mode)
            except Exception as error:  # a broken check must not hide the other rows
                precisions[name][mode] = f'support check raised {type(error).__name__}: {error}'
    return {'kobert_gluon': kobert_gluon.__version__, 'cpu_defaults': kobert_gluon.CPU_DEFAULTS,
            'precisions': precisions}


def run_worker(spec_json):
    spec = json.loads(spec_json)
    config, runs = Config(**spec['config']), spec.get('runs')
    with tempfile.TemporaryDirectory() as workdir:
        result = {MXNET: lambda: mxnet_worker(config, runs), TORCH: lambda: torch_worker(config, runs),
                  DATA: lambda: data_worker(config, workdir), PROBE: probe_worker}[spec['kind']]()
    print(json.dumps(result), flush=True)


def spawn(spec, threads, timeout):
    """Run one worker; (result, None) or (None, why it failed)."""
    env = dict(os.environ, **{name: str(threads) for name in kg.THREAD_VARIABLES})
    command = [sys.executable, os.path.abspath(__file__), '--worker', json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f'timed out after {timeout} s'
    lines = [line for line in done.stdout.splitlines() if line.startswith(('{', '['))]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1]), None
    tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
    logger.error('worker %s %s exited %d; stderr ends:\n%s', spec['kind'], spec.get('runs', ''),
                 done.returncode, '\n'.join(tail[-15:]))
    return None, (tail[-1].strip()[:200] if tail else f'exit status {done.returncode}')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--small', action='store_true', help="kobert_gluon's BertConfig.small() sizes, fewer steps")
    size.add_argument('--smoke', action='store_true', help='tiniest config, 1 repeat (for tests)')
    parser.add_argument('--batch-size', type=int, help='sentences per step (default 32; smoke 4)')
    parser.add_argument('--seq-len', type=int, help='tokens per sentence (default 64; smoke 16)')
    parser.add_argument('--steps', type=int, help='timed steps per measurement (default 10; smoke 2)')
    parser.add_argument('--warmup', type=int, help='untimed steps first, at least 1 (default 2; smoke 1)')
    parser.add_argument('--repeats', type=int, help='rounds of A/B alternation; medians reported (default 3; smoke 1)')
    parser.add_argument('--sentences', type=int, help='sentences for the data pipeline rows (default 2000)')
    parser.add_argument('--threads', type=int, default=kg.cpu_count(), help='threads for every worker')
    parser.add_argument('--precisions', help='comma-separated kobert_gluon precisions to run (default: all known)')
    parser.add_argument('--torch-precisions', default=','.join(TORCH_PRECISIONS),
                        help='comma-separated PyTorch precisions (float32, bfloat16, int8)')
    parser.add_argument('--int8-calib-mode', choices=('naive', 'entropy'),
                        help="kobert_gluon's int8 calibration (default: kg.for_inference's)")
    parser.add_argument('--int8-granularity', choices=('tensor-wise', 'channel-wise'),
                        help="kobert_gluon's int8 weight scales (default: kg.for_inference's)")
    parser.add_argument('--skip-torch', action='store_true', help='no PyTorch rows')
    parser.add_argument('--skip-data', action='store_true', help='no data pipeline rows')
    parser.add_argument('--one-process', action='store_true',
                        help='fewer worker processes (on by default for --smoke): inference then training '
                             'in one worker per mxnet precision, all torch rows in one worker; faster to '
                             'start, but a peak RSS then also covers what that worker ran before')
    parser.add_argument('--shared-dir', default=os.environ.get('KOBERT_GLUON_SHARED', ''),
                        help='directory with kobert/ and data/nsmc/ (default $KOBERT_GLUON_SHARED)')
    parser.add_argument('--worker-timeout', type=int, default=1800, help='seconds before a worker is killed')
    parser.add_argument('--json', dest='json_path', help='also write the raw numbers here')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('-v', '--verbose', action='store_true')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.preset = 'smoke' if args.smoke else 'small' if args.small else 'full'
    if args.smoke:
        args.one_process = True
    return args


def build_config(args):
    preset = dict(PRESETS[args.preset])
    repeats = preset.pop('repeats')
    bert = dataclasses.asdict(preset.pop('bert'))
    int8 = {key: value for key, value in (('calib_mode', args.int8_calib_mode),
                                           ('quantize_granularity', args.int8_granularity)) if value}
    config = Config(bert=bert, threads=args.threads, seed=args.seed, shared_dir=args.shared_dir or '', int8=int8,
                    **preset)
    for key in ('batch_size', 'seq_len', 'steps', 'warmup', 'sentences'):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    repeats = args.repeats if args.repeats is not None else repeats
    if config.warmup < 1 or config.steps < 1 or repeats < 1 or config.threads < 1:
        raise SystemExit('--warmup, --steps, --repeats and --threads must be at least 1')
    if config.seq_len > bert['max_length'] or config.seq_len < 2:
        raise SystemExit(f'--seq-len {config.seq_len}: must be in [2, {bert["max_length"]}]')
    return config, repeats


def machine_facts(args, probe):
    flags = kg.cpu_flags()
    return {'cpu': cpu_model(), 'cpus_available': kg.cpu_count(), 'cpus_online': os.cpu_count(),
            'flags': {f: f in flags for f in CPU_FLAGS_OF_INTEREST},
            'native_bf16': kg.has_bf16(), 'native_int8': kg.has_vnni(),
            'python': platform.python_version(), 'mxnet': package_version('mxnet'),
            'gluonnlp': package_version('gluonnlp'), 'kobert_gluon': probe.get('kobert_gluon'),
            'torch': package_version('torch'), 'transformers': package_version('transformers'),
            'threads': args.threads, 'load_average_start': load_average()}


def load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def plan(args, probe):
    """(rows, jobs, notes): table rows in order, worker specs for one round, and skipped runs."""
    wanted = args.precisions.split(',') if args.precisions else list(probe['precisions'])
    unknown = [p for p in wanted if p not in probe['precisions']]
    if unknown:
        raise SystemExit(f'--precisions {unknown}: known are {list(probe["precisions"])}')
    torch_wanted = [p for p in args.torch_precisions.split(',') if p]
    if any(p not in TORCH_PRECISIONS for p in torch_wanted):
        raise SystemExit(f'--torch-precisions {args.torch_precisions}: choose from {TORCH_PRECISIONS}')
    missing = [m for m in ('torch', 'transformers') if importlib.util.find_spec(m) is None]
    no_torch = '--skip-torch' if args.skip_torch else f'{missing[0]} not installed' if missing else None
    # Alternating frameworks: mxnet fp32, torch fp32, mxnet bf16, torch bf16, mxnet int8.
    rows = [(kind, name) for name in dict.fromkeys(list(probe['precisions']) + list(TORCH_PRECISIONS))
            for kind, chosen in ((MXNET, wanted), (TORCH, torch_wanted)) if name in chosen]
    notes = {(kind, precision, mode): f'skipped: {reason}' for kind, precision in rows for mode in MODES
             if (reason := probe['precisions'][precision][mode] if kind == MXNET else no_torch)}
    live = lambda kind, precision, mode: (kind, precision, mode) not in notes  # noqa: E731
    if not args.one_process:
        # One measurement per process: train of every setup in turn, then infer.
        jobs = [{'kind': kind, 'runs': [[precision, mode]]} for mode in MODES for kind, precision in rows
                if live(kind, precision, mode)]
    else:
        # Inference first, so its peak RSS is its own. mxnet: one process per precision (a
        # precision may change process-wide state, e.g. AMP); torch: autocast is scoped, one process.
        jobs = []
        for kind, precision in rows:
            runs = [[precision, mode] for mode in ('infer', 'train') if live(kind, precision, mode)]
            torch_job = next((job for job in jobs if job['kind'] == TORCH), None)
            if runs and kind == TORCH and torch_job:
                torch_job['runs'].extend(runs)
            elif runs:
                jobs.append({'kind': kind, 'runs': runs})
    return rows, jobs, notes


def collect(args):
    probe, error = spawn({'kind': PROBE, 'config': dataclasses.asdict(Config())}, args.threads, args.worker_timeout)
    if probe is None:
        raise SystemExit(f'the mxnet side does not start: {error}')
    config, repeats = build_config(args)
    facts = machine_facts(args, probe)
    logger.info('%s; %d threads; %d round(s)', config.describe(), config.threads, repeats)
    rows, jobs, notes = plan(args, probe)
    runs, data_runs, data_note = {}, [], ('skipped by --skip-data' if args.skip_data else None)

    def run(spec):
        return spawn(dict(spec, config=dataclasses.asdict(config)), config.threads, args.worker_timeout)

    for round_number in range(1, repeats + 1):
        for job in jobs:
            keys = [(job['kind'], precision, mode) for precision, mode in job['runs']]
            if all(key in notes for key in keys):
                continue  # skipped or failed in an earlier round
            started = time.time()
            results, error = run(job)
            if results is None:
                notes.update({key: f'failed: {error}' for key in keys if key not in notes})
                continue
            for result in results:
                key = (job['kind'], result['precision'], result['mode'])
                if 'skipped' in result:
                    notes[key] = f'skipped: {result["skipped"]}'
                    continue
                runs.setdefault(key, []).append(result)
                logger.info('round %d/%d %-22s %9.2f samples/s  peak RSS %6.0f MB  (worker %.0f s)',
                            round_number, repeats, ' '.join(key), result['samples_per_s'],
                            result['peak_rss_mb'], time.time() - started)
        if data_note is None:
            result, error = run({'kind': DATA})
            if result is None:
                data_note = f'failed: {error}'
            else:
                data_runs.extend(result)
                logger.info('round %d/%d data pipeline: plain %.0f, BERTDataset %.0f sentences/s', round_number,
                            repeats, result[0]['plain_sentences_per_s'], result[0]['ours_sentences_per_s'])
    return {'machine': facts, 'config': dataclasses.asdict(config), 'repeats': repeats, 'preset': args.preset,
            'one_process': args.one_process, 'probe': probe, 'rows': rows,
            'runs': {'|'.join(k): v for k, v in runs.items()},
            'notes': {'|'.join(k): v for k, v in notes.items()},
            'data_runs': data_runs, 'data_note': data_note}


def summarize(report):
    """Medians per (framework, precision, mode), and of the data pipeline (None if it did not run)."""
    def median(results, fields):
        return {field: statistics.median(r[field] for r in results) for field in fields}

    medians = {key: {**median(results, ('samples_per_s', 'tokens_per_s', 'peak_rss_mb', 'seconds')),
                     'runs': len(results)} for key, results in report['runs'].items() if results}
    runs = report['data_runs']
    data = runs and {**median(runs, ('plain_sentences_per_s', 'ours_sentences_per_s')),
                     **{k: runs[0][k] for k in ('sentences', 'max_len', 'source', 'tokenizer')}, 'runs': len(runs)}
    return medians, data or None


def fmt_rate(value):
    return f'{value:,.0f}' if value >= 1000 else f'{value:.1f}' if value >= 10 else f'{value:.2f}'


def same_precision_cells(medians, kind, precision):
    """kobert_gluon over PyTorch at one precision: train and infer samples/s, infer peak RSS ('' if no pair)."""
    if kind != MXNET:
        return ['', '', '']
    ours = {m: medians.get(f'{MXNET}|{precision}|{m}') for m in MODES}
    theirs = {m: medians.get(f'{TORCH}|{precision}|{m}') for m in MODES}
    speed = [f'{ours[m]["samples_per_s"] / theirs[m]["samples_per_s"]:.2f}×' if ours[m] and theirs[m] else ''
             for m in MODES]
    rss = ours['infer'] and theirs['infer'] and f'{ours["infer"]["peak_rss_mb"] / theirs["infer"]["peak_rss_mb"]:.2f}×'
    return [*speed, rss or '']


def format_report(report, medians, data):
    facts, config = report['machine'], report['config']
    flag_text = ' '.join(f'{f}={"yes" if on else "no"}' for f, on in facts['flags'].items())
    lines = [f'Machine: {facts["cpu"]}, {facts["cpus_available"]} cores available '
             f'({facts["cpus_online"]} online); flags {flag_text}; '
             f'mxnet {facts["mxnet"]}, gluonnlp {facts["gluonnlp"]}, kobert_gluon {facts["kobert_gluon"]}, '
             f'torch {facts["torch"] or "not installed"}, transformers {facts["transformers"] or "not installed"}, '
             f'Python {facts["python"]}; {facts["threads"]} threads per worker; 1-min load average '
             f'{facts["load_average_start"]} before, {facts.get("load_average_end")} after.',
             f'Config ({report["preset"]}): {Config(**config).describe()}; '
             f'medians of {report["repeats"]} round(s)'
             + ('; --one-process: one worker per mxnet precision and one for all torch rows'
                if report['one_process'] else '; one worker process per measurement') + '.',
             '']
    header = ['setup', 'precision', 'train samples/s', 'train tokens/s', 'infer samples/s', 'infer tokens/s',
              'train peak RSS MB', 'infer peak RSS MB', 'train vs torch fp32', 'infer vs torch fp32',
              'train vs torch same precision', 'infer vs torch same precision', 'infer peak RSS vs torch same precision']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(['---', '---'] + ['---:'] * (len(header) - 2)) + '|']
    baseline = {m: medians.get(f'{TORCH}|float32|{m}') for m in MODES}
    emulated_bf16 = False
    for kind, precision in report['rows']:
        setup = (f'kobert_gluon (MXNet {facts["mxnet"]})' if kind == MXNET
                 else 'PyTorch + transformers BertForSequenceClassification')
        measured = any(f'{kind}|{precision}|{m}' in medians for m in MODES)
        precision_cell = TORCH_LABELS.get(precision, precision) if kind == TORCH else precision
        if precision == 'bfloat16' and measured and not facts['native_bf16']:
            precision_cell += ' ⚠'
            emulated_bf16 = True
        cells = {}
        for mode in MODES:
            key = f'{kind}|{precision}|{mode}'
            if key in medians:
                m, base = medians[key], baseline[mode]
                cells[mode] = [fmt_rate(m['samples_per_s']), fmt_rate(m['tokens_per_s']), f'{m["peak_rss_mb"]:,.0f}',
                               f'{m["samples_per_s"] / base["samples_per_s"]:.2f}×' if base else 'n/a']
            else:
                cells[mode] = [report['notes'].get(key, 'not run'), '', '', '']
        if cells['train'][0] == cells['infer'][0] and not measured:
            cells['infer'][0] = '〃'  # same reason as for training
        row = [setup, precision_cell, cells['train'][0], cells['train'][1], cells['infer'][0], cells['infer'][1],
               cells['train'][2], cells['infer'][2], cells['train'][3], cells['infer'][3],
               *same_precision_cells(medians, kind, precision)]
        lines.append('| ' + ' | '.join(row) + ' |')
    if emulated_bf16:
        lines += ['', '⚠ This CPU has no native bfloat16 (no avx512_bf16 / amx_bf16): bf16 rows run on '
                  'emulation or conversion kernels, so they say little about bf16 on newer CPUs.']
    lines += ['', 'Tokens/s count padded positions (samples/s × seq_len). Ratios are samples/s over the '
              'PyTorch float32 row, or over PyTorch\'s row of the same precision (above 1: faster); the last '
              'column is peak RSS over PyTorch\'s at the same precision. Peak RSS is each worker\'s VmHWM'
              + (' (one process did inference, then training)' if report['one_process'] else '') + '.',
              '', '| data pipeline | sentences/s | vs plain |', '|---|---:|---:|']
    if data:
        plain, ours = data['plain_sentences_per_s'], data['ours_sentences_per_s']
        lines += [f'| gluonnlp BERTSentenceTransform, per sentence (plain) | {fmt_rate(plain)} | 1.00× |',
                  f'| kobert_gluon BERTDataset | {fmt_rate(ours)} | {ours / plain:.2f}× |', '',
                  f'Data: {data["sentences"]} sentences from {data["source"]}, max_len {data["max_len"]}, '
                  f'tokenizer {data["tokenizer"]}; arrays identical in every round (token_ids, valid_length, '
                  f'segment_ids, dtypes included); medians of {data["runs"]} round(s).']
    else:
        lines += [f'| gluonnlp BERTSentenceTransform, per sentence (plain) | {report["data_note"]} | — |',
                  f'| kobert_gluon BERTDataset | {report["data_note"]} | — |']
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        run_worker(args.worker)
        return 0
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format='%(asctime)s %(message)s', datefmt='%H:%M:%S')
    # A terminated parent takes its running worker along (subprocess.run kills it on the way out).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.time()
    busy = load_average()
    if busy is not None and busy > 0.25 * kg.cpu_count():
        logger.warning('load average is %.2f on %d CPUs: other processes will slow the workers down', busy,
                       kg.cpu_count())
    report = collect(args)
    report['machine'].update(load_average_start=busy, load_average_end=load_average())
    report['medians'], report['data'] = medians, data = summarize(report)
    report['wall_seconds'] = time.time() - started
    print(format_report(report, medians, data))
    if args.json_path:
        with open(args.json_path, 'w', encoding='utf-8') as out:
            json.dump(report, out, indent=2, ensure_ascii=False)
    logger.info('done in %.0f s', report['wall_seconds'])
    failed = sorted(k for k, v in report['notes'].items() if v.startswith('failed'))
    failed += ['data pipeline'] if (report['data_note'] or '').startswith('failed') else []
    if failed:
        logger.error('failed: %s', ', '.join(failed))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
