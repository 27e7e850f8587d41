"""Does masked-LM pretraining help? The checkpoint shipped in the package against a random start
and against TF-IDF, on the embedded demo set and on the emotion set, 3 seeds each.

Rows (every BERT row has the shipped checkpoint's size and tokenizer, KoBERT's):

- ``demo-shipped`` / ``demo-random`` / ``demo-tfidf``: ``kobert-gluon train`` without data (the demo
  preset: 8 epochs, model selected on a validation split) from the shipped checkpoint, from random
  Normal(0.02) weights of the same size (``pretrain --num_steps 0``), and TF-IDF char 1-4-grams +
  logistic regression trained on the same seed's training rows (validation rows included) and scored
  on the same test rows (``kg.stratified_split(demo, 'label', 0.2, seed)`` is the demo run's split);
- ``shipped`` / ``scratch`` / ``tfidf``: the emotion set, one stratified 80/20 split (seed 42),
  ``--epochs`` epochs of fine-tuning (batch 64, lr 5e-4, bucketing, no validation split: the last
  epoch is reported), the same rows as the 0.5.0 measurement;
- ``candidate`` / ``demo-candidate``: ``--candidate RUN`` (a ``kobert-gluon pretrain`` result: its
  bert.params, tokenizer and size) on the emotion rows' and the demo rows' settings and splits, so it
  compares against the rows above (``--only candidate,demo-candidate,shipped,demo-shipped,...``);
- ``continued``: the shipped checkpoint after ``--pretrain_steps`` more MLM steps on NSMC + the
  emotion training sentences (an experiment, not shipped).

The shipped checkpoint was made as docs/pretraining.md records (its exact command is in
resources/pretrained/pretrain.json)::

    python benchmarks/pretraining.py corpus --which korean --out corpus/     # shuffled; 2,000 lines held out
    kobert-gluon pretrain --corpus corpus/corpus_train.txt ...                # see pretrain.json 'command'
    python benchmarks/pretraining.py heldout --start RUN/bert.params --heldout corpus/corpus_heldout.txt --record
    python benchmarks/pretraining.py --workdir bench                           # the table
    python benchmarks/pretraining.py memory --megabytes 400                    # streaming: peak RSS

Rows are cached in WORKDIR/results.json; ``--only ROW,ROW`` recomputes some, ``--only ''`` prints the table.
"""
import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

logger = logging.getLogger('pretraining')

NSMC_FILES = ('ratings_train_small.txt', 'ratings_test_small.txt')
EMOTION_CSV = os.path.join('data', 'emotion', 'single_turn_emotion_cp949.csv')
SPLIT_SEED, TEST_SIZE = 42, 0.2


def nsmc_text(shared):
    import pandas as pd
    for name in NSMC_FILES:
        frame = pd.read_csv(os.path.join(shared, 'data', 'nsmc', name), sep='\t', quoting=3,
                            keep_default_na=False, dtype=str)
        yield from (text for text in frame['document'] if text.strip())


def emotion_split(shared):
    import pandas as pd
    import kobert_gluon as kg
    frame = pd.read_csv(os.path.join(shared, EMOTION_CSV), encoding='cp949')
    return kg.stratified_split(frame, 'Emotion', TEST_SIZE, SPLIT_SEED)


KOREAN_HELD_OUT = 2000  # last lines of the shuffled korean_corpus: held out for the MLM loss and accuracy


def write_korean_corpus(shared, out_dir):
    """Every line of data/korean_corpus/*.xz (files in name order, whitespace collapsed), shuffled
    with random.Random(0); the last 2,000 lines are held out: corpus_train.txt, corpus_heldout.txt."""
    import lzma
    import random
    folder = os.path.join(shared, 'data', 'korean_corpus')
    lines = []
    for name in sorted(os.listdir(folder)):
        if name.endswith('.xz'):
            with lzma.open(os.path.join(folder, name), 'rt', encoding='utf-8') as source:
                lines += [' '.join(line.split()) for line in source if line.strip()]
    random.Random(0).shuffle(lines)
    os.makedirs(out_dir, exist_ok=True)
    for name, part in (('corpus_train.txt', lines[:-KOREAN_HELD_OUT]), ('corpus_heldout.txt', lines[-KOREAN_HELD_OUT:])):
        with open(os.path.join(out_dir, name), 'w', encoding='utf-8') as out:
            out.writelines(line + '\n' for line in part)
        logger.info('%s: %d lines', os.path.join(out_dir, name), len(part))
    return out_dir


