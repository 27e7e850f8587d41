"""BertConfig: the size of a BERT. Imports nothing heavy, so the benchmark's parent process and
the ``kobert`` alias can use it without mxnet."""
import dataclasses

from ..errors import ConfigError

from ..text.vocab import KOBERT_VOCAB_SIZE, MAX_POSITIONS


@dataclasses.dataclass
class BertConfig:
    """Size of a BERT; the defaults are KoBERT's (= gluonnlp's bert_12_768_12)."""
    num_layers: int = 12
    units: int = 768
    hidden_size: int = 3072
    num_heads: int = 12
    max_length: int = MAX_POSITIONS
    dropout: float = 0.1
    vocab_size: int = KOBERT_VOCAB_SIZE
    token_type_vocab_size: int = 2

    def __post_init__(self):
        if self.units % self.num_heads:
            raise ValueError(f'units={self.units} must be divisible by num_heads={self.num_heads}')
        if self.max_length > MAX_POSITIONS:
            raise ValueError(f'max_length={self.max_length}: at most {MAX_POSITIONS}')

    @classmethod
    def kobert(cls, **overrides):
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides):
        """A 2-layer, 128-unit BERT that trains in minutes on two CPU cores."""
        return cls(**{'num_layers': 2, 'units': 128, 'hidden_size': 512, 'num_heads': 2,
                      'max_length': 128, **overrides})

    def to_dict(self):
        return dataclasses.asdict(self)


def bert_config_for(size, vocab_size, max_len=None, **overrides):
    """The BertConfig of a named size ('kobert' or 'small') for a tokenizer of ``vocab_size``
    pieces, with ``overrides`` (None values ignored); ConfigError for an impossible size or a
    ``max_len`` beyond the position table."""
    base = BertConfig.kobert() if size == 'kobert' else BertConfig.small()
    overrides = {name: value for name, value in overrides.items() if value is not None}
    try:
        config = dataclasses.replace(base, vocab_size=vocab_size, **overrides)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if max_len is not None and max_len > config.max_length:
        raise ConfigError(f'max_len={max_len}: the model has {config.max_length} positions')
    return config
