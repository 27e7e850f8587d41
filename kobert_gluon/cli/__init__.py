"""The ``kobert-gluon`` command: train, evaluate, predict, export.

This is the only module that prints. Expected failures (a bad file, a bad setting, a broken
model directory, a missing GPU: every KobertGluonError, plus OSError and MXNetError) end as one
``kobert-gluon: error: ...`` line on stderr and exit status 2, like argparse's own usage errors.
Anything else is a bug in this library: it says so, with exit status 3. ``--debug`` shows the
traceback instead.
"""
import argparse
import contextlib
import logging
import sys

import mxnet as mx

from ..errors import KobertGluonError, last_line
from . import finetune, predict, pretrain, tools

logger = logging.getLogger(__name__)

PROG = pretrain.PROG
EXIT_ERROR = 2
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
EXPECTED_ERRORS = (KobertGluonError, OSError, mx.base.MXNetError)
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


# ---------------------------------------------------------------------------- train


# ---------------------------------------------------------------------------- evaluate


# ---------------------------------------------------------------------------- predict


# ---------------------------------------------------------------------------- export


# ---------------------------------------------------------------------------- convert


# ---------------------------------------------------------------------------- serve


# ---------------------------------------------------------------------------- pretrain


# ---------------------------------------------------------------------------- launch


COMMANDS = (
    ('train', finetune.add_train_arguments, finetune.run_train,
     'fine-tune a classifier (the Korean demo without --data)'),
    ('evaluate', predict.add_evaluate_arguments, predict.run_evaluate,
     'accuracy, macro-F1, per-class report, confusion matrix'),
    ('predict', predict.add_predict_arguments, predict.run_predict, 'label sentences with a trained model'),
    ('export', tools.add_export_arguments, tools.run_export, 'write a SymbolBlock graph + params for serving'),
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
