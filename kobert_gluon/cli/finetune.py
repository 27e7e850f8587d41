"""``kobert-gluon train``: fine-tune a classifier (the embedded Korean demo without --data)."""
import os

from ..train.checkpoint import TRAIN_CONFIG_FILE
from ..train.config import BERT_SIZES, DTYPES, SELECT_METRICS, TrainConfig
from ..train.distributed import ENGINES
from ..train.finetune import train
from .options import add_config_arguments, add_config_file_argument, settings_from

FIELD_CHOICES = {'bert': BERT_SIZES, 'dtype': DTYPES, 'select_metric': SELECT_METRICS, 'distributed': ENGINES}


def add_train_arguments(parser):
    parser.description = (
        'Fine-tune a BERTClassifier. Without --data it trains the embedded Korean demo set with '
        'the demo preset (a small BERT), and only the flags you give change it; defaults below '
        'show "demo:" where the preset differs.')
    add_config_file_argument(parser)
    add_config_arguments(parser, TrainConfig, FIELD_CHOICES, preset=TrainConfig.demo())


def train_config(args):
    """TrainConfig from --config and the flags given; the demo preset when there is no data.

    ``--resume`` starts from the run's own train_config.json, so it needs no other flag."""
    settings = settings_from(args, TrainConfig, TRAIN_CONFIG_FILE)
    return TrainConfig(**settings) if settings.get('data') else TrainConfig.demo(**settings)


def run_train(args):
    classifier = train(train_config(args))
    print(os.path.join(classifier.run_dir, 'best'))
