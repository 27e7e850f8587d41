"""Does masked-LM pretraining help a small BERT? Emotion-set accuracy with and without it.

One stratified 80/20 split of the shared emotion set (data.stratified_split, seed 42) serves
every row:

- ``small BERT from scratch``: 2 x 128 BERT, KoBERT tokenizer, random init, fine-tuned;
- ``small BERT + MLM pretraining``: the same after ``kobert-gluon pretrain`` on the NSMC review
  text + the emotion *training* sentences (text only, no labels; the test sentences are left out);
- ``TF-IDF char 1-4 + logistic regression``: scikit-learn, same split.

Both BERT rows fine-tune the same number of epochs with the same settings; the pretraining
run gets a fixed number of steps (its wall time is printed). Also: the embedded demo's test
accuracy from random init and from the shipped checkpoint (kobert_gluon/resources/pretrained).

    python benchmarks/pretraining.py --pretrain_steps 3000 --epochs 3
    python benchmarks/pretraining.py corpus --which nsmc --out nsmc.txt   # a corpus file only
    python benchmarks/pretraining.py memory --megabytes 300               # streaming peak RSS
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
    from kobert_gluon.data import stratified_split
    frame = pd.read_csv(os.path.join(shared, EMOTION_CSV), encoding='cp949')
    return stratified_split(frame, 'Emotion', TEST_SIZE, SPLIT_SEED)


def write_corpus(shared, which, out):
    """One sentence per line: NSMC reviews, plus (nsmc+emotion) the emotion training sentences."""
    texts = list(nsmc_text(shared))
    if which == 'nsmc+emotion':
        texts += list(emotion_split(shared)[0]['Sentence'])
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
    """Fine-tune on the split; print the last epoch's test accuracy and macro-F1."""
    from kobert_gluon.training import TrainConfig, train
    settings = json.loads(args.worker)
    classifier = train(TrainConfig(log_interval=10 ** 9, ctx='cpu', **settings))
    last = classifier.history['epochs'][-1]
    print(json.dumps({'accuracy': last['test']['accuracy'], 'macro_f1': last['test']['macro_f1'],
                      'seconds': sum(e['seconds'] for e in classifier.history['epochs'])}))


def tfidf_row(train, test):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    started = time.time()
    vectorizer = TfidfVectorizer(analyzer='char', ngram_range=(1, 4), sublinear_tf=True, min_df=2)
    features = vectorizer.fit_transform(train['Sentence'])
    model = LogisticRegression(max_iter=2000, C=2.0).fit(features, train['Emotion'])
    predicted = model.predict(vectorizer.transform(test['Sentence']))
    return {'accuracy': accuracy_score(test['Emotion'], predicted),
            'macro_f1': f1_score(test['Emotion'], predicted, average='macro'),
            'seconds': time.time() - started}


def benchmark(args):
    train, test = emotion_split(args.shared)
    kobert_dir = os.path.join(args.shared, 'kobert')
    workdir = args.workdir or tempfile.mkdtemp(prefix='pretraining-bench-')
    train_csv, test_csv = os.path.join(workdir, 'train.csv'), os.path.join(workdir, 'test.csv')
    train.to_csv(train_csv, index=False)
    test.to_csv(test_csv, index=False)
    rows = [('TF-IDF char 1-4 + logistic regression', tfidf_row(train, test), '')]

    pretrained = args.pretrained
    pretrain_seconds = 0.0
    if not pretrained:
        corpus = write_corpus(args.shared, 'nsmc+emotion', os.path.join(workdir, 'corpus.txt'))
        output = os.path.join(workdir, 'pretrain')
        command = [sys.executable, '-m', 'kobert_gluon.cli', 'pretrain', '--corpus', corpus,
                   '--output_dir', output, '--tokenizer', 'kobert', '--kobert_dir', kobert_dir,
                   '--num_steps', str(args.pretrain_steps), '--batch_size', '64', '--max_len', '64',
                   '--learning_rate', '5e-4', '--warmup_ratio', '0.05', '--ctx', 'cpu', '--log_interval', '100']
        logger.info('pretraining: %s', ' '.join(command))
        started = time.time()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        pretrain_seconds = time.time() - started
        pretrained = os.path.join(output, 'bert.params')

    common = {'data': train_csv, 'test_data': test_csv, 'text_column': 'Sentence', 'label_column': 'Emotion',
              'bert': 'small', 'kobert_dir': kobert_dir, 'num_epochs': args.epochs, 'learning_rate': 5e-4,
              'bucketing': True, 'batch_size': 64}
    for name, extra in (('small BERT from scratch', {}),
                        ('small BERT + MLM pretraining', {'init_from': pretrained})):
        settings = {**common, **extra, 'output_dir': os.path.join(workdir, name.split()[-1])}
        logger.info('fine-tuning: %s', name)
        result, _ = run_json([sys.executable, __file__, '--worker', json.dumps(settings)])
        rows.append((name, result, f'{pretrain_seconds:.0f} s pretraining + ' if extra and pretrain_seconds else ''))

    for name, init in (('demo, random init', 'none'), ('demo, shipped checkpoint', None)):
        settings = {'output_dir': os.path.join(workdir, 'demo-' + str(init)), 'demo': True, 'init_from': init}
        result, _ = run_json([sys.executable, __file__, '--demo_worker', json.dumps(settings)])
        rows.append((name, result, ''))
    print_table(rows, args, len(train), len(test))


