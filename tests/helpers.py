"""Small training runs shared by the test files (tests/ is on sys.path, so `from helpers import ...`)."""
import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
from importlib import resources

import mxnet as mx
import numpy as np
import pandas as pd

from kobert_gluon.models.bert import build_bert
from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.pretrained import shipped_params
from kobert_gluon.training.config import TrainConfig

from hangguard import hang_guard  # noqa: F401  (re-exported)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXIT_INTERRUPTED = 130


TINY = BertConfig.small(num_layers=1, units=32, hidden_size=64, num_heads=2, max_length=64)


def demo_frame(rows=96):
    path = resources.files('kobert_gluon').joinpath('resources', 'demo_sentiment.tsv')
    return pd.read_csv(path, sep='\t', quoting=3, keep_default_na=False).head(rows)


def write_small_data(directory, rows=96, name='small.tsv'):
    """``rows`` rows of the embedded demo set, as a user's TSV file."""
    path = directory / name
    demo_frame(rows).to_csv(path, sep='\t', index=False)
    return str(path)


def tiny_bert(monkeypatch, dropout=0.0):
    """Make 'small' BERT the 1-layer, 32-unit TINY model (fast), with the given dropout."""
    monkeypatch.setattr(BertConfig, 'small',
                        classmethod(lambda cls, **kw: dataclasses.replace(TINY, dropout=dropout, **kw)))


def run_config(tmp_path, data, name, **overrides):
    settings = dict(data=data, bert='small', max_len=24, batch_size=8, num_epochs=1, learning_rate=1e-3,
                    tokenizer_vocab_size=200, log_interval=1000, output_dir=str(tmp_path / name), ctx='cpu')
    return TrainConfig(**{**settings, **overrides})


def final_params(run_dir, which='last/model'):
    return mx.nd.load(str(run_dir / which / 'model.params'))


def assert_same_params(a, b, atol):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name].asnumpy(), b[name].asnumpy(), rtol=0, atol=atol, err_msg=name)


def save_random_bert(config, path):
    """A BERT of ``config`` (no MLM/NSP heads) with Normal(0.02) weights, saved in the bert_12_768_12 layout."""
    bert = build_bert(config, use_decoder=False, use_classifier=False)
    bert.initialize(init=mx.init.Normal(0.02))
    bert(mx.nd.ones((1, 4)), mx.nd.zeros((1, 4)), mx.nd.array([4]))  # deferred shapes
    bert.save_parameters(str(path))
    return path


def cli_error(capsys, *argv):
    """Run the command in-process; it must fail with exit 2 and exactly one
    ``kobert-gluon: error:`` line, no traceback. Returns that line."""
    from kobert_gluon import cli

    code = cli.main([str(arg) for arg in argv])
    _, err = capsys.readouterr()
    assert code == 2, err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if line.startswith('kobert-gluon: error: ')]
    assert len(lines) == 1, err
    return lines[0]


def tiny_pretrain_config(corpus_file, spiece, output_dir, **overrides):
    """A PretrainConfig of a 1 x 32 BERT for 12 steps on ``corpus_file`` (checkpoints every 5)."""
    from kobert_gluon.training.config import PretrainConfig

    settings = dict(corpus=str(corpus_file), output_dir=str(output_dir), tokenizer=spiece, max_len=32,
                    batch_size=8, num_steps=12, learning_rate=1e-3, chunk_lines=64, num_procs=0,
                    save_every=5, log_interval=1, ctx='cpu', num_layers=1, units=32, hidden_size=64, num_heads=2)
    settings.update(overrides)
    return PretrainConfig(**settings)


