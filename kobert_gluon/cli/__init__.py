"""The ``kobert-gluon`` command: train, evaluate, predict, export.

This is the only module that prints. Expected failures (a bad file, a bad setting, a broken
model directory, a missing GPU: every KobertGluonError, plus OSError and MXNetError) end as one
``kobert-gluon: error: ...`` line on stderr and exit status 2, like argparse's own usage errors.
Anything else is a bug in this library: it says so, with exit status 3. ``--debug`` shows the
traceback instead.
"""
import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import typing

import mxnet as mx

from ..device import parse_ctx
from ..text.data import read_table, rows_digest
from ..train.distributed import ENGINES
from ..errors import ConfigError, DataError, KobertGluonError, last_line
from ..inference.export import DEFAULT_NAME, export
from ..fileio import atomic_path, read_json, write_json
from ..train.launch import LAUNCH_ENGINES, launch
from ..inference.metrics import classification_report, format_report
from ..inference.classifier import TextClassifier
from ..models.precision import PRECISIONS
from ..train.rundir import CONFIG_FILE
from ..train.finetune import BERT_SIZES, DTYPES, SELECT_METRICS, TrainConfig, check_setting, train

logger = logging.getLogger(__name__)

PROG = 'kobert-gluon'
EXIT_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
EXPECTED_ERRORS = (KobertGluonError, OSError, mx.base.MXNetError)
FIELD_CHOICES = {'bert': BERT_SIZES, 'dtype': DTYPES, 'select_metric': SELECT_METRICS, 'distributed': ENGINES}
FORMATS = ('tsv', 'jsonl')
# A tab or line break inside a sentence would shift the TSV columns; JSONL keeps the text as is.
TSV_UNSAFE = str.maketrans('\t\r\n', '   ')
LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error argparse already reported
        return exit_request.code
    debug = getattr(args, 'debug', False)
    with log_to_stderr(logging.DEBUG if debug else logging.INFO):
        try:
            return args.run(args) or 0
        except EXPECTED_ERRORS as error:
            if debug:
                raise
            print(f'{PROG}: error: {last_line(error)}', file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f'{PROG}: interrupted', file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as error:  # a bug of ours, not the user's mistake
            if debug:
                raise
            print(f'{PROG}: internal error, please report ({type(error).__name__}: {last_line(error)}); '
                  'rerun with --debug for the traceback', file=sys.stderr)
            return EXIT_INTERNAL_ERROR


@contextlib.contextmanager
def log_to_stderr(level):
    """INFO logs of the package on stderr for this command only (main() may run many times)."""
    package_logger = logging.getLogger('kobert_gluon')
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, '%H:%M:%S'))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(level)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


# ---------------------------------------------------------------------------- parser

class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every optional flag's default; required flags say so instead of 'default: None'."""

    def _get_help_string(self, action):
        text = action.help or ''
        if action.required:
            return text + ' (required)'
        if not action.option_strings or action.default in (None, argparse.SUPPRESS) or '%(default)' in text:
            return text
        return text + ' (default: %(default)s)'


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--debug', action='store_true', default=argparse.SUPPRESS,
                        help='debug logs, and a traceback instead of a one-line error')
    parser = argparse.ArgumentParser(prog=PROG, parents=[common], formatter_class=HelpFormatter,
                                     description="Fine-tune and serve KoBERT text classifiers.")
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, add_arguments, run, summary in COMMANDS:
        command = commands.add_parser(name, parents=[common], formatter_class=HelpFormatter,
                                      help=summary, description=summary)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text}: must be at least 1')
    return value


def add_inference_arguments(parser):
    parser.add_argument('--model', required=True, help='model directory (a run\'s best/ or last/model/)')
    parser.add_argument('--ctx', default='auto', help="'auto', 'cpu', 'gpu' or 'gpu:1'")
    parser.add_argument('--batch-size', '--batch_size', dest='batch_size', type=positive_int, default=64,
                        help='sentences per forward pass')
    parser.add_argument('--dtype', choices=PRECISIONS, default='float32',
                        help='bfloat16: CPU AMP (needs avx512_bf16/AMX, else float32); float16: GPU AMP; '
                             'int8: CPU quantization calibrated on --calibration')
    parser.add_argument('--calibration', metavar='FILE',
                        help='int8: sentences (one per line) to calibrate on; default: the first 512 inputs')


def load_classifier(args):
    contexts = parse_ctx(args.ctx)
    if len(contexts) > 1:
        logger.info('inference uses one device: %s', contexts[0])
    return TextClassifier.load(args.model, ctx=contexts[0])


def in_precision(classifier, args, texts):
    """The classifier in --dtype; int8 calibrates on --calibration, else on ``texts``."""
    if args.dtype == 'float32' or not (texts or args.calibration):  # nothing to compute
        return classifier
    if args.calibration:
        with open(args.calibration, 'rb') as source:
            texts = [line for line in read_lines(source, args.calibration) if line.strip()]
    return classifier.with_precision(args.dtype, texts)


