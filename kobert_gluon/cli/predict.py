"""``kobert-gluon evaluate`` and ``kobert-gluon predict``: a trained model on labeled or new text.

``evaluate`` without --data scores the test split its run recorded (split.json: the rows'
positions in the data file and their sha256), rebuilt row for row. Rows the model was trained or
selected on are counted (from the model's own record, else from its run folder) and more than
OVERLAP_LIMIT of them is refused without --allow_overlap. ``predict --input`` of a table (.tsv,
.csv, .xlsx) keeps its columns and adds the label and a prob_<label> column per label.
"""
import json
import logging
import os
import sys

from ..errors import DataError
from ..fileio import atomic_path, read_json, write_json
from ..inference.evaluate import evaluate, recorded_rows, row_hashes
from ..inference.metrics import format_report
from ..text import data as text_data
from ..text.data import demo_data_path, read_table, rows_digest
from ..training.checkpoint import TRAIN_CONFIG_FILE
from ..training.rundir import SPLIT_FILE
from .options import add_inference_arguments, add_switch, in_precision, load_classifier, open_output, read_lines

logger = logging.getLogger(__name__)

FORMATS = ('tsv', 'jsonl')
# A tab or line break inside a sentence would shift the TSV columns; JSONL keeps the text as is.
TSV_UNSAFE = str.maketrans('\t\r\n', '   ')
TABLE_FORMATS = {'.tsv': 'tsv', '.csv': 'csv', '.xlsx': 'xlsx', '.xls': 'xlsx', '.jsonl': 'jsonl'}


# ---------------------------------------------------------------------------- evaluate

def add_evaluate_arguments(parser):
    add_inference_arguments(parser)
    parser.add_argument('--data', help="labeled TSV/CSV/XLSX file; none: the test split recorded in the model's "
                                       'run folder (--model RUN or RUN/best), rebuilt row for row')
    parser.add_argument('--text-column', '--text_column', dest='text_column', default='text',
                        help='column holding the sentences (without --data: the run\'s own)')
    parser.add_argument('--label-column', '--label_column', dest='label_column', default='label',
                        help="column holding the labels, named as in the model's label map (without --data: the run's own)")
    parser.add_argument('--output', help='also write the report as JSON here')
    add_switch(parser, 'allow_overlap', 'score data of which over 10%% are rows the model was trained or selected '
                                        'on (refused otherwise; any overlap is a warning)')


def run_evaluate(args):
    classifier = load_classifier(args)  # a run folder becomes its best/ here
    run = run_folder(args.model)
    if args.data:
        frame = read_table(args.data, args.text_column, args.label_column)
        texts, labels, source = list(frame[args.text_column]), list(frame[args.label_column]), args.data
    else:
        if run is None:
            raise DataError(f'evaluate: no --data, and {args.model} is not part of a run folder with its '
                            f'{SPLIT_FILE}; pass --data FILE')
        texts, labels, source = split_rows(run, 'test')
        logger.info('no --data: scoring the test split of the run %s (%d rows of %s)', run, len(texts), source)
    seen = recorded_rows(classifier) or run_rows_seen(run, classifier)
    report = evaluate(in_precision(classifier, args, texts), texts, labels, args.batch_size, source=source,
                      seen=seen, allow_overlap=getattr(args, 'allow_overlap', False))
    print(format_report(report, classifier.label_map.names))
    if args.output:
        overlap = sum(row in seen for row in row_hashes(texts, labels)) if seen else None
        write_json(args.output, {'model': os.path.abspath(args.model), 'data': os.path.abspath(source),
                                 'sentences': len(texts), 'labels': classifier.label_map.names,
                                 'overlap_rows': overlap, **report})
        logger.info('report written to %s', args.output)


def run_folder(model_dir):
    """The run folder ``model_dir`` was saved in (RUN for RUN/best or RUN/last/model), else None."""
    parent = os.path.dirname(os.path.abspath(model_dir))
    for candidate in (parent, os.path.dirname(parent)):
        if all(os.path.isfile(os.path.join(candidate, name)) for name in (SPLIT_FILE, TRAIN_CONFIG_FILE)):
            return candidate
    return None


def split_rows(run, name):
    """(texts, labels, source) of the run's ``name`` split: the recorded rows of its data file,
    checked against split.json's sha256, or its separate file (test_data, valid_data) as is."""
    settings = read_json(os.path.join(run, TRAIN_CONFIG_FILE))
    part = read_json(os.path.join(run, SPLIT_FILE)).get(name)
    if not part:
        raise DataError(f'{os.path.join(run, SPLIT_FILE)}: no {name} split recorded')
    text_column, label_column = settings.get('text_column', 'text'), settings.get('label_column', 'label')
    separate = part.get('positions') is None
    path = settings.get(f'{name}_data') if separate else (settings.get('data') or demo_data_path())
    if not path or not os.path.isfile(path):
        raise DataError(f'{os.path.join(run, TRAIN_CONFIG_FILE)} names the {name} data {path}, which is not found '
                        f'(from {os.getcwd()}); pass --data FILE')
    frame = read_table(path, text_column, label_column)
    if not separate:
        positions = part['positions']
        if positions and max(positions) >= len(frame):
            raise DataError(f'{path} changed since the run {run}: it has {len(frame)} usable rows, the recorded '
                            f'{name} split needs row {max(positions) + 1}; pass --data FILE')
        frame = frame.iloc[positions]
    texts, labels = list(frame[text_column]), list(frame[label_column])
    if rows_digest(texts, labels) != part.get('sha256'):
        if not separate:
            raise DataError(f'{path} changed since the run {run}: its recorded {name} rows no longer match the '
                            f'sha256 in {SPLIT_FILE}; pass --data FILE to score a file of your choice')
        logger.warning('%s changed since the run %s: its rows differ from the ones recorded', path, run)
    logger.debug('the %s split of the run %s: %d rows of %s', name, run, len(texts), path)
    return texts, labels, path


