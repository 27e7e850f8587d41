"""BertConfig: the size of a BERT. Imports nothing heavy, so the benchmark's parent process and
the ``kobert`` alias can use it without mxnet."""
import dataclasses

KOBERT_VOCAB_SIZE = 8002  # = tokenizer.KOBERT_VOCAB_SIZE: KoBERT's 8,000 pieces + [PAD], [MASK] ids

MAX_POSITIONS = 512


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