# ---------------------------------------------------------------------------- train

def add_train_arguments(parser):
    parser.description = (
        'Fine-tune a BERTClassifier. Without --data it trains the embedded Korean demo set with '
        'the demo preset (a small BERT), and only the flags you give change it; defaults below '
        'show "demo:" where the preset differs.')
    parser.add_argument('--config', dest='config_file', metavar='JSON',
                        help='JSON object of the settings below (e.g. a run\'s train_config.json); '
                             'flags override it')
    add_config_arguments(parser, TrainConfig, FIELD_CHOICES, preset=TrainConfig.demo())


def add_config_arguments(parser, config_class, choices, preset=None, required=()):
    """One flag per field of the config dataclass, named as the field (``--max_len``, ``--max-len``);
    only the flags given are set (default SUPPRESS), so a preset or a config file fills the rest."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        value_type = base_type(hints[field.name])
        help_text = field_help(field, getattr(preset, field.name) if preset else field.default)
        if value_type is bool:
            add_switch(parser, field.name, help_text)
        else:
            parser.add_argument(*flag_names(field.name), dest=field.name, type=value_type,
                                choices=choices.get(field.name), default=argparse.SUPPRESS,
                                help=help_text, required=field.name in required)


def flag_names(name, prefix='--'):
    """``--max_len`` exactly as the field is named, and the usual ``--max-len``."""
    dashed = name.replace('_', '-')
    return [prefix + name] + ([prefix + dashed] if dashed != name else [])


def add_switch(parser, name, help_text):
    parser.add_argument(*flag_names(name), dest=name, action='store_true', default=argparse.SUPPRESS,
                        help=help_text)
    parser.add_argument(*flag_names(name, '--no-'), dest=name, action='store_false',
                        default=argparse.SUPPRESS, help=f'turn --{name} off')


def base_type(hint):
    """``Optional[int]`` -> ``int``; plain types pass through."""
    if typing.get_origin(hint) is typing.Union:
        non_none = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(non_none) == 1:
            return non_none[0]
    return hint if hint in (bool, int, float, str) else str


def field_help(field, demo_value):
    # Defaults are written here because SUPPRESS (only given flags override the demo preset)
    # hides them from ArgumentDefaultsHelpFormatter; argparse %-formats help, hence %%.
    text = f"{field.metadata.get('help', '')} (default: {field.default}"
    if demo_value != field.default:
        text += f'; demo: {demo_value}'
    return (text + ')').replace('%', '%%')


def train_config(args):
    """TrainConfig from --config and the flags given; the demo preset when there is no data.

    ``--resume`` starts from the run's own train_config.json, so it needs no other flag."""
    settings = read_settings(args.config_file) if args.config_file else {}
    recorded = os.path.join(getattr(args, 'output_dir', None) or '', CONFIG_FILE)
    if getattr(args, 'resume', False) and args.output_dir and os.path.isfile(recorded):
        settings.update(read_settings(recorded))
    settings.update({field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)
                     if hasattr(args, field.name)})
    return TrainConfig(**settings) if settings.get('data') else TrainConfig.demo(**settings)


def read_settings(path):
    """TrainConfig fields from a JSON object, each checked against the field's type."""
    try:
        settings = read_json(path)
    except json.JSONDecodeError as error:
        raise ConfigError(f'{path}: not valid JSON ({error})') from None
    if not isinstance(settings, dict):
        raise ConfigError(f'{path}: expected a JSON object of TrainConfig settings')
    hints = typing.get_type_hints(TrainConfig)
    unknown = sorted(set(settings) - set(hints))
    if unknown:
        raise ConfigError(f'{path}: unknown settings {unknown}; known: {sorted(hints)}')
    for name, value in settings.items():
        check_setting(name, value, hints[name], where=f'{path}: ')
    return settings


def run_train(args):
    classifier = train(train_config(args))
    print(os.path.join(classifier.run_dir, 'best'))


# ---------------------------------------------------------------------------- evaluate

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
    labels = classifier.label_map.encode(frame[args.label_column], source=args.data)
    texts = list(frame[args.text_column])
    predictions = in_precision(classifier, args, texts).logits(texts, args.batch_size).argmax(axis=1)
    report = classification_report(labels, predictions, classifier.num_classes)
    log_which_split(classifier, args.data, texts, frame[args.label_column])
    print(format_report(report, classifier.label_map.names))
    if args.output:
        write_json(args.output, {'model': os.path.abspath(args.model), 'data': os.path.abspath(args.data),
                                 'sentences': len(labels), 'labels': classifier.label_map.names, **report})
        logger.info('report written to %s', args.output)