def heldout(args):
    """Masked-LM loss and masked-piece accuracy of --start on --heldout; --record writes them into its pretrain.json."""
    import kobert_gluon as kg
    record = kg.read_record(args.start)
    settings = record.get('config', {})
    if record.get('objective') == 'electra':  # the generator's MLM and the discriminator's RTD figures
        from kobert_gluon.training.mlm_eval import evaluate_rtd
        from kobert_gluon.text.corpus import corpus_fingerprint
        result = {**evaluate_rtd(args.start, args.heldout, max_len=settings.get('max_len', 32),
                                 whole_word_mask=settings.get('whole_word_mask', True)),
                  'corpus': corpus_fingerprint(args.heldout)}
    else:
        result = kg.record_heldout(args.start, args.heldout, max_len=settings.get('max_len', 32),
                                   whole_word_mask=settings.get('whole_word_mask', True))
    print(json.dumps(result, ensure_ascii=False))
    if args.record:
        path = os.path.join(os.path.dirname(os.path.abspath(args.start)), 'pretrain.json')
        with open(path, encoding='utf-8') as source:
            saved = json.load(source)
        saved['heldout'] = result
        with open(path + '.tmp', 'w', encoding='utf-8') as out:
            json.dump(saved, out, ensure_ascii=False, indent=2)
        os.replace(path + '.tmp', path)


def write_corpus(shared, which, out, emotion_copies=1):
    """One sentence per line: NSMC reviews (file order: the shipped checkpoint's corpus), or
    (nsmc+emotion) those plus ``emotion_copies`` copies of the emotion training sentences,
    shuffled together (pretrain shuffles only within chunks of lines)."""
    import random
    texts = list(nsmc_text(shared))
    if which == 'nsmc+emotion':
        texts += list(emotion_split(shared)[0]['Sentence']) * emotion_copies
        random.Random(0).shuffle(texts)
    with open(out, 'w', encoding='utf-8') as corpus:
        corpus.writelines(' '.join(text.split()) + '\n' for text in texts)
    logger.info('%s: %d lines (%s)', out, len(texts), which)
    return out


def run_json(command, env=None):
    """Run a worker process; its last stdout line is a JSON result."""
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if result.returncode:
        sys.exit(f'{command} failed:\n{result.stderr[-3000:]}')
    return json.loads(result.stdout.strip().splitlines()[-1]), time.time() - started


def finetune_worker(args):
    """Fine-tune as configured; print the test accuracy and macro-F1 of the model it keeps."""
    import kobert_gluon as kg
    settings = json.loads(args.worker)
    demo = settings.pop('demo', False)
    config = (kg.TrainConfig.demo if demo else kg.TrainConfig)(log_interval=10 ** 9, ctx='cpu', **settings)
    classifier = kg.train(config)
    with open(os.path.join(classifier.run_dir, 'test_report.json'), encoding='utf-8') as saved:
        selected = json.load(saved)  # the validation value the model was selected by (None: no validation split)
    print(json.dumps({'accuracy': classifier.test_report['accuracy'], 'macro_f1': classifier.test_report['macro_f1'],
                      'valid_accuracy': selected['validation_value'] if selected['select_metric'] == 'accuracy' else None,
                      'seconds': sum(e['seconds'] for e in classifier.history['epochs'])}))


def tfidf_row(train, test, text='Sentence', label='Emotion'):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    started = time.time()
    vectorizer = TfidfVectorizer(analyzer='char', ngram_range=(1, 4), sublinear_tf=True, min_df=2)
    features = vectorizer.fit_transform(train[text])
    model = LogisticRegression(max_iter=2000, C=2.0).fit(features, train[label])
    predicted = model.predict(vectorizer.transform(test[text]))
    return {'accuracy': accuracy_score(test[label], predicted),
            'macro_f1': f1_score(test[label], predicted, average='macro'),
            'seconds': time.time() - started}


def summarise(runs):
    """Mean of each metric over the runs, the accuracy's standard deviation, and the runs."""
    summary = {metric: float(np.mean([run[metric] for run in runs])) for metric in runs[0] if runs[0][metric] is not None}
    return {**summary, 'accuracy_sd': float(np.std([run['accuracy'] for run in runs])), 'runs': runs}


def pretrain_command(corpus, output, *flags):
    return [sys.executable, '-m', 'kobert_gluon.cli', 'pretrain', '--corpus', corpus, '--output_dir', output,
            '--max_len', '32', '--batch_size', '64', '--ctx', 'cpu', '--num_procs', '1', *flags]


def read_results(path):
    if not os.path.isfile(path):
        return {}
    with open(path, encoding='utf-8') as saved:
        return json.load(saved)