def start_cli(argv):
    """``kobert-gluon ARGV`` of this checkout in a subprocess, stdout and stderr piped as text."""
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')])}
    return subprocess.Popen([sys.executable, '-m', 'kobert_gluon.cli', *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def interrupt_cli(argv, when, signum=signal.SIGINT):
    """Run ``kobert-gluon ARGV`` and send ``signum`` once a stderr line contains ``when``. Checks the
    command stopped as interrupted (exit 130, no traceback, nothing on stdout); returns its stderr
    and the command it printed to continue."""
    process = start_cli(argv)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if when in line:
            process.send_signal(signum)
            break
    out, err = process.communicate(timeout=hang_guard(60))
    err = ''.join(seen) + err
    assert process.returncode == EXIT_INTERRUPTED, err
    assert 'Traceback' not in err and out == ''
    command, = [line.split('to continue: ', 1)[1] for line in err.splitlines() if 'to continue: ' in line]
    return err, command


# ---------------------------------------------------------------------------- sentence pairs, scores, several labels

WEATHER = ['오늘', '비가', '많이', '내리고', '바람이', '강하게', '불어요', '하늘이', '맑아요', '구름이']
FOOD = ['김치찌개가', '맛있어요', '떡볶이는', '매워요', '밥을', '먹었어요', '라면이', '짜요', '불고기가', '달콤해요']
SPORT = ['축구를', '했어요', '야구가', '재밌어요', '농구공을', '던졌어요', '수영을', '배웠어요', '달리기를', '이겼어요']
TOPICS = {'날씨': WEATHER, '음식': FOOD, '운동': SPORT}


def sentence(rng, topics):
    words = [word for topic in topics for word in rng.sample(TOPICS[topic], 2)]
    rng.shuffle(words)
    return ' '.join(words)


def pair_rows(rows=160, seed=0):
    """(sentence1, sentence2, same/different topics, a 0-5 score: 2.5 for each sentence about food):
    the label compares the two sentences, the score a bag-of-words model can learn."""
    rng, names = random.Random(seed), list(TOPICS)
    records = []
    for index in range(rows):
        first = rng.sample(names, 2)
        second = first if index % 2 else rng.sample(names, 2)
        food = ('음식' in first) + ('음식' in second)
        records.append((sentence(rng, first), sentence(rng, second), 'same' if set(first) == set(second) else
                        'different', round(2.5 * food + rng.uniform(-0.3, 0.3), 2)))
    return pd.DataFrame(records, columns=['sentence1', 'sentence2', 'gold_label', 'score'])


def multi_label_rows(rows=160, seed=0):
    rng, names = random.Random(seed), list(TOPICS)
    records = []
    for _ in range(rows):
        topics = rng.sample(names, rng.randint(1, 2))
        records.append((sentence(rng, topics), ','.join(topics), *[int(name in topics) for name in names]))
    return pd.DataFrame(records, columns=['text', 'labels', *names])


def write_task_data(folder):
    """The pair and multi-label tables of the task runs, as a user's TSV files."""
    pairs, multi = folder / 'pairs.tsv', folder / 'multi.tsv'
    pair_rows().to_csv(pairs, sep='\t', index=False)
    multi_label_rows().to_csv(multi, sep='\t', index=False)
    return {'pairs': str(pairs), 'multi': str(multi), 'folder': folder}


TASK_SETTINGS = {
    'nli': dict(text_column='sentence1', text_pair_column='sentence2', label_column='gold_label'),
    # a score needs pretrained weights to learn from 160 rows (random ones predict the mean), and a rate the
    # tanh pooler survives
    'sts': dict(task='regression', text_column='sentence1', text_pair_column='sentence2', label_column='score',
                init_from=shipped_params(), learning_rate=5e-4),
    'multi': dict(task='multi_label', label_column='labels', threshold=0.4),
    'columns': dict(task='multi_label', label_columns='날씨,음식,운동'),
}


def task_config(tmp_path, data, name, **overrides):
    source = data['multi'] if name in ('multi', 'columns') else data['pairs']
    return run_config(tmp_path, source, name, **{'num_epochs': 2, **TASK_SETTINGS[name], **overrides})


# ---------------------------------------------------------------------------- named entities

ENTITY_WORDS = {'PS': ['김민수', '이영희', '박철수', '최지훈', '정수진', '한상우'],
                'LC': ['서울', '부산', '대구', '광주', '제주도', '인천'],
                'QT': ['3명', '12명', '40명', '7개', '두 명']}
ENTITY_TEMPLATES = ['{PS}씨는 어제 {LC}에서 {QT}을 만났다.', '{LC}에 사는 {PS}는 {QT}과 함께 갔다.',
                    '오늘 {PS}가 {LC}로 떠났다.', '{QT}이 {LC}  시장에서  {PS}를 기다렸다.']


def entity_rows(rows=120, seed=0, clauses=1):
    """``[{"text", "entities"}]``: template sentences (``clauses`` of them joined) with person,
    place and quantity entities at known character spans."""
    rng = random.Random(seed)
    records = []
    for _ in range(rows):
        text, entities = '', []
        for clause in range(clauses):
            template = rng.choice(ENTITY_TEMPLATES)
            text += ' ' if clause else ''
            for part in re.split(r'(\{\w+\})', template):
                if part.startswith('{'):
                    label = part[1:-1]
                    word = rng.choice(ENTITY_WORDS[label])
                    entities.append({'start': len(text), 'end': len(text) + len(word), 'label': label})
                    text += word
                else:
                    text += part
        records.append({'text': text, 'entities': entities})
    return records


def write_entity_jsonl(path, records):
    with open(path, 'w', encoding='utf-8') as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + '\n')
    return str(path)
