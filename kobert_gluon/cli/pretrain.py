"""``kobert-gluon pretrain`` (masked-LM pretraining) and ``kobert-gluon launch`` (N workers)."""
import argparse
import sys

from ..training.interrupt import TrainingInterrupted
from ..training.launch import LAUNCH_ENGINES, launch
from ..training.checkpoint import PRETRAIN_CONFIG_FILE
from ..training.config import PRETRAIN_SIZES, SAVE_DTYPES, PretrainConfig
from .options import add_config_arguments, add_config_file_argument, positive_int, settings_from

PROG = 'kobert-gluon'
EXIT_INTERRUPTED = 130  # as a shell reports a Ctrl-C


def report_interrupted(interrupted):
    """What a training command stopped by Ctrl-C or SIGTERM saved and how to continue; its exit code."""
    print(f'{PROG}: interrupted: {interrupted.saved}', file=sys.stderr)
    print(f'{PROG}: to continue: {interrupted.command}', file=sys.stderr)
    return EXIT_INTERRUPTED


def add_pretrain_arguments(parser):
    parser.description = ('Masked-LM or ELECTRA (--objective electra) pretraining of a BERT on a text corpus, '
                          '+ optional next-sentence or sentence-order prediction, '
                          "from scratch or continuing from KoBERT's or another bert_12_768_12-layout file. "
                          'The result (OUTPUT_DIR/bert.params) feeds `train --init_from`.')
    add_config_file_argument(parser)
    add_config_arguments(parser, PretrainConfig, {'bert': PRETRAIN_SIZES, 'save_dtype': SAVE_DTYPES})


def run_pretrain(args):
    from ..training.pretrain import pretrain  # mxnet loads only when the command runs

    settings = settings_from(args, PretrainConfig, PRETRAIN_CONFIG_FILE)
    command = ' '.join([PROG] + sys.argv[1:]) if sys.argv and sys.argv[0].endswith(PROG) else None
    try:
        print(pretrain(PretrainConfig(**settings), command=command))
    except TrainingInterrupted as interrupted:
        return report_interrupted(interrupted)


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
