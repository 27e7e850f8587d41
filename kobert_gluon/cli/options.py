"""Flags shared by the commands: one flag per config dataclass field, settings files, the
inference flags, and reading/writing text the way every command does."""
import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import os
import sys
import typing

from ..device import parse_ctx
from ..errors import ConfigError, DataError
from ..fileio import atomic_path, read_json
from ..inference.classifier import CALIBRATION_SENTENCES, TextClassifier
from ..inference.model_dir import MODEL_CONFIG_FILE
from ..models.precision import PRECISIONS
from ..training.config import check_setting

logger = logging.getLogger(__name__)


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text}: must be at least 1')
    return value


BEST_MODEL = 'best'  # the model a run folder stands for: train's selected model
# One text for int8's calibration, true for every command (serve replaces the inputs' sample).
CALIBRATION_HELP = (f'int8: a file of sentences (one per line, UTF-8) to calibrate on, its first '
                    f'{CALIBRATION_SENTENCES} non-empty lines; default: predict and evaluate calibrate on the '
                    f'first {CALIBRATION_SENTENCES} sentences they score, serve on the first '
                    f'{CALIBRATION_SENTENCES} sentences of the embedded demo set')
MODEL_HELP = "model directory (a run's best/ or last/model/), or a run folder: its best/"


def add_inference_arguments(parser):
    parser.add_argument('--model', required=True, help=MODEL_HELP)
    parser.add_argument('--ctx', default='auto', help="'auto', 'cpu', 'gpu' or 'gpu:1'")
    parser.add_argument('--batch-size', '--batch_size', dest='batch_size', type=positive_int, default=64,
                        help='sentences per forward pass')
    parser.add_argument('--dtype', choices=PRECISIONS, default='float32',
                        help='bfloat16: CPU AMP (needs avx512_bf16/AMX, else float32); float16: GPU AMP; '
                             'int8: CPU quantization calibrated on --calibration')
    parser.add_argument('--calibration', metavar='FILE', help=CALIBRATION_HELP)


def model_directory(path):
    """``path``, or the best/ model of the run folder ``path`` (train's --output_dir)."""
    path = os.fspath(path)
    best = os.path.join(path, BEST_MODEL)
    if not os.path.isfile(os.path.join(path, MODEL_CONFIG_FILE)) and os.path.isfile(os.path.join(best, MODEL_CONFIG_FILE)):
        logger.info('%s is a run folder: using its selected model %s', path, best)
        return best
    return path


def load_classifier(args):
    """The model of --model (a run folder resolves to its best/; args.model then names it) on --ctx."""
    contexts = parse_ctx(args.ctx)
    if len(contexts) > 1:
        logger.info('inference uses one device: %s', contexts[0])
    args.model = model_directory(args.model)
    return TextClassifier.load(args.model, ctx=contexts[0])


def _first_text(item):
    return item[0] if isinstance(item, tuple) else item


def in_precision(classifier, args, texts):
    """The classifier in --dtype; int8 calibrates on --calibration, else on ``texts`` (the first
    CALIBRATION_SENTENCES non-empty ones, see CALIBRATION_HELP; a pair model's are pairs, and a
    --calibration line holds a pair as two tab-separated texts)."""
    texts = [text for text in texts if _first_text(text).strip()]
    if args.dtype == 'float32' or not (texts or args.calibration):  # nothing to compute
        return classifier
    if args.calibration:
        with open(args.calibration, 'rb') as source:
            texts = [line for line in read_lines(source, args.calibration) if line.strip()]
        if classifier.pair:
            texts = [tuple((line.split('\t') + [line])[:2]) for line in texts]
    converted = classifier.with_precision(args.dtype, texts)
    # A Gluon block sits in a reference cycle: without a collection the float32 weights would stay
    # in memory beside the converted ones until Python's cyclic collector happens to run.
    classifier.model = None
    gc.collect()
    return converted


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


def read_settings(path, config_class):
    """Fields of ``config_class`` from a JSON object, each checked against the field's type."""
    try:
        settings = read_json(path)
    except json.JSONDecodeError as error:
        raise ConfigError(f'{path}: not valid JSON ({error})') from None
    if not isinstance(settings, dict):
        raise ConfigError(f'{path}: expected a JSON object of {config_class.__name__} settings')
    hints = typing.get_type_hints(config_class)
    unknown = sorted(set(settings) - set(hints))
    if unknown:
        raise ConfigError(f'{path}: unknown settings {unknown}; known: {sorted(hints)}')
    for name, value in settings.items():
        check_setting(name, value, hints[name], where=f'{path}: ')
    return settings


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


def add_config_file_argument(parser):
    parser.add_argument('--config', dest='config_file', metavar='JSON',
                        help="JSON object of the settings below (e.g. a run's recorded settings); flags override it")


def settings_from(args, config_class, recorded_name):
    """Settings of ``config_class``: --config, then on --resume the run's own recorded settings
    (``output_dir/recorded_name``, so a resume needs no other flag), then the flags given."""
    settings = read_settings(args.config_file, config_class) if getattr(args, 'config_file', None) else {}
    output_dir = settings.get('output_dir') if getattr(args, 'output_dir', None) is None else args.output_dir
    recorded = os.path.join(output_dir or '', recorded_name)
    if getattr(args, 'resume', False) and output_dir and os.path.isfile(recorded):
        settings.update(read_settings(recorded, config_class))
    settings.update({field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)
                     if hasattr(args, field.name)})
    return settings
