"""Sentence pairs as the notebooks' gluonnlp 0.10 encodes them: BERTDataset(pair=True), the
training pipeline and prediction give BERTSentenceTransform(tokenizer, max_len, pad=True,
pair=True)'s arrays on every shared KorNLI and KorSTS pair, and so does the gluonnlp-free
re-implementation (TokenIds) written independently of gluonnlp's code."""
import gluonnlp as nlp
import numpy as np
import pytest

from kobert_gluon.tasks.inputs import Example, SentenceEncoder, encode_examples
from kobert_gluon.text.data import BERTDataset, read_frame
from kobert_gluon.text.token_ids import TokenIds
from kobert_gluon.text.tokenizer import get_bert_tokenizer, get_vocab

PAIR_FILES = [('kornli', 'xnli.dev.ko.tsv'), ('kornli', 'xnli.test.ko.tsv'), ('korsts', 'sts-train.tsv'),
              ('korsts', 'sts-dev.tsv'), ('korsts', 'sts-test.tsv')]


@pytest.fixture(scope='module')
def shared_pairs(shared_dir):
    pairs = []
    for folder, name in PAIR_FILES:
        frame = read_frame(shared_dir / 'data' / folder / name)
        pairs += list(zip(frame['sentence1'], frame['sentence2']))
    assert len(pairs) == 2490 + 5010 + 5749 + 1500 + 1379
    return pairs


@pytest.fixture(scope='module')
def kobert_tokenizer(kobert_dir):
    spiece = str(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
    vocab = get_vocab(spiece)
    return get_bert_tokenizer(spiece, vocab), spiece


@pytest.mark.parametrize('max_len', [64, 16])
def test_every_shared_pair_gives_gluonnlps_arrays(shared_pairs, kobert_tokenizer, max_len):
    tokenizer, spiece = kobert_tokenizer
    reference = nlp.data.BERTSentenceTransform(tokenizer, max_seq_length=max_len, pad=True, pair=True)
    dataset = BERTDataset([[a, b, 0] for a, b in shared_pairs], [0, 1], 2, tokenizer, max_len, True, True)
    training = encode_examples([Example(a, b, 0) for a, b in shared_pairs], tokenizer, max_len, True, True)
    unpadded = SentenceEncoder(tokenizer, max_len, pad=False, pair=True)
    independent = TokenIds(spiece, tokenizer.vocab.idx_to_token)
    cut = 0
    for i, (a, b) in enumerate(shared_pairs):
        token_ids, valid_length, segment_ids = reference([a, b])
        for got in (dataset[i][:3], training[i][:3]):
            np.testing.assert_array_equal(got[0], token_ids)
            assert int(got[1]) == int(valid_length)
            np.testing.assert_array_equal(got[2], segment_ids)
        encoded = unpadded(a, b)
        np.testing.assert_array_equal(encoded.token_ids, token_ids[:valid_length])
        np.testing.assert_array_equal(encoded.segment_ids, segment_ids[:valid_length])
        ids, segments = independent.encode(a, max_len, b)
        assert ids == token_ids[:valid_length].tolist() and segments == segment_ids[:valid_length].tolist()
        cut += len(tokenizer(a)) + len(tokenizer(b)) > max_len - 3
    # the truncation rule was exercised on many pairs: at 16 nearly all, at 64 some
    assert cut > (0.9 if max_len == 16 else 0.001) * len(shared_pairs)


def test_the_layout_and_truncation_of_a_pair(kobert_tokenizer):
    tokenizer, _ = kobert_tokenizer
    vocab = tokenizer.vocab
    first, second = '하나 둘 셋 넷 다섯 여섯 일곱', '가 나'
    pieces_a, pieces_b = tokenizer(first), tokenizer(second)
    encoded = SentenceEncoder(tokenizer, 10, pair=True)(first, second)
    # [CLS] A [SEP] B [SEP]: segment 0 up to the first [SEP], 1 after it; the longer side lost its end
    keep = 10 - 3 - len(pieces_b)
    assert encoded.token_ids.tolist() == vocab[['[CLS]'] + pieces_a[:keep] + ['[SEP]'] + pieces_b + ['[SEP]']]
    assert encoded.segment_ids.tolist() == [0] * (keep + 2) + [1] * (len(pieces_b) + 1)
    # both long: the first keeps the odd piece (gluonnlp pops the second on a tie)
    long_a, long_b = '가 ' * 20, '나 ' * 20
    encoded = SentenceEncoder(tokenizer, 12, pair=True)(long_a, long_b)  # 9 pieces to share
    assert encoded.segment_ids.tolist() == [0] * (5 + 2) + [1] * (4 + 1)
