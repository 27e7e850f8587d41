"""The ``kobert-gluon`` command: train, evaluate, predict, export.

This is the only module that prints. Expected failures (a bad file, a bad setting, a broken
model directory, a missing GPU: every KobertGluonError, plus OSError and MXNetError) end as one
``kobert-gluon: error: ...`` line on stderr and exit status 2, like argparse's own usage errors.
Anything else is a bug in this library: it says so, with exit status 3. ``--debug`` shows the
traceback instead.

``kobert-gluon`` alone lists the commands with a line each (on stderr, exit status 2: no command
was given); ``--version`` prints ``kobert-gluon <version>``. An unknown flag is one line naming
the closest flag of that command, or the flag a Hugging Face Trainer name stands for.
"""
import argparse
import contextlib
import difflib
import logging
import sys

import mxnet as mx

from .._version import __version__
from ..errors import KobertGluonError, last_line
from . import finetune, predict, pretrain, tools

logger = logging.getLogger(__name__)

PROG = pretrain.PROG
EXIT_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = pretrain.EXIT_INTERRUPTED
EXPECTED_ERRORS = (KobertGluonError, OSError, mx.base.MXNetError)
LOG_FORMAT = '%(asctime)s %(levelname)s %(name)s: %(message)s'


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    parser = build_parser()
    if not argv:
        print(command_list(), file=sys.stderr)
        return EXIT_ERROR
    argv, unknown = check_flags(parser, argv)
    if unknown:
        print(f'{PROG}: error: {unknown}', file=sys.stderr)
        return EXIT_ERROR
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version, or a usage error argparse already reported
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
    parser.add_argument('--version', action='version', version=f'{PROG} {__version__}')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, add_arguments, run, summary in COMMANDS:
        command = commands.add_parser(name, parents=[common], formatter_class=HelpFormatter,
                                      help=summary, description=summary)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def command_list():
    """What a bare ``kobert-gluon`` says: the commands, a line each, and where to go next."""
    width = max(len(name) for name, *_ in COMMANDS)
    lines = [f'usage: {PROG} [--version] [--debug] COMMAND [flags]', '', 'commands:']
    lines += [f'  {name:<{width}}  {summary}' for name, _, _, summary in COMMANDS]
    lines += ['', f"'{PROG} COMMAND --help' lists a command's flags; '{PROG} train' alone trains the Korean demo."]
    return '\n'.join(lines)


# ---------------------------------------------------------------------------- unknown flags

# Hugging Face Trainer (and run_glue.py) flags -> ours, for people who come from transformers.
# A value of None: the flag has no counterpart here; the text after it says why.
TRAINER_FLAGS = {
    'num_train_epochs': '--num_epochs', 'epochs': '--num_epochs',
    'per_device_train_batch_size': '--batch_size', 'train_batch_size': '--batch_size',
    'per_device_eval_batch_size': '--batch_size', 'eval_batch_size': '--batch_size',
    'lr': '--learning_rate', 'model_name_or_path': '--init_from', 'model_name': '--init_from',
    'max_seq_length': '--max_len', 'max_length': '--max_len', 'logging_steps': '--log_interval',
    'save_steps': '--save_every', 'gradient_accumulation_steps': '--accumulate', 'adam_epsilon': '--epsilon',
    'overwrite_output_dir': '--overwrite', 'resume_from_checkpoint': '--resume', 'fp16': '--dtype float16',
    'bf16': '--dtype bfloat16', 'no_cuda': '--ctx cpu', 'use_cpu': '--ctx cpu', 'train_file': '--data',
    'validation_file': '--valid_data', 'test_file': '--test_data', 'text_column_name': '--text_column',
    'label_column_name': '--label_column', 'metric_for_best_model': '--select_metric',
    'early_stopping_patience': '--early_stopping', 'hidden_dropout_prob': '--dropout',
    'warmup_steps': '--warmup_ratio (a share of the steps, not a count)',
    'do_train': (None, "not needed: 'kobert-gluon train' trains, then tests best/ on the test split"),
    'do_eval': (None, "not needed: training validates every epoch; 'kobert-gluon evaluate' scores a model"),
    'do_predict': (None, "not needed: use 'kobert-gluon predict' on the trained model"),
}


# Abbreviations that meant one flag before 0.8 added its neighbours (--text_pair_column, --text_pair,
# --label_columns, --label_separator): they keep meaning it.
PREFERRED_ABBREVIATIONS = {'--text': '--text_column', '--label': '--label_column'}


def check_flags(parser, argv):
    """(argv with each abbreviated flag spelled out, None), or (argv, one line for the first
    ``--flag`` the command does not know, with what was probably meant). argparse itself would
    call ``--text`` ambiguous between ``--text_column`` and ``--text-column``: it is one flag."""
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    command = next((token for token in argv if not token.startswith('-')), None)
    if command not in commands.choices:
        return argv, None
    flags = {name: action for name, action in commands.choices[command]._option_string_actions.items()
             if name.startswith('--')}
    argv = list(argv)
    for position in range(argv.index(command) + 1, len(argv)):
        flag, equals, value = argv[position].partition('=')
        if flag == '--':
            break
        if not flag.startswith('--') or flag in flags:
            continue
        matches = {}
        for name, action in flags.items():  # one name per flag: the first, --max_len before --max-len
            if name.startswith(flag):
                matches.setdefault(id(action), name)
        preferred = id(flags.get(PREFERRED_ABBREVIATIONS.get(flag)))
        if len(matches) > 1 and preferred in matches:
            matches = {preferred: matches[preferred]}
        if len(matches) == 1:
            argv[position] = next(iter(matches.values())) + equals + value
        elif matches:
            return argv, f'{command}: ambiguous flag {flag}: {" or ".join(sorted(matches.values()))}?'
        else:
            return argv, f'{command}: unknown flag {flag}; {suggestion(flag, list(flags), command)}'
    return argv, None


def suggestion(flag, known, command):
    alias = TRAINER_FLAGS.get(flag[2:].replace('-', '_'))
    if isinstance(alias, tuple):
        return alias[1]
    if alias and alias.split()[0] in known:
        return f'did you mean {alias}? (the Hugging Face Trainer name of it)'
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    if close:
        return f'did you mean {close[0]}?'
    return f"'{PROG} {command} --help' lists its flags"


COMMANDS = (
    ('train', finetune.add_train_arguments, finetune.run_train,
     'fine-tune a classifier (the Korean demo without --data)'),
    ('evaluate', predict.add_evaluate_arguments, predict.run_evaluate,
     'accuracy, macro-F1, per-class report, confusion matrix'),
    ('predict', predict.add_predict_arguments, predict.run_predict, 'label sentences with a trained model'),
    ('export', tools.add_export_arguments, tools.run_export, 'write an MXNet SymbolBlock or an ONNX file for serving'),
    ('convert', tools.add_convert_arguments, tools.run_convert,
     'transformers (PyTorch) BERT checkpoints <-> this library'),
    ('serve', tools.add_serve_arguments, tools.run_serve, 'JSON API and Korean web page, with dynamic batching'),
    ('pretrain', pretrain.add_pretrain_arguments, pretrain.run_pretrain,
     'masked-LM pretraining of a BERT on your own Korean text'),
    ('launch', pretrain.add_launch_arguments, pretrain.run_launch,
     'run a command as N distributed workers on this host'),
)


if __name__ == '__main__':
    sys.exit(main())
