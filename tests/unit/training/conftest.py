"""Fixtures shared by the pretraining tests (MLM and ELECTRA): a small corpus of NSMC reviews and
KoBERT's SentencePiece model."""
import pandas as pd
import pytest


@pytest.fixture(scope='module')
def nsmc_lines(shared_dir):
    frame = pd.read_csv(shared_dir / 'data' / 'nsmc' / 'ratings_train_small.txt', sep='\t', quoting=3,
                        keep_default_na=False, dtype=str)
    return [' '.join(text.split()) for text in frame['document'][:400] if text.strip()]


@pytest.fixture(scope='module')
def corpus_file(nsmc_lines, tmp_path_factory):
    path = tmp_path_factory.mktemp('corpus') / 'reviews.txt'
    path.write_text('\n'.join(nsmc_lines) + '\n', encoding='utf-8')
    return path


@pytest.fixture(scope='module')
def kobert_spiece(kobert_dir):
    return str(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