def benchmark(args):
    """Rows are computed into WORKDIR/results.json (``--only`` picks some), then the table is printed."""
    import kobert_gluon as kg
    workdir = args.workdir or tempfile.mkdtemp(prefix='pretraining-bench-')
    os.makedirs(workdir, exist_ok=True)
    results_path = os.path.join(workdir, 'results.json')
    results = read_results(results_path)
    train, test = emotion_split(args.shared)
    train_csv, test_csv = os.path.join(workdir, 'train.csv'), os.path.join(workdir, 'test.csv')
    train.to_csv(train_csv, index=False)
    test.to_csv(test_csv, index=False)
    start = args.start or kg.shipped_params()
    if not os.path.isfile(start):
        sys.exit(f'{start}: no pretrained checkpoint; make one with `kobert-gluon pretrain` (see the docstring) '
                 'and pass --start DIR/bert.params')
    record = kg.read_record(start)
    tokenizer = args.tokenizer or kg.record_tokenizer_path(start, record)
    size_flags = [flag for name in ('num_layers', 'units', 'hidden_size', 'num_heads')
                  for flag in (f'--{name}', str(record['bert'][name]))]

    def repeated(name, settings):
        """The fine-tuning ``settings`` once per seed (the classifier head, dropout and batch order
        change; the starting BERT does not); mean and spread of the test metrics."""
        runs = [run_json([sys.executable, __file__, '--worker', json.dumps(
            {**settings, 'seed': seed, 'output_dir': os.path.join(workdir, f'{name}-seed{seed}')})])[0]
            for seed in range(args.seeds)]
        return summarise(runs)

    def finetune(name, init_from):
        return repeated('finetune-' + name, {
            'data': train_csv, 'test_data': test_csv, 'text_column': 'Sentence', 'label_column': 'Emotion',
            'bert': 'small', 'init_from': init_from, 'num_epochs': args.epochs, 'learning_rate': 5e-4,
            'bucketing': True, 'batch_size': 64, 'valid_size': 0.0, 'overwrite': True})

    def random_start():
        """0 steps: the Normal(0.02) initial weights of the shipped size, saved with its tokenizer."""
        output = os.path.join(workdir, 'random-start')
        if not os.path.isfile(os.path.join(output, 'bert.params')):
            subprocess.run(pretrain_command(train_csv, output, '--tokenizer', tokenizer, '--num_steps', '0',
                                            '--overwrite', *size_flags), check=True, stdout=subprocess.DEVNULL)
        return os.path.join(output, 'bert.params')

    def demo_tfidf():
        demo_frame = kg.read_table(kg.demo_data_path(), 'text', 'label')
        runs = [tfidf_row(*kg.stratified_split(demo_frame, 'label', 0.2, seed), text='text', label='label')
                for seed in range(args.seeds)]
        return summarise(runs)

    def continued():
        corpus = write_corpus(args.shared, 'nsmc+emotion', os.path.join(workdir, 'corpus.txt'), args.emotion_copies)
        output = os.path.join(workdir, 'continued')
        started = time.time()
        subprocess.run(pretrain_command(corpus, output, '--init_from', start, '--tokenizer', tokenizer,
                                        '--num_steps', str(args.pretrain_steps), '--learning_rate', '5e-4',
                                        '--warmup_ratio', '0.05'), check=True, stdout=subprocess.DEVNULL)
        pretrain_seconds = time.time() - started
        return {**finetune('continued', os.path.join(output, 'bert.params')), 'pretrain_seconds': pretrain_seconds}

    def demo(name, init_from, learning_rate=None):
        rate = {} if learning_rate is None else {'learning_rate': float(learning_rate)}
        return repeated('demo-' + name, {'demo': True, 'init_from': init_from, 'overwrite': True, **rate})

    rows = {'tfidf': lambda: tfidf_row(train, test), 'scratch': lambda: finetune('scratch', random_start()),
            'shipped': lambda: finetune('shipped', start), 'continued': continued,
            'demo-tfidf': demo_tfidf, 'demo-random': lambda: demo('random', random_start()),
            'demo-shipped': lambda: demo('shipped', start)}
    if args.candidate:
        candidate = args.candidate if args.candidate.endswith('.params') else os.path.join(args.candidate, 'bert.params')
        rows.update({'candidate': lambda: finetune('candidate', candidate),
                     'demo-candidate': lambda: demo('candidate', candidate)})
    rows.update({f'demo-lr-{rate}': (lambda rate=rate: demo(f'lr-{rate}', start, rate)) for rate in LEARNING_RATES})
    names = [name for name in ROW_NAMES if name in rows] if args.only is None else [name for name in args.only.split(',') if name]
    if set(names) - set(rows):
        sys.exit(f'--only: unknown rows {sorted(set(names) - set(rows))}; known: {", ".join(rows)}')
    for name in names:
        logger.info('row: %s', name)
        results[name] = rows[name]()
        results = {**read_results(results_path), name: results[name]}  # another run may have added rows
        with open(results_path, 'w', encoding='utf-8') as out:
            json.dump(results, out, indent=2)
    print_table(results, args, len(train), len(test))
    print_learning_rate_table(results)


