"""Every version of SKT's MXNet NSMC notebook runs on kobert_gluon's ``kobert``.

tests/fixtures/notebooks/ holds the code cells, verbatim, of the nine distinct versions of
``scripts/NSMC/naver_review_classifications_gluon_kobert.ipynb`` in SKTBrain/KoBERT's history
(file ``nsmc_gluon_kobert_<date>_<commit>.json``; the JSON names the commit, date and tags). Each
version is one test, ``test_notebook_runs[<date>_<commit>]``: its cells run in order in one
``__main__`` namespace, as Jupyter runs them, and the value of a cell's last expression is printed
as Jupyter shows it (cell 8 shows the token ids of '나 보기가 역겨워'). A private HOME and working
directory hold the KoBERT files where the version's own ``kobert`` package looked for them, and
nowhere else (the packaged tokenizer is off, ``KOBERT_GLUON_NO_PACKAGED=1``):

- ff498dc (v0.1.1): ``~/kobert/`` with v0.1's pair ``tokenizer_78b3253a26.model`` +
  ``kobertvocab_f38b8a4d6d.json``;
- 4eebc77 .. 3899580: ``~/kobert/`` with ``kobert_news_wiki_ko_cased-1087f8699e.spiece``;
- 5b78dac .. 0d305e5 (HEAD): ``./.cache/`` with the .spiece (the notebook passes ``cachedir=".cache"``;
  HEAD finds the tokenizer with ``get_tokenizer_path()``).

The NSMC data are the first 16 train and 8 test rows of the shared ``ratings_*_small.txt``,
written where the version's ``!wget`` put them: ``ratings_train.txt?dl=1`` (no ``-O``, ff498dc ..
6355a13), ``ratings_train.txt`` (1aa39c3, 3899580), ``.cache/ratings_train.txt`` (5b78dac ..
b88827d); same for ``ratings_test``.

Edits, the same for every version (what running offline on CPU in a test makes unavoidable):

- shell lines are skipped (``!pip install ...`` in cells 1-2, ``!wget ...`` in cell 10; any other
  ``!`` line fails the test): the packages are installed, the data are put in place;
- cell 6 gets ``model_file=<params>``: a random params file in SKT's bert_12_768_12 layout
  (``bert_12_768_12_params`` in tests/conftest.py), since SKT's weights cannot be downloaded here
  and any other file must be named (the md5 check refuses it under SKT's name);
- training capped: cell 13 ``max_len = 128`` -> ``max_len = 16``, cell 17 ``batch_size = 32`` ->
  ``batch_size = 4``, cell 18 ``num_epochs = 5`` -> ``num_epochs = 1``; with 16 train rows and the
  notebook's ``accumulate = 4`` that is 4 batches and one update (fewer rows than one update
  make the notebook's schedule divide by zero), then 4 test batches of 2 (8 test rows). The
  model stays KoBERT's 12 x 768 (the notebook builds it; only ``model_file=`` may change), so a
  version takes about 10-16 s on 2 busy cores, the nine about 2 minutes.

Per version (``<params>`` is the params file's path):

| version (test id)    | tags          | edits besides the common ones                                        |
|----------------------|---------------|----------------------------------------------------------------------|
| 2019-09-30_ff498dc   | v0.1.1        | cell 5 ``ctx = mx.gpu()`` -> ``ctx = mx.cpu()``; cell 6 ``ctx=ctx)`` -> ``ctx=ctx, model_file=<params>)`` |
| 2019-11-22_4eebc77   |               | cell 5 ``ctx = mx.gpu()`` -> ``ctx = mx.cpu()``; cell 6 ``ctx=ctx)`` -> ``ctx=ctx, model_file=<params>)`` |
| 2020-08-16_6355a13   | v0.1.2        | cell 5 ``ctx = mx.gpu()`` -> ``ctx = mx.cpu()``; cell 6 ``ctx=ctx)`` -> ``ctx=ctx, model_file=<params>)`` |
| 2021-12-01_1aa39c3   |               | cell 6 ``ctx=ctx)`` -> ``ctx=ctx, model_file=<params>)``                |
| 2021-12-01_3899580   |               | cell 6 ``ctx=ctx)`` -> ``ctx=ctx, model_file=<params>)``                |
| 2021-12-02_5b78dac   |               | cell 6 ``cachedir=".cache")`` -> ``cachedir=".cache", model_file=<params>)`` |
| 2021-12-23_0010afd   | v0.2          | cell 6 ``cachedir=".cache")`` -> ``cachedir=".cache", model_file=<params>)`` |
| 2021-12-24_b88827d   | v0.2.1-v0.2.3 | cell 6 ``cachedir=".cache")`` -> ``cachedir=".cache", model_file=<params>)`` |
| 2025-06-12_0d305e5   | (HEAD, 0.2.4) | cell 6 ``cachedir=".cache")`` -> ``cachedir=".cache", model_file=<params>)``; cell 10 replaced by ``HEAD_DATA_CELL`` |

The three oldest versions ask for ``mx.gpu()``; the MXNet build here is CPU-only (1aa39c3 and
later use ``mx.cpu()`` themselves). HEAD's cell 10 is ``dataset = load_dataset("e9t/nsmc",
trust_remote_code=True)`` from Hugging Face ``datasets``: the hub cannot be reached from the tests,
``datasets`` is no dependency of kobert_gluon, and e9t/nsmc runs a loading script from the hub
(hence ``trust_remote_code``). ``HEAD_DATA_CELL`` gives ``dataset`` the same shape from the
NSMC files (``dataset['train']``: rows with ``id``, ``document`` and an int ``label``, what cells
11-14 read); the cells after it run unchanged to the end.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Tuple

import pytest
from hangguard import hang_guard

REPO = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / 'tests' / 'fixtures' / 'notebooks'
PREFIX = 'nsmc_gluon_kobert_'
SPIECE = 'kobert_news_wiki_ko_cased-1087f8699e.spiece'
V01_PAIR = ('tokenizer_78b3253a26.model', 'kobertvocab_f38b8a4d6d.json')
TRAIN_ROWS, TEST_ROWS = 16, 8
PARAMS = '<params>'  # replaced by the params file's path

COMMON_EDITS = ((13, 'max_len = 128', 'max_len = 16'),
                (17, 'batch_size = 32', 'batch_size = 4'),
                (18, 'num_epochs = 5', 'num_epochs = 1'))
ON_CPU = (5, 'ctx = mx.gpu()', 'ctx = mx.cpu()')
MODEL_FILE_V01 = (6, 'ctx=ctx)', f'ctx=ctx, model_file={PARAMS!r})')
MODEL_FILE_V02 = (6, 'cachedir=".cache")', f'cachedir=".cache", model_file={PARAMS!r})')
HEAD_LOAD_DATASET = 'from datasets import load_dataset\ndataset = load_dataset("e9t/nsmc", trust_remote_code=True)'
HEAD_DATA_CELL = '''\
# kobert_gluon's test: e9t/nsmc from the NSMC files, not the hub (see tests/e2e/test_notebooks.py)
import csv
def nsmc_split(path):
    with open(path, encoding='utf-8', newline='') as table:
        return [{'id': row['id'], 'document': row['document'], 'label': int(row['label'])}
                for row in csv.DictReader(table, delimiter='\\t', quoting=csv.QUOTE_NONE)]
dataset = {'train': nsmc_split('ratings_train.txt'), 'test': nsmc_split('ratings_test.txt')}'''


@dataclass(frozen=True)
class Version:
    kobert_dir: str  # where the version's package looked for the KoBERT files ('~' is HOME)
    files: Tuple[str, ...]  # the KoBERT files it used
    data: str  # where its cell 10 put NSMC ('{}': train, test)
    edits: Tuple[Tuple[int, str, str], ...] = field(default=())


VERSIONS = {
    '2019-09-30_ff498dc': Version('~/kobert', V01_PAIR, 'ratings_{}.txt?dl=1', (ON_CPU, MODEL_FILE_V01)),
    '2019-11-22_4eebc77': Version('~/kobert', (SPIECE,), 'ratings_{}.txt?dl=1', (ON_CPU, MODEL_FILE_V01)),
    '2020-08-16_6355a13': Version('~/kobert', (SPIECE,), 'ratings_{}.txt?dl=1', (ON_CPU, MODEL_FILE_V01)),
    '2021-12-01_1aa39c3': Version('~/kobert', (SPIECE,), 'ratings_{}.txt', (MODEL_FILE_V01,)),
    '2021-12-01_3899580': Version('~/kobert', (SPIECE,), 'ratings_{}.txt', (MODEL_FILE_V01,)),
    '2021-12-02_5b78dac': Version('.cache', (SPIECE,), '.cache/ratings_{}.txt', (MODEL_FILE_V02,)),
    '2021-12-23_0010afd': Version('.cache', (SPIECE,), '.cache/ratings_{}.txt', (MODEL_FILE_V02,)),
    '2021-12-24_b88827d': Version('.cache', (SPIECE,), '.cache/ratings_{}.txt', (MODEL_FILE_V02,)),
    '2025-06-12_0d305e5': Version('.cache', (SPIECE,), 'ratings_{}.txt',
                                  (MODEL_FILE_V02, (10, HEAD_LOAD_DATASET, HEAD_DATA_CELL))),
}

# Runs the cells as Jupyter does: one __main__ namespace, the last expression's value shown.
DRIVER = '''\
import ast, json, sys
for _path in sys.argv[1:]:
    _tree = ast.parse(open(_path, encoding='utf-8').read(), filename=_path)
    _last = _tree.body.pop() if _tree.body and isinstance(_tree.body[-1], ast.Expr) else None
    exec(compile(_tree, _path, 'exec'))
    if _last is not None:
        _value = eval(compile(ast.Expression(_last.value), _path, 'eval'))
        if _value is not None:
            print(repr(_value), flush=True)
print('NOTEBOOK-RESULT ' + json.dumps({'tokenizer': tokenizer}))
'''
SHELL_LINE = re.compile(r'!(pip install|wget) ')
CELL8_IDS = re.compile(r'array\(\[ +2, 1370, 2362, 5330, 3322, +3, 1316, 6607, 7028, +3\]')


def notebook_versions():
    found = sorted(path.name[len(PREFIX):-len('.json')] for path in NOTEBOOKS.glob(PREFIX + '*.json'))
    assert found == sorted(VERSIONS), 'every notebook fixture needs an entry in VERSIONS'
    return found


def notebook_cells(version, params):
    """The fixture's cells with the version's edits applied and its shell lines skipped."""
    notebook = json.loads((NOTEBOOKS / f'{PREFIX}{version}.json').read_text(encoding='utf-8'))
    assert notebook['source']['commit'].startswith(version.split('_')[1])
    sources = {cell['index']: cell['source'] for cell in notebook['cells']}
    for index, old, new in COMMON_EDITS + VERSIONS[version].edits:
        assert sources[index].count(old) == 1, (version, index, old)
        sources[index] = sources[index].replace(old, new.replace(repr(PARAMS), repr(str(params))))
    cells = {}
    for index, source in sorted(sources.items()):
        lines = []
        for line in source.splitlines():
            if line.lstrip().startswith('!'):
                assert SHELL_LINE.match(line.strip()), f'a shell line the runner does not know: {line!r}'
                line = line[:len(line) - len(line.lstrip())] + f'pass  # skipped: {line.strip()}'
            lines.append(line)
        cells[index] = '\n'.join(lines) + '\n'
    return cells


def nsmc_rows(shared_dir, split, count):
    path = shared_dir / 'data' / 'nsmc' / f'ratings_{split}_small.txt'
    with open(path, encoding='utf-8') as table:
        return ''.join(line for _, line in zip(range(count + 1), table))  # header + rows


def listing(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob('*'))


def test_the_docstring_lists_every_version_and_edited_cell():
    rows = {line.split('|')[1].strip(): line for line in __doc__.splitlines() if line.startswith('| 20')}
    assert sorted(rows) == notebook_versions()
    for version, spec in VERSIONS.items():
        for index, _, _ in spec.edits:
            assert f'cell {index} ' in rows[version], (version, index)


@pytest.mark.parametrize('version', notebook_versions())
def test_notebook_runs(version, tmp_path, shared_dir, kobert_dir, bert_12_768_12_params):
    spec = VERSIONS[version]
    home, work = tmp_path / 'home', tmp_path / 'work'
    kobert_folder = home / 'kobert' if spec.kobert_dir == '~/kobert' else work / spec.kobert_dir
    kobert_folder.mkdir(parents=True)
    for name in spec.files:
        shutil.copy(kobert_dir / name, kobert_folder)
    for split, rows in (('train', TRAIN_ROWS), ('test', TEST_ROWS)):
        path = work / spec.data.format(split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(nsmc_rows(shared_dir, split, rows), encoding='utf-8')
    before = {folder: listing(folder) for folder in (home, work)}

    cell_dir = tmp_path / 'cells'
    cell_dir.mkdir()
    paths = []
    for index, source in notebook_cells(version, bert_12_768_12_params).items():
        paths.append(cell_dir / f'cell_{index:02d}.py')
        paths[-1].write_text(source, encoding='utf-8')
    (tmp_path / 'driver.py').write_text(DRIVER, encoding='utf-8')
    environment = {k: v for k, v in os.environ.items() if k not in ('KOBERT_GLUON_LEGACY_DIRS', 'KOBERT_HOME')}
    environment.update(HOME=str(home), KOBERT_GLUON_CACHE=str(tmp_path / 'empty-cache'),
                       KOBERT_GLUON_NO_MIRRORS='1', KOBERT_GLUON_NO_PACKAGED='1', PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(tmp_path / 'driver.py'), *map(str, paths)], cwd=work,
                          env=environment, capture_output=True, text=True, timeout=hang_guard(120))
    assert done.returncode == 0, done.stderr[-3000:]

    assert CELL8_IDS.search(done.stdout), done.stdout[-2000:]  # cell 8, as Jupyter shows it
    accuracy = re.findall(r'^Test Acc : (\d\.\d+)$', done.stdout, re.M)  # cell 23, one epoch
    assert len(accuracy) == 1 and 0 <= float(accuracy[0]) <= 1, done.stdout[-2000:]
    result = json.loads(re.search(r'^NOTEBOOK-RESULT (.*)$', done.stdout, re.M).group(1))
    assert pathlib.Path(result['tokenizer']).parent == kobert_folder  # cell 7 found the version's folder
    after = {folder: listing(folder) for folder in (home, work)}
    assert after == before  # nothing downloaded, no other KoBERT folder made
    assert not (tmp_path / 'empty-cache').exists()
