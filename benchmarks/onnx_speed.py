"""An ONNX export (onnxruntime) beside kobert_gluon on the same classifier and the same batches.

A classifier of KoBERT's size (12 x 768, random weights, KoBERT's tokenizer; ``--small``: 2 x 128)
is exported with ``kg.export_onnx``; both then score the same sentences (the embedded demo set,
repeated), batched alike and padded to each batch's longest sentence, alternating rounds, on the
threads kobert_gluon sets. Prints samples/s and the ratio, and the largest logit difference.

    python benchmarks/onnx_speed.py [--small] [--rounds 3] [--sentences 256] [--batch_size 32]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def build(small):
    import mxnet as mx
    import kobert_gluon as kg
    tokenizer, vocab, files = kg.load_tokenizer()
    config = kg.BertConfig.small(vocab_size=len(vocab)) if small else kg.BertConfig.kobert()
    model = kg.build_classifier(config, 2, 0.1, mx.cpu())
    model.hybridize(static_alloc=True)
    return kg.TextClassifier(model, tokenizer, kg.LabelMap(['긍정', '부정']), config, 64, files, 0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--small', action='store_true', help='2 x 128 instead of KoBERT size')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--sentences', type=int, default=256)
    parser.add_argument('--batch_size', type=int, default=32)
    args = parser.parse_args()
    import kobert_gluon as kg
    import onnxruntime
    classifier = build(args.small)
    texts = list(kg.read_table(kg.demo_data_path(), 'text', 'label')['text'])
    texts = (texts * (args.sentences // len(texts) + 1))[:args.sentences]
    encoded = classifier.encode(texts)
    batches = list(classifier.batches(encoded, args.batch_size))
    with tempfile.TemporaryDirectory() as workdir:
        paths = kg.export_onnx(classifier, os.path.join(workdir, 'onnx'))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get('OMP_NUM_THREADS', os.cpu_count()))
        session = onnxruntime.InferenceSession(paths['onnx'], options, providers=['CPUExecutionProvider'])

        def ours():
            return [classifier.model(*classifier._nd(batch)).asnumpy() for batch in batches]

        def theirs():
            return [session.run(['logits'], kg.onnx_inputs(*batch))[0] for batch in batches]
        difference = max(float(np.abs(a - b).max()) for a, b in zip(ours(), theirs()))  # also the warm-up
        seconds = {'kobert_gluon (MXNet, float32)': [], 'onnxruntime (float32)': []}
        for _ in range(args.rounds):
            for name, run in (('kobert_gluon (MXNet, float32)', ours), ('onnxruntime (float32)', theirs)):
                started = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - started)
    size = '2 x 128' if args.small else '12 x 768 (KoBERT size)'
    print(f'{size}, {args.sentences} demo sentences in batches of {args.batch_size}, medians of {args.rounds} '
          f'alternated rounds, {os.environ.get("OMP_NUM_THREADS")} threads, load average {os.getloadavg()[0]:.1f}; '
          f'largest logit difference {difference:.1e}')
    print('| runtime | samples/s | ratio |')
    print('|---|---:|---:|')
    base = None
    for name, times in seconds.items():
        rate = args.sentences / statistics.median(times)
        base = base or rate
        print(f'| {name} | {rate:.1f} | {rate / base:.2f}x |')


if __name__ == '__main__':
    sys.exit(main())
