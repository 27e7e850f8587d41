"""``kobert-gluon evaluate`` and ``kobert-gluon predict``: a trained model on labeled or new text.

``evaluate`` without --data scores the test split its run recorded (split.json: the rows'
positions in the data file and their sha256), rebuilt row for row. Rows the model was trained or
selected on are counted (from the model's own record, else from its run folder) and more than
OVERLAP_LIMIT of them is refused without --allow_overlap. ``predict --input`` of a table (.tsv,
.csv, .xlsx) keeps its columns and adds the task's: the label and a prob_<label> column per label
(classification), the score (regression), the labels above the threshold and prob_<label>
(multi-label). A pair model reads two columns of a table, two tab-separated texts per line of
text input, or SENTENCE --text_pair TEXT.
"""
import json
import logging
import os
import sys

from ..errors import DataError
from ..fileio import atomic_path, read_json, write_json
from ..inference.evaluate import evaluate, recorded_rows, row_hashes
from ..tasks.inputs import Columns, split_names
from ..text import data as text_data
from ..text.data import demo_data_path, rows_digest
from ..training.checkpoint import TRAIN_CONFIG_FILE
from ..training.rundir import SPLIT_FILE
from ..training.splits import read_part
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
    add_column_arguments(parser, labels=True)
    add_threshold_argument(parser)
    parser.add_argument('--output', help='also write the report as JSON here')
    add_switch(parser, 'allow_overlap', 'score data of which over 10%% are rows the model was trained or selected '
                                        'on (refused otherwise; any overlap is a warning)')


def add_column_arguments(parser, labels):
    """The columns of a table; unset: the model's run's own (train_config.json), else text/label."""
    parser.add_argument('--text-column', '--text_column', dest='text_column',
                        help="column holding the sentences (default: the run's own, else 'text')")
    parser.add_argument('--text-pair-column', '--text_pair_column', dest='text_pair_column',
                        help="a pair model: column holding the second sentences (default: the run's own)")
    parser.add_argument('--sheet', help='a workbook (.xlsx, .xls): the sheet to read (needed when several sheets '
                                        'hold data; hidden sheets are read only when named)')
    if labels:
        parser.add_argument('--label-column', '--label_column', dest='label_column',
                            help="column holding the labels, named as in the model's label map (default: the "
                                 "run's own, else 'label')")
        parser.add_argument('--label-columns', '--label_columns', dest='label_columns',
                            help="multi-label: comma-separated 0/1 columns (default: the run's own)")
        parser.add_argument('--label-separator', '--label_separator', dest='label_separator',
                            help="multi-label: what separates the labels in one cell (default: the run's own, else ',')")


def add_threshold_argument(parser):
    parser.add_argument('--threshold', type=float,
                        help='multi-label: the probability above which a label is predicted (default: the one '
                             'recorded in the model)')


def table_columns(args, classifier, run):
    """The Columns of --data / --input: the flags given, else the model's run's own settings."""
    recorded = read_json(os.path.join(run, TRAIN_CONFIG_FILE)) if run else {}
    columns = Columns.of(recorded)
    given = {name: getattr(args, name, None) for name in ('text_column', 'text_pair_column', 'label_column',
                                                          'label_columns', 'label_separator')}
    columns = Columns(text=given['text_column'] or columns.text,
                      text_pair=given['text_pair_column'] or (columns.text_pair if classifier.pair else None),
                      label=given['label_column'] or columns.label or 'label',
                      label_columns=split_names(given['label_columns']) or columns.label_columns,
                      label_separator=given['label_separator'] or columns.label_separator,
                      sheet=getattr(args, 'sheet', None))
    if classifier.pair and not columns.text_pair:
        raise DataError(f'{args.model} reads sentence pairs: name the column of the second sentences with '
                        '--text_pair_column')
    if not classifier.pair and given['text_pair_column']:
        raise DataError(f'--text_pair_column {given["text_pair_column"]}: {args.model} reads single sentences, '
                        'not pairs')
    return columns


