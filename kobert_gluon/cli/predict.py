"""``kobert-gluon evaluate`` and ``kobert-gluon predict``: a trained model on labeled or new text."""
import json
import logging
import os
import sys

from ..fileio import write_json
from ..inference.evaluate import evaluate
from ..inference.metrics import format_report
from ..text.data import read_table
from .options import add_inference_arguments, in_precision, load_classifier, open_output, read_lines

logger = logging.getLogger(__name__)

FORMATS = ('tsv', 'jsonl')
# A tab or line break inside a sentence would shift the TSV columns; JSONL keeps the text as is.
TSV_UNSAFE = str.maketrans('\t\r\n', '   ')


def add_evaluate_arguments(parser):
    add_inference_arguments(parser)
    parser.add_argument('--data', required=True, help='labeled TSV/CSV/XLSX file')
    parser.add_argument('--text-column', '--text_column', dest='text_column', default='text',
                        help='column holding the sentences')
    parser.add_argument('--label-column', '--label_column', dest='label_column', default='label',
                        help="column holding the labels, named as in the model's label map")
    parser.add_argument('--output', help='also write the report as JSON here')


def run_evaluate(args):
    classifier = load_classifier(args)
    frame = read_table(args.data, args.text_column, args.label_column)
    texts = list(frame[args.text_column])
    report = evaluate(in_precision(classifier, args, texts), texts, frame[args.label_column], args.batch_size,
                      source=args.data)
    print(format_report(report, classifier.label_map.names))
    if args.output:
        write_json(args.output, {'model': os.path.abspath(args.model), 'data': os.path.abspath(args.data),
                                 'sentences': len(texts), 'labels': classifier.label_map.names, **report})
        logger.info('report written to %s', args.output)


def add_predict_arguments(parser):
    add_inference_arguments(parser)
    parser.add_argument('sentences', nargs='*', default=[], metavar='SENTENCE',
                        help="sentences to classify (put -- before them if one starts with '-'); "
                             'none: one per line from --input, else stdin')
    parser.add_argument('--input', help="file of sentences, one per line (UTF-8); '-' is stdin")
    parser.add_argument('--format', choices=FORMATS, default='tsv',
                        help='tsv: text, label, prob_<label>... with a header; jsonl: one JSON object a line')
    parser.add_argument('--output', help='write here instead of stdout')


def run_predict(args):
    classifier = load_classifier(args)  # before reading stdin, so a bad model fails at once
    texts = read_sentences(args)
    if not texts:
        logger.warning('no sentences to classify')
    records = in_precision(classifier, args, texts).predict_records(texts, args.batch_size)
    with open_output(args.output) as out:
        WRITERS[args.format](out, records, classifier.label_map.names)


def read_sentences(args):
    if args.sentences:
        return list(args.sentences)
    if args.input and args.input != '-':
        with open(args.input, 'rb') as source:
            return read_lines(source, args.input)
    if sys.stdin.isatty():
        logger.info('reading sentences from stdin, one per line; end with Ctrl-D')
    return read_lines(sys.stdin.buffer, 'stdin')


def write_tsv(out, records, names):
    """Blank inputs keep their row, with empty label and probability cells."""
    out.write('\t'.join(['text', 'label'] + [f'prob_{name}' for name in names]) + '\n')
    for record in records:
        probabilities = record['probabilities']
        cells = [record['text'].translate(TSV_UNSAFE), record['label'] or '']
        cells += [f'{probabilities[name]:.6g}' for name in names] if probabilities else [''] * len(names)
        out.write('\t'.join(cells) + '\n')


def write_jsonl(out, records, names):
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + '\n')


WRITERS = {'tsv': write_tsv, 'jsonl': write_jsonl}
