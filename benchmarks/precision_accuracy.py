"""Accuracy and speed of each inference precision on a held-out set, against float32.

    python benchmarks/precision_accuracy.py --model runs/nsmc/best \\
        --data ../shared/data/nsmc/ratings_test_small.txt --text_column document --label_column label

Without --model it first fine-tunes a small BERT on NSMC's training subset (one epoch,
bucketing, KoBERT tokenizer) from the shared folder. INT8 is calibrated on the first
512 sentences of --calibration (default: the training file), never on the test set.
"""
import argparse
import logging
import os
import sys
import tempfile
import time


def evaluate(classifier, texts, labels, batch_size):
    from kobert_gluon import classification_report
    started = time.perf_counter()
    predictions = classifier.logits(texts, batch_size).argmax(axis=1)
    seconds = time.perf_counter() - started
    return classification_report(labels, predictions, classifier.num_classes), len(texts) / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = os.environ.get('KOBERT_GLUON_SHARED', '../shared')
    parser.add_argument('--model', help='model directory; none: train a small one on NSMC first')
    parser.add_argument('--data', default=os.path.join(shared, 'data', 'nsmc', 'ratings_test_small.txt'))
    parser.add_argument('--calibration', default=os.path.join(shared, 'data', 'nsmc', 'ratings_train_small.txt'))
    parser.add_argument('--text_column', default='document')
    parser.add_argument('--label_column', default='label')
    parser.add_argument('--precisions', default='float32,int8,bfloat16',
                        help='comma-separated; int8 variants: int8:entropy (calibration), int8:channel-wise '
                             '(per-channel weight scales), int8:entropy:channel-wise')
    parser.add_argument('--batch_size', type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    import kobert_gluon as kg
    from kobert_gluon import TextClassifier, TrainConfig, read_table, train
    with tempfile.TemporaryDirectory() as workdir:
        if args.model:
            classifier = TextClassifier.load(args.model)
        else:
            classifier = train(TrainConfig(data=args.calibration, test_data=args.data, text_column=args.text_column,
                                           label_column=args.label_column, bert='small', num_epochs=1,
                                           learning_rate=5e-4, bucketing=True, log_interval=10 ** 9,
                                           kobert_dir=os.path.join(shared, 'kobert'), output_dir=workdir))
        test = read_table(args.data, args.text_column, args.label_column)
        texts = list(test[args.text_column])
        labels = classifier.label_map.encode(test[args.label_column], source=args.data)
        calibration = list(read_table(args.calibration, args.text_column)[args.text_column][:512])
        rows = []
        for asked in args.precisions.split(','):
            dtype, *options = asked.split(':')
            settings = {('calib_mode' if option in ('naive', 'entropy') else 'quantize_granularity'): option
                        for option in options}
            converted = classifier.with_precision(dtype, calibration_texts=calibration, **settings)
            evaluate(converted, texts[:args.batch_size], labels[:args.batch_size], args.batch_size)  # warm up
            report, speed = evaluate(converted, texts, labels, args.batch_size)
            rows.append((asked, converted.dtype, report, speed))
    reference = rows[0]
    print(f'CPU flags: avx512_bf16={"avx512_bf16" in kg.cpu_flags()} avx512_vnni={kg.has_vnni()}; '
          f'load average {os.getloadavg()[0]:.2f}')
    print(f'{len(texts)} held-out sentences from {args.data}; model {classifier.bert_config.num_layers} layers '
          f'x {classifier.bert_config.units} units; batch {args.batch_size}, length-sorted batches')
    print('| precision asked | ran as | accuracy | delta (points) | macro-F1 | sentences/s | speed-up |')
    print('|---|---|---|---|---|---|---|')
    for asked, ran, report, speed in rows:
        print(f"| {asked} | {ran} | {report['accuracy']:.4f} | {100 * (report['accuracy'] - reference[2]['accuracy']):+.2f} "
              f"| {report['macro_f1']:.4f} | {speed:.1f} | {speed / reference[3]:.2f}x |")


if __name__ == '__main__':
    main()