def run_evaluate(args):
    classifier = load_classifier(args)  # a run folder becomes its best/ here
    run = run_folder(args.model)
    if args.data:
        part = read_part(args.data, table_columns(args, classifier, run), classifier.task)
        source = args.data
    else:
        if run is None:
            raise DataError(f'evaluate: no --data, and {args.model} is not part of a run folder with its '
                            f'{SPLIT_FILE}; pass --data FILE')
        part = split_part(run, 'test', classifier.task)
        source = part.source
        logger.info('no --data: scoring the test split of the run %s (%d rows of %s)', run, len(part), source)
    inputs = list(zip(part.texts, part.text_pairs)) if classifier.pair else part.texts
    seen = recorded_rows(classifier) or run_rows_seen(run, classifier)
    hashes = row_hashes(part.keys(), part.labels, classifier.task.label_text)
    overlap = sum(row in seen for row in hashes) if seen else None
    if not args.data and overlap:
        # The run's own held-out rows: a text also among its training rows is one the data file repeats.
        logger.warning('%s: %d of the %d test rows of the run repeat a training or validation row (the data file '
                       'holds the same text and label more than once); they are still the run\'s held-out rows',
                       source, overlap, len(part))
    report = evaluate(in_precision(classifier, args, inputs), inputs, part.labels, args.batch_size,
                      source=source, seen=seen if args.data else None,
                      allow_overlap=getattr(args, 'allow_overlap', False), threshold=args.threshold)
    print(classifier.task.format_report(report, classifier.label_map.names))
    if args.output:
        write_json(args.output, {'model': os.path.abspath(args.model), 'data': os.path.abspath(source),
                                 'task': classifier.task.name, 'sentences': len(part),
                                 'labels': classifier.label_map.names, 'overlap_rows': overlap, **report})
        logger.info('report written to %s', args.output)


def run_folder(model_dir):
    """The run folder ``model_dir`` was saved in (RUN for RUN/best or RUN/last/model), else None."""
    parent = os.path.dirname(os.path.abspath(model_dir))
    for candidate in (parent, os.path.dirname(parent)):
        if all(os.path.isfile(os.path.join(candidate, name)) for name in (SPLIT_FILE, TRAIN_CONFIG_FILE)):
            return candidate
    return None


def split_part(run, name, task):
    """The rows of the run's ``name`` split (a :class:`~kobert_gluon.training.splits.Part`): the
    recorded rows of its data file, checked against split.json's sha256, or its separate file
    (test_data, valid_data) as is."""
    settings = read_json(os.path.join(run, TRAIN_CONFIG_FILE))
    part = read_json(os.path.join(run, SPLIT_FILE)).get(name)
    if not part:
        raise DataError(f'{os.path.join(run, SPLIT_FILE)}: no {name} split recorded')
    separate = part.get('positions') is None
    path = settings.get(f'{name}_data') if separate else (settings.get('data') or demo_data_path())
    if not path or not os.path.isfile(path):
        raise DataError(f'{os.path.join(run, TRAIN_CONFIG_FILE)} names the {name} data {path}, which is not found '
                        f'(from {os.getcwd()}); pass --data FILE')
    rows = read_part(path, Columns.of(settings), task)
    if not separate:
        positions = part['positions']
        if positions and max(positions) >= len(rows):
            raise DataError(f'{path} changed since the run {run}: it has {len(rows)} usable rows, the recorded '
                            f'{name} split needs row {max(positions) + 1}; pass --data FILE')
        rows = rows.take(positions, positions)
    if rows_digest(rows.keys(), rows.labels, task.label_text) != part.get('sha256'):
        if not separate:
            raise DataError(f'{path} changed since the run {run}: its recorded {name} rows no longer match the '
                            f'sha256 in {SPLIT_FILE}; pass --data FILE to score a file of your choice')
        logger.warning('%s changed since the run %s: its rows differ from the ones recorded', path, run)
    logger.debug('the %s split of the run %s: %d rows of %s', name, run, len(rows), path)
    return rows


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
                part = split_part(run, name, classifier.task)
                seen.update(row_hashes(part.keys(), part.labels, classifier.task.label_text))
    except DataError as error:
        logger.warning('overlap with the training rows is not checked: %s', error)
        return None
    return seen


# ---------------------------------------------------------------------------- predict

def add_predict_arguments(parser):
    add_inference_arguments(parser)
    parser.add_argument('sentences', nargs='*', default=[], metavar='SENTENCE',
                        help="sentences to score (put -- before them if one starts with '-'); "
                             'none: one per line from --input, else stdin (a pair model: two tab-separated texts '
                             'per line)')
    parser.add_argument('--text-pair', '--text_pair', dest='text_pair', action='append', metavar='TEXT',
                        help='a pair model: the second sentence of each SENTENCE (once per SENTENCE)')
    parser.add_argument('--input', help="file of sentences, one per line (UTF-8); '-' is stdin; a .tsv, .csv or "
                                        '.xlsx table: its --text_column (and --text_pair_column), and the output '
                                        'keeps every column')
    add_column_arguments(parser, labels=False)
    add_threshold_argument(parser)
    parser.add_argument('--format', choices=FORMATS,
                        help="tsv: text, the task's columns (label, prob_<label>...; score; labels, prob_<label>...) "
                             'with a header; jsonl: one JSON object a line (default: tsv; a table --input: the '
                             "--output file's suffix, else the input's format)")
    parser.add_argument('--output', help='write here instead of stdout')


