"""BERTDataset's contract and the readers that feed it."""
import gluonnlp as nlp
import numpy as np
import pandas as pd
import pytest

from kobert_gluon.text.data import BERTDataset, LabelMap, read_table, stratified_split

from kobert_gluon.errors import DataError
from kobert_gluon.text.tokenizer import load_tokenizer

EMOTIONS = ['공포', '놀람', '분노', '슬픔', '중립', '행복', '혐오']


@pytest.fixture(scope='module')
def tokenizer(kobert_dir):
    return load_tokenizer(kobert_dir=str(kobert_dir))[0]


def reference_transform(tokenizer, max_len, pad, pair):
    return nlp.data.BERTSentenceTransform(tokenizer, max_seq_length=max_len, pad=pad, pair=pair)


def test_items_are_int32_arrays_in_notebook_order(tokenizer):
    rows = [['좋은 영화였다', 1], ['별로였다', '0']]
    item = BERTDataset(rows, 0, 1, tokenizer, 16, True, False)[1]
    token_ids, valid_length, segment_ids, label = item
    expected = reference_transform(tokenizer, 16, True, False)(['별로였다'])
    for got, want in zip(item[:3], expected):
        np.testing.assert_array_equal(got, want)
    assert token_ids.shape == (16,) and valid_length.shape == () and segment_ids.shape == (16,)
    assert {a.dtype for a in item} == {np.dtype('int32')} and int(label) == 0


def test_dataframe_by_column_name_equals_list_of_rows(tokenizer):
    frame = pd.DataFrame({'id': [7, 8], 'document': ['재밌어요', '지루함'], 'label': [1, 0]})
    by_name = BERTDataset(frame, 'document', 'label', tokenizer, 12, True, False)
    by_rows = BERTDataset(frame.values.tolist(), 1, 2, tokenizer, 12, True, False)
    for a, b in zip(by_name, by_rows):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_pair_uses_two_columns_and_segment_ids(tokenizer):
    rows = [['질문입니다', '대답입니다', 1]]
    token_ids, valid_length, segment_ids, _ = BERTDataset(rows, (0, 1), 2, tokenizer, 20, True, True)[0]
    expected = reference_transform(tokenizer, 20, True, True)(['질문입니다', '대답입니다'])
    np.testing.assert_array_equal(token_ids, expected[0])
    np.testing.assert_array_equal(segment_ids, expected[2])
    assert segment_ids.max() == 1 and (token_ids == 3).sum() == 2


def test_unpadded_items_have_their_own_length(tokenizer):
    token_ids, valid_length, _, _ = BERTDataset([['짧다', 0]], 0, 1, tokenizer, 64, False, False)[0]
    assert len(token_ids) == int(valid_length) < 64


@pytest.mark.parametrize('rows, sent_idx, label_idx, error, match', [
    ([['문장', 1]], 3, 1, DataError, 'column 3'),
    ([['문장', 1]], 0, 2, DataError, 'column 2'),
    ([['문장', 1], [float('nan'), 0]], 0, 1, DataError, 'row 1, column 0: sentence is float'),
    ([['문장', '행복']], 0, 1, DataError, "row 0, column 1: label '행복' is not an integer"),
    ([['문장', 1.5]], 0, 1, DataError, 'label 1.5 is not an integer'),
])
def test_bad_rows_get_errors_naming_them(tokenizer, rows, sent_idx, label_idx, error, match):
    with pytest.raises(error, match=match):
        BERTDataset(rows, sent_idx, label_idx, tokenizer, 16, True, False)


def test_max_len_over_512_is_rejected(tokenizer):
    with pytest.raises(ValueError, match='max_len=600'):
        BERTDataset([['문장', 0]], 0, 1, tokenizer, 600, True, False)


def test_label_map_sorts_names_and_numbers():
    assert LabelMap.from_values(['행복', '공포', '혐오', '중립', '분노', '놀람', '슬픔']).names == EMOTIONS
    assert LabelMap.from_values(['10', '2', '0']).names == ['0', '2', '10']
    with pytest.raises(DataError, match="unknown label '기쁨'"):
        LabelMap(EMOTIONS).encode(['행복', '기쁨'])


def test_label_map_round_trips_through_json(tmp_path):
    LabelMap(EMOTIONS).save(tmp_path / 'labels.json')
    assert LabelMap.load(tmp_path / 'labels.json').names == EMOTIONS


def test_emotion_csv_is_read_as_cp949_and_xlsx_agrees(shared_dir):
    folder = shared_dir / 'data' / 'emotion'
    csv = read_table(folder / 'single_turn_emotion_cp949.csv', 'Sentence', 'Emotion')
    xlsx = read_table(folder / 'single_turn_emotion.xlsx', 'Sentence', 'Emotion')
    assert len(csv) == len(xlsx) == 38594
    assert list(csv.columns) == ['Sentence', 'Emotion']
    assert (csv['Sentence'] == xlsx['Sentence']).all()
    assert csv['Emotion'].value_counts()['행복'] == 6037


def test_nsmc_tsv_drops_empty_documents(shared_dir, caplog):
    path = shared_dir / 'data' / 'nsmc' / 'ratings_train_small.txt'
    raw = pd.read_csv(path, sep='\t', quoting=3, keep_default_na=False)
    empty = int((raw['document'].str.strip() == '').sum())
    frame = read_table(path, 'document', 'label')
    assert empty > 0 and len(frame) == len(raw) - empty
    assert f'dropped {empty} of {len(raw)} rows' in caplog.text


def test_utf8_and_utf8_sig_csv(tmp_path):
    for encoding in ('utf-8', 'utf-8-sig', 'euc-kr'):
        path = tmp_path / f'{encoding}.csv'
        pd.DataFrame({'text': ['안녕하세요', '반갑습니다'], 'label': ['a', 'b']}).to_csv(path, index=False, encoding=encoding)
        assert read_table(path, 'text', 'label')['text'].tolist() == ['안녕하세요', '반갑습니다']


def test_missing_column_names_the_file_and_columns(tmp_path):
    path = tmp_path / 'd.tsv'
    path.write_text('document\tlabel\n좋다\t1\n', encoding='utf-8')
    with pytest.raises(DataError, match=r"d.tsv: no column 'text'; the columns are \['document', 'label'\]"):
        read_table(path, 'text', 'label')


def test_undecodable_file_is_named(tmp_path):
    path = tmp_path / 'binary.csv'
    path.write_bytes(b'text,label\n\xff\xfe\xfa\x80\x81,1\n' * 3)
    with pytest.raises(DataError, match='binary.csv: cannot decode'):
        read_table(path, 'text', 'label')


def test_file_without_usable_rows_is_named(tmp_path):
    path = tmp_path / 'empty.tsv'
    path.write_text('text\tlabel\n \t1\n\t0\n', encoding='utf-8')
    with pytest.raises(DataError, match='empty.tsv: no usable rows'):
        read_table(path, 'text', 'label')


def test_stratified_split_is_seeded_and_keeps_shares():
    frame = pd.DataFrame({'text': [f's{i}' for i in range(100)], 'label': ['a'] * 70 + ['b'] * 30})
    train, test = stratified_split(frame, 'label', 0.2, seed=3)
    again_train, _ = stratified_split(frame, 'label', 0.2, seed=3)
    assert test['label'].value_counts().to_dict() == {'a': 14, 'b': 6}
    assert len(train) == 80 and set(train['text']).isdisjoint(test['text'])
    assert train['text'].tolist() == again_train['text'].tolist()
    assert stratified_split(frame, 'label', 0.2, seed=4)[1]['text'].tolist() != test['text'].tolist()