def log_which_split(classifier, path, texts, labels):
    """Say whether ``path`` holds the model's test split, or rows it was trained or selected on."""
    split = (classifier.training or {}).get('split') or {}
    digest = rows_digest(texts, labels)
    matches = [name for name, part in split.items() if part.get('sha256') == digest]
    if 'test' in matches:
        logger.info('%s is the test split recorded with this model (%d rows)', path, len(texts))
    elif matches:
        logger.warning('%s is the %s split this model was %s on: these figures are optimistic', path, matches[0],
                       'trained' if matches[0] == 'train' else 'selected')
    elif split:
        logger.info('%s is not the test split recorded with this model (%d rows there, %d here)',
                    path, split.get('test', {}).get('rows', 0), len(texts))


# ---------------------------------------------------------------------------- predict

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


def read_lines(stream, name):
    """One sentence per line of a binary stream, decoded as UTF-8 (a BOM is dropped); empty
    lines are kept so output rows line up with input lines."""
    lines = []
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode('utf-8-sig' if number == 1 else 'utf-8')
        except UnicodeDecodeError as error:
            raise DataError(f'{name}: line {number} is not valid UTF-8 (byte 0x{raw[error.start]:02x} at '
                            f'position {error.start}); save the file as UTF-8') from None
        lines.append(line.rstrip('\r\n'))
    return lines


def utf8(stream):
    """Korean text must not depend on the locale's encoding."""
    if (stream.encoding or '').lower().replace('-', '').replace('_', '') != 'utf8' and hasattr(stream, 'reconfigure'):
        stream.reconfigure(encoding='utf-8')
    return stream


@contextlib.contextmanager
def open_output(path):
    if not path:
        yield utf8(sys.stdout)
        return
    with atomic_path(path) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='\n') as out:
            yield out
    logger.info('predictions written to %s', path)


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


# ---------------------------------------------------------------------------- export

def add_export_arguments(parser):
    parser.add_argument('--model', required=True, help='model directory to export')
    parser.add_argument('--output', required=True,
                        help='export directory (new, empty or a previous export); it receives '
                             'NAME-symbol.json, NAME-0000.params, export.json and tokenizer/')
    parser.add_argument('--name', default=DEFAULT_NAME, help='file name prefix of the graph and parameters')
    parser.add_argument('--ctx', default='cpu', help="device for the traced forward pass: 'cpu', 'gpu', ...")


def run_export(args):
    classifier = load_classifier(args)
    for role, path in export(classifier, args.output, name=args.name).items():
        print(f'{role}\t{path}')


# ---------------------------------------------------------------------------- convert

def add_convert_arguments(parser):
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument('--from-transformers', '--from_transformers', dest='from_transformers', metavar='DIR',
                           help='transformers BertModel/BertForSequenceClassification directory to convert')
    direction.add_argument('--to-transformers', '--to_transformers', dest='to_transformers', metavar='MODEL',
                           help='model directory, or a BERT params file in the bert_12_768_12 layout')
    parser.add_argument('--output', required=True,
                        help='model directory (classifier) or BERT directory to write; with --to-transformers '
                             'the transformers directory')
    parser.add_argument('--tokenizer', help='SentencePiece file (.spiece, or the v0.1 .model with --vocab-json); '
                                            'default: the one in the source, else KoBERT\'s')
    parser.add_argument('--vocab-json', '--vocab_json', dest='vocab_json', help='v0.1 vocab json for --tokenizer')
    parser.add_argument('--kobert-dir', '--kobert_dir', dest='kobert_dir', help='where KoBERT\'s files are')
    parser.add_argument('--max-len', '--max_len', dest='max_len', type=positive_int,
                        help='max_len of the converted classifier (default: recorded in DIR, else 64)')
    parser.add_argument('--num-heads', '--num_heads', dest='num_heads', type=positive_int,
                        help='attention heads of a params file (it does not record them; default 12)')


def run_convert(args):
    from ..interop import transformers as convert  # safetensors/torch/transformers only when converting

    if args.from_transformers:
        convert.from_transformers(args.from_transformers, args.output, tokenizer=args.tokenizer,
                                  vocab_json=args.vocab_json, max_len=args.max_len, kobert_dir=args.kobert_dir)
    else:
        convert.to_transformers(args.to_transformers, args.output, tokenizer=args.tokenizer,
                                vocab_json=args.vocab_json, num_heads=args.num_heads)
    print(os.path.abspath(args.output))
# ---------------------------------------------------------------------------- serve