# Fine-tuning rates tried on the demo from the shipped checkpoint: the selected model's validation
# accuracy (mean over the seeds) is what a choice may rest on; the test accuracy is shown, not used.
LEARNING_RATES = ('1e-3', '5e-4', '3e-4', '2e-4', '1e-4')


def print_learning_rate_table(results):
    rows = [(rate, results[f'demo-lr-{rate}']) for rate in LEARNING_RATES if f'demo-lr-{rate}' in results]
    if not rows:
        return
    print('\ndemo set from the shipped checkpoint, by fine-tuning learning rate (the rest of the preset unchanged); '
          'a choice of rate may rest on the validation column only')
    print('| learning rate | validation accuracy (selected epoch) | test accuracy | macro-F1 |')
    print('|---:|---:|---:|---:|')
    for rate, row in rows:
        print(f"| {rate} | {row['valid_accuracy']:.4f} | {row['accuracy']:.4f} ± {row['accuracy_sd']:.4f} | {row['macro_f1']:.4f} |")


ROW_NAMES = {'demo-shipped': 'demo set (600 sentences): from the shipped checkpoint',
             'demo-random': 'demo set: random start (same size and tokenizer)',
             'demo-tfidf': 'demo set: TF-IDF char 1-4-grams + logistic regression, same splits',
             'demo-candidate': 'demo set: from --candidate',
             'candidate': 'emotion set: from --candidate',
             'shipped': 'emotion set: from the shipped checkpoint',
             'scratch': 'emotion set: random start (same size and tokenizer)',
             'continued': 'emotion set: shipped checkpoint + MLM on NSMC and the emotion train sentences',
             'tfidf': 'emotion set: TF-IDF char 1-4-grams + logistic regression'}


