"""Epoch time and accuracy of the seed recipe vs. bucketing (+ thread defaults, + precision).

Fine-tunes a small BERT with the KoBERT tokenizer on the shared emotion dataset (7 classes)
and prints one table row per setup, each run in its own process so thread settings apply:

    python benchmarks/bucketing.py --rows 8000 --epochs 1

- ``seed recipe``: fixed max_len 64 padding, mxnet's default environment (1 OpenMP thread)
- ``fixed 64``: the same with kobert_gluon's thread defaults
- ``bucketing``: FixedBucketSampler batches padded per batch, thread defaults
- ``bucketing + <dtype>``: with --dtype bfloat16 where the CPU supports it
"""
import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile

logger = logging.getLogger('bucketing')

SETUPS = [
    ('seed recipe (fixed 64, 1 thread)', {'bucketing': False}, {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1',
                                                                'OPENBLAS_NUM_THREADS': '1'}),
    ('fixed 64, thread defaults', {'bucketing': False}, {}),
    ('bucketing, thread defaults', {'bucketing': True}, {}),
]


def worker(args):
    import kobert_gluon as kg  # sets thread defaults before mxnet loads
    import pandas as pd
    frame = pd.read_csv(os.path.join(args.shared, 'data', 'emotion', 'single_turn_emotion_cp949.csv'), encoding='cp949')
    if args.rows < len(frame):
        frame = frame.groupby('Emotion').sample(args.rows // 7, random_state=0)
    with tempfile.TemporaryDirectory() as workdir:
        data = os.path.join(workdir, 'emotion.csv')
        frame.to_csv(data, index=False)
        config = kg.TrainConfig(data=data, text_column='Sentence', label_column='Emotion', bert='small',
                             kobert_dir=os.path.join(args.shared, 'kobert'), num_epochs=args.epochs,
                             learning_rate=5e-4, output_dir=os.path.join(workdir, 'run'), ctx='cpu',
                             log_interval=10 ** 9, **json.loads(args.worker))
        classifier = kg.train(config)
    epochs = classifier.history['epochs']
    print(json.dumps({'epoch_seconds': sum(e['seconds'] for e in epochs) / len(epochs),
                      'accuracy': classifier.test_report['accuracy'], 'macro_f1': classifier.test_report['macro_f1'],
                      'threads': os.environ.get('OMP_NUM_THREADS'), 'batch_size': config.batch_size,
                      'test_size': config.test_size, 'valid_size': config.valid_size}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--shared', default=os.environ.get('KOBERT_GLUON_SHARED', '../shared'),
                        help='folder with kobert/ and data/emotion/ (default: $KOBERT_GLUON_SHARED or ../shared)')
    parser.add_argument('--rows', type=int, default=38594, help='stratified subsample of the 38,594 rows')
    parser.add_argument('--epochs', type=int, default=1)
    parser.add_argument('--dtype', default=None, help='also run bucketing with this training dtype (e.g. bfloat16)')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    setups = SETUPS + ([(f'bucketing + {args.dtype}', {'bucketing': True, 'dtype': args.dtype}, {})] if args.dtype else [])
    rows = []
    for name, overrides, env in setups:
        logger.info('running: %s', name)
        command = [sys.executable, __file__, '--shared', args.shared, '--rows', str(args.rows),
                   '--epochs', str(args.epochs), '--worker', json.dumps(overrides)]
        result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
        if result.returncode:
            sys.exit(f'{name} failed:\n{result.stderr[-3000:]}')
        rows.append((name, json.loads(result.stdout.strip().splitlines()[-1])))
    baseline, used = rows[0][1]['epoch_seconds'], rows[0][1]
    print(f"emotion dataset, {args.rows} rows ({used['test_size']:.0%} test, {used['valid_size']:.0%} of the rest "
          f"for validation), small BERT, KoBERT tokenizer, batch {used['batch_size']}, {args.epochs} epoch(s)")
    print('| setup | threads | epoch s | speed-up | test accuracy | macro-F1 |')
    print('|---|---|---|---|---|---|')
    for name, row in rows:
        print(f"| {name} | {row['threads']} | {row['epoch_seconds']:.1f} | {baseline / row['epoch_seconds']:.2f}x "
              f"| {row['accuracy']:.4f} | {row['macro_f1']:.4f} |")


if __name__ == '__main__':
    main()
