"""``kobert-gluon train``: fine-tune a classifier (the embedded Korean demo without --data)."""
import os

from ..training.checkpoint import TRAIN_CONFIG_FILE
from ..training.config import SIZE_DEFAULTS, TrainConfig, choices_of
from ..training.finetune import train
from ..training.interrupt import TrainingInterrupted
from .options import add_config_arguments, add_config_file_argument, settings_from
from .pretrain import report_interrupted


def add_train_arguments(parser):
    parser.description = (
        'Fine-tune a BERTClassifier. Without --data it trains the embedded Korean demo set with a '
        'small BERT. Each --bert size has its own recipe defaults (learning rate, batch size, epochs, '
        'log interval), shown below as "small: X; kobert: Y"; the flags you give override them.')
    add_config_file_argument(parser)
    add_config_arguments(parser, TrainConfig, choices_of(TrainConfig))
    fields = {field.name: field for field in TrainConfig.__dataclass_fields__.values()}
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        if action.dest in SIZE_DEFAULTS['small']:
            sizes = '; '.join(f'{size}: {values[action.dest]}' for size, values in SIZE_DEFAULTS.items())
            action.help = f"{fields[action.dest].metadata['help']} (default per --bert size, {sizes})"


def train_config(args):
    """TrainConfig from --config and the flags given, every setting left unset taking the
    default of its --bert size: the settings kobert_gluon.train(TrainConfig(...)) runs with.

    ``--resume`` starts from the run's own train_config.json, so it needs no other flag."""
    return TrainConfig(**settings_from(args, TrainConfig, TRAIN_CONFIG_FILE)).resolved()


def run_train(args):
    try:
        classifier = train(train_config(args))
    except TrainingInterrupted as interrupted:
        return report_interrupted(interrupted)
    print(os.path.join(classifier.run_dir, 'best'))
