"""The pretraining corpus reader: compressed files, lists and folders of files, resumable
positions across files, over-long lines read in bounded memory, errors that name the file."""
import bz2
import gzip
import hashlib
import logging
import lzma
import os
import subprocess
import sys

import numpy as np
import pytest

from kobert_gluon.errors import DataError
from kobert_gluon.text import corpus
from kobert_gluon.text.corpus import Position, read_chunks
from hangguard import hang_guard

OPENERS = {'xz': lzma.open, 'gz': gzip.open, 'bz2': bz2.open}
SYLLABLES = '가나다라마바사아자차카타파하는을를이에서고한국어문장'


def sentences(count, seed=0):
    """Korean-ish lines, some of them blank or only spaces (which are no units)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.12:
            lines.append('' if draw < 0.09 else '   ')
        else:
            words = [''.join(rng.choice(list(SYLLABLES), rng.integers(1, 5))) for _ in range(rng.integers(1, 12))]
            lines.append(' '.join(words) + ('.' if draw < 0.5 else ''))
    return lines


def write(path, text, kind=None):
    data = text.encode('utf-8') if isinstance(text, str) else text
    with (OPENERS[kind] if kind else open)(str(path), 'wb') as out:
        out.write(data)
    return str(path)


def units_of(source, chunk_lines=7, rank=0, num_workers=1, documents=False, start=None):
    return [u for chunk in read_chunks(source, chunk_lines, rank, num_workers, documents, start) for u in chunk.units]


def assert_every_chunk_restarts_exactly(source, chunk_lines, rank, num_workers, documents):
    chunks = list(read_chunks(source, chunk_lines, rank, num_workers, documents))
    for index, chunk in enumerate(chunks):
        again = list(read_chunks(source, chunk_lines, rank, num_workers, documents, start=chunk.start))
        assert [(c.start, c.units) for c in again] == [(c.start, c.units) for c in chunks[index:]], chunk.start
    return chunks


@pytest.fixture(scope='module')
def text():
    return '\n'.join(sentences(600)) + '\n'


@pytest.fixture(scope='module')
def documents_text():
    return '\n\n'.join('\n'.join(sentences(1 + d % 5, seed=d)).strip() or '문서' for d in range(80)) + '\n'


# ---------------------------------------------------------------------------- compressed files

@pytest.mark.parametrize('kind', sorted(OPENERS))
def test_compressed_files_give_the_chunks_and_positions_of_their_plain_text(tmp_path, text, documents_text, kind):
    for name, content, documents in (('lines', text, False), ('docs', documents_text, True)):
        plain = write(tmp_path / f'{name}.txt', content)
        packed = write(tmp_path / f'{name}.txt.{kind}', content, kind)
        assert corpus.check_corpus(packed) == [packed]
        for rank in range(2):
            expected = list(read_chunks(plain, 9, rank, 2, documents))
            chunks = assert_every_chunk_restarts_exactly(packed, 9, rank, 2, documents)
            assert [(c.start, c.units) for c in chunks] == [(c.start, c.units) for c in expected]
            assert len(chunks) > 3
        assert corpus.sample_lines(packed, 50) == corpus.sample_lines(plain, 50)


def test_compressed_corpus_gives_the_batches_of_the_plain_one(tmp_path, text, kobert_dir):
    from kobert_gluon.text.tokenizer import get_vocab
    from kobert_gluon.training import pretrain
    spiece = str(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
    vocab = get_vocab(spiece)
    streams = []
    for source in (write(tmp_path / 'c.txt', text), write(tmp_path / 'c.txt.xz', text, 'xz')):
        config = pretrain.PretrainConfig(corpus=source, output_dir=str(tmp_path / 'run'), tokenizer=spiece,
                                         max_len=32, batch_size=8, chunk_lines=64, num_procs=0, ctx='cpu',
                                         num_layers=1, units=32, hidden_size=64, num_heads=2)
        streams.append(pretrain.BatchStream(config, spiece, vocab)({'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0}))
    for _ in range(12):
        (plain, plain_position), (packed, packed_position) = next(streams[0]), next(streams[1])
        assert plain_position == packed_position
        assert plain.keys() == packed.keys()
        for key in plain:
            np.testing.assert_array_equal(plain[key], packed[key])
    for stream in streams:
        stream.close()


# ---------------------------------------------------------------------------- lists and folders

def split_into_files(tmp_path, text, parts=3):
    """``text`` cut at line ends into a .txt, a .gz in a subfolder and an .xz in a folder tree."""
    lines = text.splitlines(keepends=True)
    bounds = np.linspace(0, len(lines), parts + 1).astype(int)
    pieces = [''.join(lines[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    folder = tmp_path / 'folder'
    (folder / 'AA').mkdir(parents=True)
    (folder / 'AB' / 'deeper').mkdir(parents=True)
    (folder / '.hidden').mkdir()
    files = [write(folder / 'AA' / 'wiki_00.txt', pieces[0]),
             write(folder / 'AA' / 'wiki_01.gz', pieces[1], 'gz'),
             write(folder / 'AB' / 'deeper' / 'wiki_00.XZ', pieces[2], 'xz')]
    # none of these is a corpus file
    write(folder / 'AA' / '.wiki_02.txt', '숨은 파일\n')
    write(folder / '.hidden' / 'a.txt', '숨은 폴더\n')
    write(folder / 'README', 'not text of the corpus\n')
    write(folder / 'AB' / 'notes.json', '{}\n')
    return folder, files


@pytest.mark.parametrize('documents', [False, True])
def test_a_list_a_comma_string_and_a_folder_read_as_the_concatenated_file(tmp_path, text, documents_text,
                                                                          documents):
    content = documents_text if documents else text
    folder, files = split_into_files(tmp_path, content)
    whole = write(tmp_path / 'whole.txt', content)
    assert corpus.check_corpus(str(folder)) == files
    assert corpus.check_corpus(','.join(files)) == files
    for source in (files, ','.join(files), str(folder), folder, [files[0], files[1], str(folder / 'AB')]):
        for rank in range(3):
            expected = [c.units for c in read_chunks(whole, 8, rank, 3, documents)]
            chunks = assert_every_chunk_restarts_exactly(source, 8, rank, 3, documents)
            assert [c.units for c in chunks] == expected
    assert corpus.sample_lines(files, 10 ** 6) == corpus.sample_lines(whole, 10 ** 6)


def test_ranks_deal_units_by_their_number_across_files(tmp_path):
    lines = [f'문장 {i}' if i % 7 else '' for i in range(103)]
    files = [write(tmp_path / 'a.txt', '\n'.join(lines[:40]) + '\n'),
             write(tmp_path / 'b.txt.bz2', '\n'.join(lines[40:41]) + '\n', 'bz2'),
             write(tmp_path / 'c.txt', '\n'.join(lines[41:]))]  # no final newline: nothing lost
    seen = []
    for rank in range(3):
        units = units_of(files, 10, rank, 3)
        assert units == [line for i, line in enumerate(lines) if line and i % 3 == rank]
        seen += units
    assert sorted(seen) == sorted(line for line in lines if line)


def test_resume_mid_way_in_the_second_file_which_is_compressed(tmp_path, text):
    _, files = split_into_files(tmp_path, text)
    straight = list(read_chunks(files, 10, 1, 2))
    mid_second = [c for c in straight if c.start.file == 1 and c.start.offset > 0]
    assert mid_second, [c.start for c in straight]
    for chunk in mid_second[:2] + [c for c in straight if c.start.file == 2][:2]:
        resumed = [u for c in read_chunks(files, 10, 1, 2, start=chunk.start) for u in c.units]
        assert resumed == [u for c in straight[straight.index(chunk):] for u in c.units]
    # a chunk that would start at a file's very end starts at the next file's beginning instead
    assert all(c.start.offset < os.path.getsize(files[0]) for c in straight if c.start.file == 0)


def test_a_chunk_never_starts_at_the_end_of_a_file(tmp_path):
    files = [write(tmp_path / f'{i}.txt.gz', ''.join(f'{i}번 파일 {j}번 줄\n' for j in range(4)), 'gz')
             for i in range(3)]
    chunks = list(read_chunks(files, 4))
    assert [c.start for c in chunks] == [Position(0, 0, 0), Position(0, 4, 1), Position(0, 8, 2)]


def test_positions_saved_before_corpora_had_files_still_resume(tmp_path, text):
    path = write(tmp_path / 'c.txt', text)
    for chunk in list(read_chunks(path, 16, 0, 2))[::4]:
        saved = {'offset': chunk.start.offset, 'unit': chunk.start.unit}  # a checkpoint's position
        assert units_of(path, 16, 0, 2, start=Position(**saved)) == units_of(path, 16, 0, 2, start=chunk.start)


def test_a_comma_in_the_name_of_an_existing_file_is_no_separator(tmp_path):
    path = write(tmp_path / 'a,b.txt', '한 줄\n')
    other = write(tmp_path / 'c.txt', '두 줄\n')
    assert corpus.check_corpus(path) == [path]
    assert corpus.check_corpus(f' {other} , {other} ,') == [other, other]  # no deduplication


# ---------------------------------------------------------------------------- long lines

def test_long_lines_are_cut_at_character_boundaries_and_resume_exactly(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(corpus, 'MAX_PIECE_BYTES', 16)
    monkeypatch.setattr(corpus, '_warned_long_lines', set())
    long_line = 'a가é😀' * 9 + '끝'  # characters of 1 to 4 bytes: every cut point is tried
    lines = ['짧은 줄', long_line, 'x' * 16, '둘째 긴 줄 ' * 5, '']
    path = write(tmp_path / 'long.txt.gz', '\n'.join(lines) + '\n', 'gz')
    with caplog.at_level(logging.WARNING, logger=corpus.__name__):
        pieces = units_of(path, 3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and path in warnings[0] and 'line 2 ' in warnings[0]
    assert all(len(piece.encode('utf-8')) <= 16 for piece in pieces)
    assert pieces[0] == lines[0] and pieces[-1].endswith('줄')
    pieces_of_long = pieces[1:pieces.index('x' * 16)]
    assert len(pieces_of_long) >= 94 // 16 and ''.join(pieces_of_long) == long_line
    assert_every_chunk_restarts_exactly(path, 3, 0, 1, False)
    assert_every_chunk_restarts_exactly(path, 2, 1, 2, False)


def test_documents_keep_the_first_piece_of_a_long_line(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, 'MAX_PIECE_BYTES', 16)
    # 'x' * 16 fills a piece exactly: the newline after it is no blank line ending the document
    text = '첫 줄\n' + 'y' * 40 + '\n' + 'x' * 16 + '\n둘째 줄\n\n둘째 문서\n'
    path = write(tmp_path / 'docs.txt', text)
    assert units_of(path, 1, documents=True) == [['첫 줄', 'y' * 16, 'x' * 16, '둘째 줄'], ['둘째 문서']]
    assert_every_chunk_restarts_exactly(path, 1, 0, 1, True)


MEMORY_SCRIPT = '''
import sys
from kobert_gluon.text import corpus
def peak_kb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
before = peak_kb()
count = longest = total = 0
for chunk in corpus.read_chunks(sys.argv[1], 4):
    for piece in chunk.units:
        count, total = count + 1, total + len(piece)
        longest = max(longest, len(piece.encode("utf-8")))
print(count, longest, total, peak_kb() - before)
whole = open(sys.argv[1], "rb").read()  # the control: what holding the file costs
print(len(whole), peak_kb() - before)
'''


def test_a_50_mb_line_is_read_in_pieces_in_bounded_memory(tmp_path):
    block = '가나다라마바사아자차카타파하' * 1000  # 42 000 bytes, then no newline for 50 MB
    encoded = block.encode('utf-8')
    repeats = 50 * 2 ** 20 // len(encoded) + 1
    paths = [str(tmp_path / 'one-line.txt'), str(tmp_path / 'one-line.txt.gz')]
    with open(paths[0], 'wb') as plain, gzip.open(paths[1], 'wb', compresslevel=1) as packed:
        for _ in range(repeats):
            plain.write(encoded)
            packed.write(encoded)
    for path in paths:  # one process each: VmHWM is the process's own peak
        result = subprocess.run([sys.executable, '-c', MEMORY_SCRIPT, path], capture_output=True, text=True,
                                check=True, timeout=hang_guard(30))
        (count, longest, total, growth_kb), (size, control_kb) = [map(int, line.split())
                                                                  for line in result.stdout.splitlines()]
        print(f'{os.path.basename(path)}: {count} pieces, peak RSS grew {growth_kb / 1024:.1f} MB '
              f'(holding the {size / 2 ** 20:.0f} MB file: {control_kb / 1024:.1f} MB)')
        assert total == len(block) * repeats  # every character once: no cut inside one
        assert longest <= corpus.MAX_PIECE_BYTES and count == -(-len(encoded) * repeats // longest)
        assert growth_kb < 20 * 1024, f'{path}: peak RSS grew {growth_kb / 1024:.0f} MB reading a 50 MB line'
        assert control_kb > size / 1024 * 0.9  # the measurement does see a file held in memory


# ---------------------------------------------------------------------------- checks, errors, fingerprint

def test_errors_name_the_file(tmp_path):
    good = write(tmp_path / 'good.txt', '좋은 줄\n')
    missing = str(tmp_path / 'missing.txt')
    empty_folder = tmp_path / 'empty'
    empty_folder.mkdir()
    write(empty_folder / 'README.md', '# no corpus here\n')
    archive = write(tmp_path / 'corpus.zip', b'PK\x03\x04')
    not_xz = write(tmp_path / 'not.txt.xz', '압축되지 않은 글\n')
    truncated = str(tmp_path / 'truncated.txt.gz')
    write(truncated, gzip.compress(' '.join(map(str, range(100000))).encode('utf-8'))[:20000])
    latin1 = write(tmp_path / 'latin1.txt.bz2', '가\n'.encode('utf-8') + 'café\n'.encode('latin-1'), 'bz2')
    for source, culprit, words in ((missing, missing, 'no such'), ([good, missing], missing, 'no such'),
                                   (f'{good},{empty_folder}', str(empty_folder), 'no corpus files'),
                                   (archive, archive, 'archive'), (not_xz, not_xz, '.xz')):
        with pytest.raises(DataError, match=words) as caught:
            corpus.check_corpus(source)
        assert culprit in str(caught.value)
    for source, culprit, words in ((truncated, truncated, 'cannot be read'), ([good, latin1], latin1, 'byte 7:'),
                                   (missing, missing, 'cannot open')):
        with pytest.raises(DataError, match=words) as caught:
            units_of(source)
        assert culprit in str(caught.value)
    with pytest.raises(DataError, match='file 3, but the corpus has 1'):
        units_of(good, start=Position(0, 5, 2))
    with pytest.raises(DataError, match='no corpus file given'):
        corpus.check_corpus('')


def test_fingerprint_lists_each_file_and_tells_corpora_apart(tmp_path, text):
    folder, files = split_into_files(tmp_path, text)
    single = corpus.corpus_fingerprint(files[0])
    stored = open(files[0], 'rb').read()
    assert single == {'file': 'wiki_00.txt', 'md5': hashlib.md5(stored).hexdigest(), 'bytes': len(stored),
                      'files': [{'file': 'wiki_00.txt', 'md5': hashlib.md5(stored).hexdigest(), 'bytes': len(stored)}]}
    whole = corpus.corpus_fingerprint(str(folder))
    assert whole['file'] == 'folder' and whole['bytes'] == sum(os.path.getsize(f) for f in files)
    assert [f['file'] for f in whole['files']] == ['folder/AA/wiki_00.txt', 'folder/AA/wiki_01.gz',
                                                   'folder/AB/deeper/wiki_00.XZ']
    assert [f['md5'] for f in whole['files']] == [hashlib.md5(open(f, 'rb').read()).hexdigest() for f in files]
    assert corpus.corpus_fingerprint(','.join(files))['md5'] == whole['md5']
    assert corpus.corpus_fingerprint(files[::-1])['md5'] != whole['md5']
    write(files[1], '바뀐 내용\n', 'gz')
    assert corpus.corpus_fingerprint(str(folder))['md5'] != whole['md5']