def add_serve_arguments(parser):
    add_inference_arguments(parser)
    parser.add_argument('--max-batch', '--max_batch', dest='batch_size', metavar='N', type=positive_int,
                        default=argparse.SUPPRESS,
                        help='same as --batch_size: the most sentences merged from concurrent requests '
                             'into one forward pass')
    parser.add_argument('--max-wait-ms', '--max_wait_ms', dest='max_wait_ms', type=float, default=5.0,
                        help='how long the first request of a batch waits for others to join it')
    add_switch(parser, 'batching', 'merge concurrent requests into shared forward passes (default: on; '
                                   '--no-batching: one request per pass, the serve benchmark\'s baseline)')
    parser.add_argument('--host', default='127.0.0.1', help="address to listen on; '0.0.0.0' opens it to the network")
    parser.add_argument('--port', type=int, default=8000, help='TCP port; 0 picks a free one (logged at start)')
    parser.add_argument('--max-texts', '--max_texts', dest='max_texts', type=positive_int, default=256,
                        help='most texts in one request (more: HTTP 413)')
    parser.add_argument('--max-body-bytes', '--max_body_bytes', dest='max_body_bytes', type=positive_int,
                        default=1 << 20, help='largest request body in bytes (more: HTTP 413)')
    parser.epilog = ('int8 without --calibration calibrates on the sentences of the embedded demo set. '
                     'SIGTERM lets requests in flight finish, then exits 0.')


def run_serve(args):
    from ..serve import app as serve  # starlette and uvicorn load only here; without them: MissingExtraError

    limits = serve.Limits(args.batch_size, args.max_wait_ms, getattr(args, 'batching', True), args.max_texts,
                          args.max_body_bytes)
    classifier = in_precision(load_classifier(args), args, serve.calibration_sample())
    serve.run(classifier, args.host, args.port, limits)


# ---------------------------------------------------------------------------- pretrain

def add_pretrain_arguments(parser):
    from ..train.pretrain import SAVE_DTYPES, PretrainConfig
    from ..train.pretrain import BERT_SIZES as PRETRAIN_SIZES

    parser.description = ('Masked-LM (+ optional next-sentence) pretraining of a BERT on a text corpus, '
                          "from scratch or continuing from KoBERT's or another bert_12_768_12-layout file. "
                          'The result (OUTPUT_DIR/bert.params) feeds `train --init_from`.')
    add_config_arguments(parser, PretrainConfig, {'bert': PRETRAIN_SIZES, 'save_dtype': SAVE_DTYPES},
                         required=('corpus',))


def run_pretrain(args):
    from ..train.pretrain import PretrainConfig, pretrain

    settings = {item.name: getattr(args, item.name) for item in dataclasses.fields(PretrainConfig)
                if hasattr(args, item.name)}
    command = ' '.join([PROG] + sys.argv[1:]) if sys.argv and sys.argv[0].endswith(PROG) else None
    print(pretrain(PretrainConfig(**settings), command=command))


# ---------------------------------------------------------------------------- launch

def add_launch_arguments(parser):
    parser.description = (
        'Run a command as N workers of a distributed job on this host, e.g. '
        'kobert-gluon launch --engine dist_sync -n 2 -- kobert-gluon train --distributed dist_sync ...; '
        'a failing or killed process stops the whole job with an error naming it.')
    parser.add_argument('--engine', choices=LAUNCH_ENGINES, default='dist_sync',
                        help="dist_sync: MXNet's scheduler, servers and workers; horovod: horovodrun with Gloo")
    parser.add_argument('-n', '--num-workers', '--num_workers', dest='num_workers', type=positive_int, default=2,
                        help='worker processes')
    parser.add_argument('--servers', type=positive_int, default=1, help='dist_sync: parameter servers')
    parser.add_argument('--port', type=positive_int, help='dist_sync: scheduler port on 127.0.0.1; default: a free one')
    parser.add_argument('--timeout', type=float, help='stop the job after this many seconds; default: none')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='the worker command, after --')


def run_launch(args):
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    launch(command, args.engine, args.num_workers, args.servers, args.port, args.timeout)


COMMANDS = (
    ('train', add_train_arguments, run_train, 'fine-tune a classifier (the Korean demo without --data)'),
    ('evaluate', add_evaluate_arguments, run_evaluate, 'accuracy, macro-F1, per-class report, confusion matrix'),
    ('predict', add_predict_arguments, run_predict, 'label sentences with a trained model'),
    ('export', add_export_arguments, run_export, 'write a SymbolBlock graph + params for serving'),
    ('convert', add_convert_arguments, run_convert, 'transformers (PyTorch) BERT checkpoints <-> this library'),
    ('serve', add_serve_arguments, run_serve, 'JSON API and Korean web page, with dynamic batching'),
    ('pretrain', add_pretrain_arguments, run_pretrain, 'masked-LM pretraining of a BERT on your own Korean text'),
    ('launch', add_launch_arguments, run_launch, 'run a command as N distributed workers on this host'),
)


if __name__ == '__main__':
    sys.exit(main())