def print_table(results, args, num_train, num_test):
    print(f'emotion set: {num_train} train / {num_test} test sentences (stratified, seed {SPLIT_SEED}); '
          f'BERT rows: the shipped checkpoint\'s size and tokenizer, {args.epochs} epoch(s), batch 64, lr 5e-4, '
          f'bucketing, no validation split (the last epoch is reported); demo rows: the demo preset (8 epochs, '
          f'model selected on a validation split), seeds 0..{args.seeds - 1} (the seed also draws the split); '
          f'load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
    print(f'mean over {args.seeds} seeds (± standard deviation); time per run')
    print('| setup | test accuracy | macro-F1 | time |')
    print('|---|---:|---:|---|')
    for key, name in ROW_NAMES.items():
        if key in results:
            row = results[key]
            extra = f"{row['pretrain_seconds']:.0f} s pretraining + " if 'pretrain_seconds' in row else ''
            spread = f" ± {row['accuracy_sd']:.4f}" if 'accuracy_sd' in row else ''
            print(f"| {name} | {row['accuracy']:.4f}{spread} | {row['macro_f1']:.4f} | {extra}{row['seconds']:.0f} s |")


def memory(args):
    """Peak RSS of a pretraining run on a generated corpus of ``--megabytes`` vs a tiny one."""
    import kobert_gluon as kg
    workdir = args.workdir or tempfile.mkdtemp(prefix='pretraining-memory-')
    lines = list(nsmc_text(args.shared))
    tokenizer = kg.train_sentencepiece(lines[:20000], os.path.join(workdir, 'tok.spiece'), 2000)
    rows = []
    for megabytes in (1, args.megabytes):
        corpus = os.path.join(workdir, f'corpus-{megabytes}.txt')
        generate_corpus(corpus, list(lines), megabytes)
        command = [sys.executable, __file__, '--memory_worker', json.dumps(
            {'corpus': corpus, 'tokenizer': tokenizer, 'output_dir': os.path.join(workdir, f'run-{megabytes}')})]
        result, seconds = run_json(command)
        rows.append((megabytes, result, seconds))
    print('| corpus MB | peak RSS MB, streaming process (VmHWM) | peak RSS MB, largest tokenizer worker '
          '(ru_maxrss, counts pages shared at fork) | sequences | s |')
    print('|---:|---:|---:|---:|---:|')
    for megabytes, result, seconds in rows:
        print(f"| {megabytes} | {result['self_mb']:.0f} | {result['children_mb']:.0f} | {result['lines']} | {seconds:.0f} |")


def generate_corpus(path, lines, megabytes):
    """Shuffled copies of the NSMC reviews up to ``megabytes`` MB (a 'large' corpus)."""
    import random
    rng = random.Random(0)
    target, written = megabytes * 1024 * 1024, 0
    with open(path, 'w', encoding='utf-8') as corpus:
        while written < target:
            rng.shuffle(lines)
            block = '\n'.join(lines) + '\n'
            corpus.write(block)
            written += len(block.encode('utf-8'))


def memory_worker(args):
    """Stream the whole corpus through tokenizing and batching (every batch, no model step)."""
    from kobert_gluon.training.masking import BatchStream  # the streaming internals are what is measured
    import kobert_gluon as kg
    settings = json.loads(args.memory_worker)
    config = kg.PretrainConfig(corpus=settings['corpus'], tokenizer=settings['tokenizer'],
                               output_dir=settings['output_dir'], max_len=64, batch_size=64, num_procs=2)
    stream = BatchStream(config, settings['tokenizer'], kg.get_vocab(settings['tokenizer']))
    sequences = 0
    for batch, position in stream({'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0}):
        if position['epoch'] > 0:
            break
        sequences += len(batch['token_ids'])
    # VmHWM, not ru_maxrss: Linux carries the parent's peak over a fork + exec into ru_maxrss.
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({'self_mb': peak_rss_mb(), 'children_mb': children_mb, 'lines': sequences}))


def peak_rss_mb():
    with open('/proc/self/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', nargs='?', default='benchmark', choices=('benchmark', 'corpus', 'heldout', 'memory'))
    parser.add_argument('--shared', default=os.environ.get('KOBERT_GLUON_SHARED', '../shared'),
                        help='folder with kobert/ and data/ (default: $KOBERT_GLUON_SHARED or ../shared)')
    parser.add_argument('--pretrain_steps', type=int, default=3000,
                        help='steps (batch 64) of continued pretraining on NSMC + emotion train text')
    parser.add_argument('--emotion_copies', type=int, default=2,
                        help='copies of the emotion training sentences in the continued-pretraining corpus')
    parser.add_argument('--epochs', type=int, default=1, help='fine-tuning epochs of the BERT rows')
    parser.add_argument('--seeds', type=int, default=3, help='fine-tuning runs (seeds 0, 1, ...) per BERT or demo row')
    parser.add_argument('--workdir', help='keep intermediate files here (default: a temporary folder)')
    parser.add_argument('--which', choices=('korean', 'nsmc', 'nsmc+emotion'), default='korean',
                        help='corpus mode: korean (data/korean_corpus, shuffled, 2,000 lines held out), or NSMC text')
    parser.add_argument('--out', help='corpus mode: output folder (korean) or file')
    parser.add_argument('--heldout', help='heldout mode: held-out lines (corpus_heldout.txt)')
    parser.add_argument('--record', action='store_true', help="heldout mode: write the result into --start's pretrain.json")
    parser.add_argument('--megabytes', type=int, default=300, help='memory mode: generated corpus size')
    parser.add_argument('--start', help='bert.params of a pretrain result to use instead of the shipped one')
    parser.add_argument('--candidate', help='a pretrain run directory (or its bert.params) to compare: rows candidate, '
                        'demo-candidate (give each candidate its own --workdir: rows are cached by name)')
    parser.add_argument('--tokenizer', help="the BERT rows' tokenizer (default: the --start checkpoint's)")
    parser.add_argument('--only', help="comma-separated rows to (re)compute: " + ','.join(ROW_NAMES)
                        + ', ' + ','.join(f'demo-lr-{rate}' for rate in LEARNING_RATES)
                        + " ('': none, only print the table of WORKDIR/results.json)")
    for hidden in ('--worker', '--memory_worker'):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    if args.worker:
        return finetune_worker(args)
    if args.memory_worker:
        return memory_worker(args)
    if args.mode == 'corpus':
        if args.which == 'korean':
            return write_korean_corpus(args.shared, args.out)
        return write_corpus(args.shared, args.which, args.out)
    if args.mode == 'heldout':
        return heldout(args)
    return memory(args) if args.mode == 'memory' else benchmark(args)


if __name__ == '__main__':
    main()