def run_rows_seen(run, classifier):
    """row_hashes of the run's train and valid rows, rebuilt from its data; None when unknown."""
    if run is None:
        logger.info('no record of the rows this model was trained on: overlap with them is not checked')
        return None
    recorded = read_json(os.path.join(run, SPLIT_FILE))
    model_split = (classifier.training or {}).get('split') or {}
    if model_split.get('train', {}).get('sha256', recorded.get('train', {}).get('sha256')) != \
            recorded.get('train', {}).get('sha256'):
        logger.info('%s records another split than the model: overlap is not checked', run)
        return None
    seen = set()
    try:
        for name in ('train', 'valid'):
            if recorded.get(name):
                seen.update(row_hashes(*split_rows(run, name)[:2]))
    except DataError as error:
        logger.warning('overlap with the training rows is not checked: %s', error)
        return None
    return seen


# ---------------------------------------------------------------------------- predict

def add_predict_arguments(parser):
    add_inference_arguments(parser)
    parser.add_argument('sentences', nargs='*', default=[], metavar='SENTENCE',
                        help="sentences to classify (put -- before them if one starts with '-'); "
                             'none: one per line from --input, else stdin')
    parser.add_argument('--input', help="file of sentences, one per line (UTF-8); '-' is stdin; a .tsv, .csv or "
                                        '.xlsx table: its --text_column, and the output keeps every column')
    parser.add_argument('--text-column', '--text_column', dest='text_column', default='text',
                        help='column of a table --input holding the sentences')
    parser.add_argument('--format', choices=FORMATS,
                        help='tsv: text, label, prob_<label>... with a header; jsonl: one JSON object a line '
                             "(default: tsv; a table --input: the --output file's suffix, else the input's format)")
    parser.add_argument('--output', help='write here instead of stdout')


def run_predict(args):
    classifier = load_classifier(args)  # before reading stdin, so a bad model fails at once
    if is_table(args.input):
        return predict_table(classifier, args)
    texts = read_sentences(args)
    if not texts:
        logger.warning('no sentences to classify')
    records = in_precision(classifier, args, texts).predict_records(texts, args.batch_size)
    with open_output(args.output) as out:
        WRITERS[args.format or 'tsv'](out, records, classifier.label_map.names)


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


# ---------------------------------------------------------------------------- predict on a table

def is_table(path):
    return bool(path) and path != '-' and os.path.splitext(path)[1].lower() in TABLE_FORMATS


def predict_table(classifier, args):
    """Every row and column of the table, plus label and prob_<label>; empty text: empty cells."""
    frame = text_data.read_frame(args.input)
    if args.text_column not in frame.columns:
        raise DataError(f'{args.input}: no column {args.text_column!r}; the columns are '
                        f'{list(map(str, frame.columns))}; choose one with --text_column')
    texts = ['' if text_data.is_missing(text) else str(text) for text in frame[args.text_column]]
    records = in_precision(classifier, args, texts).predict_records(texts, args.batch_size)
    names = classifier.label_map.names
    label_column = 'label' if 'label' not in frame.columns or args.text_column == 'label' else 'predicted_label'
    frame[label_column] = [record['label'] for record in records]
    for name in names:
        frame[f'prob_{name}'] = [record['probabilities'][name] if record['probabilities'] else None
                                 for record in records]
    write_table(frame, output_format(args), args.output)


def output_format(args):
    suffix = os.path.splitext(args.output or '')[1].lower()
    if suffix == '.xls':
        raise DataError(f'--output {args.output}: .xls cannot be written; use .xlsx')
    chosen = TABLE_FORMATS.get(suffix) or args.format or TABLE_FORMATS[os.path.splitext(args.input)[1].lower()]
    if chosen == 'xlsx' and not args.output:
        logger.warning('a spreadsheet cannot go to stdout: writing TSV (pass --output FILE.xlsx for one)')
        return 'tsv'
    return chosen


def write_table(frame, table_format, path):
    if table_format == 'xlsx':
        with atomic_path(path) as tmp, open(tmp, 'wb') as out:  # a handle: tmp's suffix is not .xlsx
            frame.to_excel(out, index=False, engine='openpyxl')
        logger.info('predictions written to %s', path)
        return
    with open_output(path) as out:
        if table_format == 'jsonl':
            for row in frame.astype(object).where(frame.notna(), None).to_dict(orient='records'):
                out.write(json.dumps(row, ensure_ascii=False, default=str) + '\n')
        elif table_format == 'tsv':
            frame.apply(lambda column: column.map(lambda v: v.translate(TSV_UNSAFE) if isinstance(v, str) else v)) \
                .to_csv(out, sep='\t', index=False, quoting=3, float_format='%.6g')
        else:
            frame.to_csv(out, index=False, float_format='%.6g')
