"""Sentence pairs, scores and several labels: ``--bert small`` from the checkpoint shipped in the
package against a non-neural baseline computed here on the same splits, 3 seeds (mean ± sd).

Rows (the shared data, ``--shared``, default ``../shared``):

- ``kornli``: KorNLI's human-translated XNLI, train on ``xnli.dev.ko.tsv`` (2,490 pairs), test on
  ``xnli.test.ko.tsv`` (5,010): accuracy and macro-F1. Baseline: TF-IDF (character 1-3-grams) of
  each sentence, their absolute difference and product, logistic regression.
- ``korsts``: KorSTS train / dev (validation) / test as given (5,749 / 1,500 / 1,379): Spearman and
  Pearson. Baselines: the cosine of the two TF-IDF vectors (no training), and ridge regression on
  the same features as KorNLI's.
- ``kote``: KOTE ``val.tsv`` (5,000 comments, 44 emotions), a seeded 80/20 split: micro- and
  macro-F1 at the 0.5 threshold. Baseline: one logistic regression per label on TF-IDF.

The BERT rows train with the small size's preset (lr 5e-4, batch 32) for ``--epochs`` epochs, 10%
of the training rows held out to select the epoch (KorSTS: its dev file), seed s for run s; the
baselines see the same training rows (validation rows included) and the same test rows. Each
seed's split (KOTE) and initialisation differ.

``--ner`` adds the named-entity rows (:func:`ner_rows`): the shared KLUE-NER sentences (the first
4,000 of its dev set), a seeded 80/20 split per seed (``benchmarks/ner_baselines.py``'s), entity
F1 (strict, exact span and type) and KLUE's character macro F1, scored by the same code for every
row: ``--task token_classification --bert small`` from the shipped checkpoint and the same model
from a random start (``--init_from none``), max_len 128 with ``--stride 32``, 10% of the training
sentences selecting the epoch; the CRF on character n-grams and the gazetteer of
``ner_baselines.py`` trained on all the training sentences. ``--smoke`` runs 200 sentences, one
seed, one epoch, max_len 64, to check that everything runs.

    python benchmarks/tasks.py --workdir bench-tasks            # every row, 3 seeds; rows cached
    python benchmarks/tasks.py --workdir bench-tasks --only kote --seeds 1
    python benchmarks/tasks.py --workdir bench-ner --only '' --ner   # the entity rows only

Results are cached in WORKDIR/results.json (``--only`` recomputes the rows named).
"""
import argparse
import json
import logging
import os
import sys
import time

import numpy as np

logger = logging.getLogger('tasks')

# KoELECTRA's table (Naver NER: another data set than KLUE-NER, what the full weights reach)
KOBERT_PUBLISHED = {'kornli': 'accuracy 79.00', 'korsts': 'Spearman 79.64', 'kote': None, 'naver-ner': '86.11'}


def read(path, **kwargs):
    import pandas as pd

    return pd.read_csv(path, sep='\t', quoting=3, dtype=str, keep_default_na=False, **kwargs)


def prepare_data(shared, workdir):
    """The shared files as train/valid/test TSVs with headers (KOTE has none), in ``workdir``."""
    data = os.path.join(shared, 'data')
    out = os.path.join(workdir, 'data')
    os.makedirs(out, exist_ok=True)
    kote = read(os.path.join(data, 'kote', 'val.tsv'), header=None, names=['id', 'text', 'labels'])
    kote.to_csv(os.path.join(out, 'kote.tsv'), sep='\t', index=False)
    return {'kornli': {'train': os.path.join(data, 'kornli', 'xnli.dev.ko.tsv'),
                       'test': os.path.join(data, 'kornli', 'xnli.test.ko.tsv')},
            'korsts': {'train': os.path.join(data, 'korsts', 'sts-train.tsv'),
                       'valid': os.path.join(data, 'korsts', 'sts-dev.tsv'),
                       'test': os.path.join(data, 'korsts', 'sts-test.tsv')},
            'kote': {'train': os.path.join(out, 'kote.tsv')}}


# ---------------------------------------------------------------------------- the BERT rows

def bert_settings(name, files, seed, epochs, workdir):
    common = dict(bert='small', seed=seed, num_epochs=epochs, max_len=64, output_dir=os.path.join(workdir, 'runs',
                                                                                                   f'{name}-{seed}'))
    if name == 'kornli':
        return dict(common, data=files['train'], test_data=files['test'], text_column='sentence1',
                    text_pair_column='sentence2', label_column='gold_label')
    if name == 'korsts':
        return dict(common, task='regression', data=files['train'], valid_data=files['valid'],
                    test_data=files['test'], text_column='sentence1', text_pair_column='sentence2',
                    label_column='score')
    return dict(common, task='multi_label', data=files['train'], label_column='labels', test_size=0.2)


