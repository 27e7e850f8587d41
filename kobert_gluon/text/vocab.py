"""What a KoBERT input can be: the special tokens, the vocabulary and position-table sizes, and
the folder name tokenizer files travel under. Imports nothing, so every layer may use it."""

SPECIAL_TOKENS = ('[UNK]', '[PAD]', '[CLS]', '[SEP]', '[MASK]')  # ids 0-4, as in KoBERT
KOBERT_VOCAB_SIZE = 8002  # KoBERT's 8,000 SentencePiece pieces + [PAD] and [MASK]
MAX_POSITIONS = 512  # BERT's position table; KoBERT has exactly this many
MIN_MAX_LEN = 3  # [CLS] + one piece + [SEP]
TOKENIZER_DIR = 'tokenizer'  # the tokenizer's folder in a model directory, pretraining result or converted folder