def run_predict(args):
    classifier = load_classifier(args)  # before reading stdin, so a bad model fails at once
    if args.threshold is not None:
        classifier.settings_with(args.threshold)  # a bad threshold fails before any input is read
    if is_table(args.input):
        return predict_table(classifier, args)
    inputs = read_sentences(args, classifier)
    if not inputs:
        logger.warning('no sentences to score')
    records = in_precision(classifier, args, inputs).predict_records(inputs, args.batch_size, args.threshold)
    with open_output(args.output) as out:
        WRITERS[args.format or 'tsv'](out, records, classifier)


def read_sentences(args, classifier):
    """The sentences (a pair model: ``(text, text_pair)`` pairs) of the arguments, --input or stdin."""
    pairs = args.text_pair or []
    if pairs and not classifier.pair:
        raise DataError(f'--text_pair: {args.model} reads single sentences, not pairs')
    if args.sentences:
        if classifier.pair and len(pairs) != len(args.sentences):
            raise DataError(f'{args.model} reads sentence pairs: give one --text_pair per SENTENCE '
                            f'({len(args.sentences)} sentences, {len(pairs)} --text_pair)')
        return list(zip(args.sentences, pairs)) if classifier.pair else list(args.sentences)
    if pairs:
        raise DataError('--text_pair needs the first sentence of the pair as a SENTENCE argument')
    if args.input and args.input != '-':
        with open(args.input, 'rb') as source:
            lines, name = read_lines(source, args.input), args.input
    else:
        if sys.stdin.isatty():
            logger.info('reading sentences from stdin, one per line; end with Ctrl-D')
        lines, name = read_lines(sys.stdin.buffer, 'stdin'), 'stdin'
    return [split_pair(line, number, name) for number, line in enumerate(lines, 1)] if classifier.pair else lines


def split_pair(line, number, name):
    """A pair model's text line: the two sentences separated by a tab (an empty line stays blank)."""
    if not line.strip():
        return line, line
    fields = line.split('\t')
    if len(fields) != 2:
        raise DataError(f'{name}: line {number} has {len(fields)} tab-separated field(s); a pair model reads '
                        'two per line: the sentence, a tab, the second sentence')
    return fields[0], fields[1]


def cell(value):
    """One TSV cell: numbers as %.6g, None empty, text without tabs or line breaks."""
    if value is None:
        return ''
    if isinstance(value, float):
        return f'{value:.6g}'
    return str(value).translate(TSV_UNSAFE)


def write_tsv(out, records, classifier):
    """Blank inputs keep their row, with the task's cells empty."""
    task, names = classifier.task, classifier.label_map.names
    texts = ['text', 'text_pair'] if classifier.pair else ['text']
    columns = list(task.table_columns(task.blank_prediction(names), names))
    out.write('\t'.join(texts + columns) + '\n')
    for record in records:
        values = task.table_columns(record, names)
        out.write('\t'.join([cell(record[name]) for name in texts] + [cell(values[name]) for name in columns]) + '\n')


def write_jsonl(out, records, classifier):
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + '\n')


WRITERS = {'tsv': write_tsv, 'jsonl': write_jsonl}


# ---------------------------------------------------------------------------- predict on a table

def is_table(path):
    return bool(path) and path != '-' and os.path.splitext(path)[1].lower() in TABLE_FORMATS


def predict_table(classifier, args):
    """Every row and column of the table, plus the task's columns (a column of that name already
    there: ``predicted_<name>``); empty text: empty cells."""
    frame = text_data.read_frame(args.input, sheet=getattr(args, 'sheet', None))
    columns = table_columns(args, classifier, run_folder(args.model))
    for flag, column in (('--text_column', columns.text), ('--text_pair_column', columns.text_pair)):
        if column is not None and column not in frame.columns:
            raise DataError(f'{args.input}: no column {column!r}; the columns are '
                            f'{list(map(str, frame.columns))}; choose one with {flag}')
    texts = [['' if text_data.is_missing(text) else str(text) for text in frame[column]]
             for column in columns.texts()]
    inputs = list(zip(*texts)) if classifier.pair else texts[0]
    records = in_precision(classifier, args, inputs).predict_records(inputs, args.batch_size, args.threshold)
    task, names = classifier.task, classifier.label_map.names
    added = [task.table_columns(record, names) for record in records]
    for name in task.table_columns(task.blank_prediction(names), names):
        target = f'predicted_{name}' if name in frame.columns else name
        frame[target] = [values[name] for values in added]
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