def bert_row(name, files, seed, epochs, workdir):
    import kobert_gluon as kg

    started = time.time()
    settings = bert_settings(name, files, seed, epochs, workdir)
    classifier = kg.train(kg.TrainConfig(**settings, overwrite=True))
    report = classifier.test_report
    return {'seconds': time.time() - started, **{key: report[key] for key in METRICS[name]}}


METRICS = {'kornli': ('accuracy', 'macro_f1'), 'korsts': ('spearman', 'pearson'), 'kote': ('micro_f1', 'macro_f1')}


# ---------------------------------------------------------------------------- the baselines

def vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer='char_wb', ngram_range=(1, 3), sublinear_tf=True, min_df=2)


def pair_features(fitted, first, second):
    """[a, b, |a - b|, a * b] of the two sentences' TF-IDF vectors (sparse)."""
    from scipy import sparse

    a, b = fitted.transform(first), fitted.transform(second)
    return sparse.hstack([a, b, abs(a - b), a.multiply(b)]).tocsr()


def kornli_baseline(files, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train, test = read(files['train']), read(files['test'])
    fitted = vectorizer().fit(list(train['sentence1']) + list(train['sentence2']))
    model = LogisticRegression(max_iter=2000, C=2.0, random_state=seed)
    model.fit(pair_features(fitted, train['sentence1'], train['sentence2']), train['gold_label'])
    predicted = model.predict(pair_features(fitted, test['sentence1'], test['sentence2']))
    return {'accuracy': accuracy_score(test['gold_label'], predicted),
            'macro_f1': f1_score(test['gold_label'], predicted, average='macro')}


def korsts_baselines(files, seed):
    import pandas as pd
    from scipy import stats
    from sklearn.linear_model import Ridge

    train = pd.concat([read(files['train']), read(files['valid'])], ignore_index=True)
    test = read(files['test'])
    fitted = vectorizer().fit(list(train['sentence1']) + list(train['sentence2']))
    gold = test['score'].astype(float)
    a, b = fitted.transform(test['sentence1']), fitted.transform(test['sentence2'])
    cosine = np.asarray(a.multiply(b).sum(axis=1)).ravel()  # rows are L2-normalised
    model = Ridge(alpha=1.0, random_state=seed).fit(pair_features(fitted, train['sentence1'], train['sentence2']),
                                                    train['score'].astype(float))
    ridge = model.predict(pair_features(fitted, test['sentence1'], test['sentence2']))
    return ({'spearman': stats.spearmanr(gold, cosine)[0], 'pearson': stats.pearsonr(gold, cosine)[0]},
            {'spearman': stats.spearmanr(gold, ridge)[0], 'pearson': stats.pearsonr(gold, ridge)[0]})


def kote_split(files, seed):
    """The rows of the multi_label run's test split: kobert_gluon's own seeded split."""
    from kobert_gluon.tasks import registry
    from kobert_gluon.tasks.inputs import Columns
    from kobert_gluon.text.data import split_positions

    frame = read(files['train'])
    task = registry.get('multi_label')
    labels = task.read_labels(frame, Columns(label='labels'), files['train'])
    kept, held = split_positions(task.split_keys(labels), 0.2, seed)
    return frame.iloc[kept], frame.iloc[held]


def kote_baseline(files, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer

    train, test = kote_split(files, seed)
    binarizer = MultiLabelBinarizer()
    gold_train = binarizer.fit_transform([labels.split(',') for labels in train['labels']])
    gold_test = binarizer.transform([[label for label in labels.split(',') if label in binarizer.classes_]
                                     for labels in test['labels']])
    fitted = vectorizer().fit(train['text'])
    model = OneVsRestClassifier(LogisticRegression(max_iter=2000, C=4.0, random_state=seed))
    model.fit(fitted.transform(train['text']), gold_train)
    predicted = model.predict_proba(fitted.transform(test['text'])) > 0.5
    return {'micro_f1': f1_score(gold_test, predicted, average='micro', zero_division=0),
            'macro_f1': f1_score(gold_test, predicted, average='macro', zero_division=0)}


def baseline_rows(name, files, seed):
    """{setup: metrics} of the non-neural rows of ``name`` for ``seed``."""
    if name == 'kornli':
        return {'TF-IDF pair features + logistic regression': kornli_baseline(files, seed)}
    if name == 'korsts':
        cosine, ridge = korsts_baselines(files, seed)
        return {'TF-IDF cosine (no training)': cosine, 'TF-IDF pair features + ridge regression': ridge}
    return {'TF-IDF + one-vs-rest logistic regression': kote_baseline(files, seed)}


# ---------------------------------------------------------------------------- running and the table

def load_results(path):
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as source:
            return json.load(source)
    return {}


def save_results(path, results):
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as out:
        json.dump(results, out, ensure_ascii=False, indent=1)
    os.replace(tmp, path)


def run(args):
    files = prepare_data(args.shared, args.workdir)
    path = os.path.join(args.workdir, 'results.json')
    results = load_results(path)
    names = args.only.split(',') if args.only is not None else list(METRICS)
    for name in [n for n in names if n]:
        rows = results[name] = {}
        for seed in range(args.seeds):
            logger.info('%s: seed %d', name, seed)
            rows.setdefault('--bert small, shipped checkpoint', []).append(
                bert_row(name, files[name], seed, args.epochs, args.workdir))
            for setup, metrics in baseline_rows(name, files[name], seed).items():
                rows.setdefault(setup, []).append(metrics)
            save_results(path, results)
    if args.ner:
        results['ner'] = ner_rows(args.shared, args.workdir, args.seeds, args.epochs, args.smoke)
        save_results(path, results)
    return results


# ---------------------------------------------------------------------------- named entities

NER_SETUPS = ('--bert small, shipped checkpoint', '--bert small, random start (same size and tokenizer)')


def ner_random_start(workdir, sentences):
    """The shipped checkpoint's size and tokenizer with its Normal(0.02) initial weights: a
    ``pretrain`` of 0 steps (as benchmarks/pretraining.py makes its random start)."""
    import subprocess

    import kobert_gluon as kg
    from pretraining import pretrain_command

    output = os.path.join(workdir, 'random-start')
    params = os.path.join(output, 'bert.params')
    if not os.path.isfile(params):
        shipped = kg.shipped_params()
        record = kg.read_record(shipped)
        corpus = os.path.join(workdir, 'data', 'klue-ner-corpus.txt')
        os.makedirs(os.path.dirname(corpus), exist_ok=True)
        with open(corpus, 'w', encoding='utf-8') as out:
            out.writelines(sentence.text + '\n' for sentence in sentences)
        size = [flag for name in ('num_layers', 'units', 'hidden_size', 'num_heads')
                for flag in (f'--{name}', str(record['bert'][name]))]
        subprocess.run(pretrain_command(corpus, output, '--tokenizer', kg.record_tokenizer_path(shipped, record),
                                        '--num_steps', '0', '--overwrite', *size), check=True,
                       stdout=subprocess.DEVNULL)
    return params


def ner_files(sentences, seed, workdir):
    """The seed's split as JSONL files (what train reads), and the split itself."""
    from ner_baselines import split_sentences

    train, test = split_sentences(sentences, seed)
    paths = {}
    for name, part in (('train', train), ('test', test)):
        paths[name] = os.path.join(workdir, 'data', f'klue-ner-{seed}-{name}.jsonl')
        os.makedirs(os.path.dirname(paths[name]), exist_ok=True)
        with open(paths[name], 'w', encoding='utf-8') as out:
            for sentence in part:
                out.write(json.dumps({'text': sentence.text, 'entities': [
                    {'start': e.start, 'end': e.end, 'label': e.label} for e in sentence.entities]},
                    ensure_ascii=False) + '\n')
    return paths, train, test


NER_MAX_LEN, NER_STRIDE = 64, 16  # windows of 62 pieces, 16 shared: every sentence is read whole


def ner_bert_row(files, seed, epochs, workdir, init_from, smoke):
    """One tagger's test figures; cached in its run directory's ``row.json`` (a rerun skips it)."""
    import kobert_gluon as kg

    name = 'random' if init_from else 'shipped'  # init_from: the random start's params, None: the shipped ones
    output_dir = os.path.join(workdir, 'runs', f'ner-{name}-{seed}-{epochs}')
    cached = os.path.join(output_dir, 'row.json')
    if os.path.isfile(cached):
        with open(cached, encoding='utf-8') as handle:
            return json.load(handle)
    started = time.time()
    classifier = kg.train(kg.TrainConfig(
        task='token_classification', data=files['train'], test_data=files['test'], bert='small', seed=seed,
        num_epochs=epochs, max_len=NER_MAX_LEN, stride=NER_STRIDE, init_from=init_from or kg.shipped_params(),
        output_dir=output_dir, overwrite=True))
    report = classifier.test_report
    row = {'seconds': time.time() - started, 'entity_f1': report['entity_f1'], 'char_f1': report['char_f1'],
           'per_type_f1': {label: row['f1'] for label, row in report['per_type'].items()}}
    with open(cached + '.tmp', 'w', encoding='utf-8') as handle:
        json.dump(row, handle)
    os.replace(cached + '.tmp', cached)
    return row


def ner_rows(shared, workdir, seeds, epochs, smoke=False):
    """``[{'setup', 'entity_f1', 'char_f1', 'seconds'}]`` (mean ± sd over the seeds) of the BERT
    rows and the two baselines, every one on the same split per seed."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ner_baselines import BASELINES, KLUE_FILE, score

    from kobert_gluon.text.entities import read_entity_file

    sentences = read_entity_file(os.path.join(shared, KLUE_FILE))
    if smoke:
        sentences, seeds, epochs = sentences[:200], 1, 1
    runs = {}
    random_start = ner_random_start(workdir, sentences)
    for seed in range(seeds):
        files, train, test = ner_files(sentences, seed, workdir)
        for setup, init_from in zip(NER_SETUPS, (None, random_start)):  # None: the shipped checkpoint
            logger.info('klue-ner: %s, seed %d', setup, seed)
            runs.setdefault(setup, []).append(ner_bert_row(files, seed, epochs, workdir, init_from, smoke))
        for name, baseline in (('CRF on character n-grams', BASELINES['crf']),
                               ('gazetteer of the training entities', BASELINES['gazetteer'])):
            started = time.time()
            metrics = score(test, baseline(train, test))
            runs.setdefault(name, []).append({**metrics, 'seconds': time.time() - started})
    return [{'setup': setup, 'entity_f1': mean_sd([r['entity_f1'] for r in rows]),
             'char_f1': mean_sd([r['char_f1'] for r in rows]),
             'seconds': f"{np.mean([r['seconds'] for r in rows]):.0f} s",
             'sentences': len(sentences), 'seeds': seeds, 'epochs': epochs, 'runs': rows}
            for setup, rows in runs.items()]


def mean_sd(values):
    values = np.asarray(values, dtype=float)
    return f'{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}'


def table(results, seeds):
    lines = [f'mean ± sd over {seeds} seed(s)', '', '| task | setup | metric 1 | metric 2 | time per run |',
             '|---|---|---:|---:|---:|']
    for name in METRICS:
        for setup, runs in results.get(name, {}).items():
            first, second = METRICS[name]
            seconds = f"{np.mean([r['seconds'] for r in runs]):.0f} s" if 'seconds' in runs[0] else ''
            lines.append(f'| {name} | {setup} | {first} {mean_sd([r[first] for r in runs])} | '
                         f'{second} {mean_sd([r[second] for r in runs])} | {seconds} |')
        if KOBERT_PUBLISHED[name] and name in results:
            lines.append(f'| {name} | KoBERT (12 x 768), published (KoELECTRA\'s table) | {KOBERT_PUBLISHED[name]} | | |')
    for row in results.get('ner', []):
        lines.append(f"| klue-ner | {row['setup']} | entity F1 {row['entity_f1']} | char F1 {row['char_f1']} | "
                     f"{row.get('seconds', '')} |")
    if results.get('ner'):
        lines.append(f"| klue-ner | KoBERT (12 x 768), published on Naver NER (KoELECTRA's table) | "
                     f"entity F1 {KOBERT_PUBLISHED['naver-ner']} | | |")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--shared', default=os.path.join(os.path.dirname(__file__), '..', '..', 'shared'))
    parser.add_argument('--workdir', default='bench-tasks')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--only', help="comma-separated rows to recompute (kornli, korsts, kote); '' prints the table")
    parser.add_argument('--ner', action='store_true', help='add the named-entity rows (KLUE-NER, ner_rows)')
    parser.add_argument('--smoke', action='store_true', help='--ner on 200 sentences, 1 seed, 1 epoch: a check')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    os.makedirs(args.workdir, exist_ok=True)
    print(table(run(args), args.seeds))


if __name__ == '__main__':
    main()