def demo_worker(args):
    from kobert_gluon.training import TrainConfig, train
    settings = json.loads(args.demo_worker)
    settings.pop('demo')
    classifier = train(TrainConfig.demo(ctx='cpu', **settings))
    last = classifier.history['epochs'][-1]
    print(json.dumps({'accuracy': last['test']['accuracy'], 'macro_f1': last['test']['macro_f1'],
                      'seconds': sum(e['seconds'] for e in classifier.history['epochs'])}))


def print_table(rows, args, num_train, num_test):
    print(f'emotion set: {num_train} train / {num_test} test sentences (stratified, seed {SPLIT_SEED}); '
          f'BERT rows: 2 x 128, KoBERT tokenizer, {args.epochs} epochs, batch 64, lr 5e-4, bucketing; '
          f'last epoch reported; load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores')
    print('| setup | test accuracy | macro-F1 | time |')
    print('|---|---:|---:|---|')
    for name, row, prefix in rows:
        print(f"| {name} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {prefix}{row['seconds']:.0f} s |")


def memory(args):
    """Peak RSS of a pretraining run on a generated corpus of ``--megabytes`` vs a tiny one."""
    from kobert_gluon.tokenizer import train_sentencepiece
    workdir = args.workdir or tempfile.mkdtemp(prefix='pretraining-memory-')
    lines = list(nsmc_text(args.shared))
    tokenizer = train_sentencepiece(lines[:20000], os.path.join(workdir, 'tok.spiece'), 2000)
    rows = []
    for megabytes in (1, args.megabytes):
        corpus = os.path.join(workdir, f'corpus-{megabytes}.txt')
        generate_corpus(corpus, lines, megabytes)
        command = [sys.executable, __file__, '--memory_worker', json.dumps(
            {'corpus': corpus, 'tokenizer': tokenizer, 'output_dir': os.path.join(workdir, f'run-{megabytes}')})]
        result, seconds = run_json(command)
        rows.append((megabytes, result, seconds))
    print('| corpus MB | peak RSS MB (pretrain process) | peak RSS MB (largest tokenizer worker) | lines read | s |')
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
    from kobert_gluon.pretrain import BatchStream, PretrainConfig
    from kobert_gluon.tokenizer import get_vocab
    settings = json.loads(args.memory_worker)
    config = PretrainConfig(corpus=settings['corpus'], tokenizer=settings['tokenizer'],
                            output_dir=settings['output_dir'], max_len=64, batch_size=64, num_procs=2)
    stream = BatchStream(config, settings['tokenizer'], get_vocab(settings['tokenizer']))
    sequences = 0
    for batch, position in stream({'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0}):
        if position['epoch'] > 0:
            break
        sequences += len(batch['token_ids'])
    stream_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({'self_mb': stream_mb, 'children_mb': children_mb, 'lines': sequences}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', nargs='?', default='benchmark', choices=('benchmark', 'corpus', 'memory'))
    parser.add_argument('--shared', default=os.environ.get('KOBERT_GLUON_SHARED', '../shared'),
                        help='folder with kobert/ and data/ (default: $KOBERT_GLUON_SHARED or ../shared)')
    parser.add_argument('--pretrain_steps', type=int, default=3000, help='pretraining steps of batch 64')
    parser.add_argument('--pretrained', help='reuse this bert.params instead of pretraining')
    parser.add_argument('--epochs', type=int, default=3, help='fine-tuning epochs of both BERT rows')
    parser.add_argument('--workdir', help='keep intermediate files here (default: a temporary folder)')
    parser.add_argument('--which', choices=('nsmc', 'nsmc+emotion'), default='nsmc', help='corpus mode: text')
    parser.add_argument('--out', help='corpus mode: output file')
    parser.add_argument('--megabytes', type=int, default=300, help='memory mode: generated corpus size')
    for hidden in ('--worker', '--demo_worker', '--memory_worker'):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    if args.worker:
        return finetune_worker(args)
    if args.demo_worker:
        return demo_worker(args)
    if args.memory_worker:
        return memory_worker(args)
    if args.mode == 'corpus':
        return write_corpus(args.shared, args.which, args.out)
    return memory(args) if args.mode == 'memory' else benchmark(args)


if __name__ == '__main__':
    main()
