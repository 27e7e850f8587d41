#!/usr/bin/env python
"""Non-neural named-entity baselines on character spans: a CRF on character n-grams and a gazetteer.

    KOBERT_GLUON_SHARED=../shared python benchmarks/ner_baselines.py [--seeds 0 1 2] [--json out.json]

Each baseline is a function ``(train sentences, test sentences) -> predicted spans per test
sentence``; the sentences are :class:`kobert_gluon.text.entities.EntitySentence` rows and the
spans ``EntitySpan(start, end, label)`` in characters. :func:`score` turns predictions into
entity F1 (strict, exact span and type, as seqeval) and KLUE's character macro F1, so the
KoBERT tagger in ``benchmarks/tasks.py`` is scored by the same code.

- ``crf``: python-crfsuite (the ``bench`` extra), one IOB2 tag per character; features are the
  character and its neighbours two either side, the bigrams and trigrams around it, character
  classes and whether it starts or ends an eojeol. L-BFGS, c1 = 0.05, c2 = 0.01, 150 iterations.
- ``gazetteer``: every entity string of the training sentences with its most frequent type,
  kept when the string is an entity at least half of the times it occurs in the training text;
  found in a test sentence by greedy longest match at the start of an eojeol or after
  punctuation (so ``박`` does not fire inside every word).

The run: the shared KLUE-NER sentences (first 4,000 of the dev set), 80/20 split per seed
(:func:`split_sentences`), mean and standard deviation over the seeds.
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time
import unicodedata
from collections import Counter, defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
if os.path.isdir(os.path.join(REPO_ROOT, 'kobert_gluon')) and REPO_ROOT not in sys.path:
    sys.path.insert(1, REPO_ROOT)

from kobert_gluon.tasks.entity_metrics import CharacterCounts, EntityCounts, iob2_labels  # noqa: E402
from kobert_gluon.text.entities import EntitySpan, read_entity_file, spans_from_tags, tags_from_spans  # noqa: E402

KLUE_FILE = os.path.join('data', 'klue_ner', 'klue-ner-v1.1_dev_first4000.tsv')
KLUE_TYPES = ('PS', 'LC', 'OG', 'DT', 'TI', 'QT')
CRF_PARAMS = {'c1': 0.05, 'c2': 0.01, 'max_iterations': 150, 'feature.possible_transitions': True}
logger = logging.getLogger('ner_baselines')


def split_sentences(sentences, seed, test_size=0.2):
    """``(train, test)``: a seeded shuffle of the sentences, the last ``test_size`` share tested."""
    order = np.random.RandomState(seed).permutation(len(sentences))
    cut = len(sentences) - int(round(len(sentences) * test_size))
    return [sentences[i] for i in order[:cut]], [sentences[i] for i in order[cut:]]


def score(test_sentences, predicted_spans, types=KLUE_TYPES):
    """``{'entity_f1', 'entity_precision', 'entity_recall', 'char_f1', 'per_type_f1'}`` of predicted
    character spans against the sentences' entities."""
    entities, characters = EntityCounts(), CharacterCounts()
    for sentence, spans in zip(test_sentences, predicted_spans):
        entities.add(sentence.entities, spans)
        characters.add(sentence.text, sentence.entities, spans)
    report = entities.report(types)
    return {'entity_f1': report['f1'], 'entity_precision': report['precision'], 'entity_recall': report['recall'],
            'char_f1': characters.macro_f1(iob2_labels(types)),
            'per_type_f1': {label: row['f1'] for label, row in report['per_type'].items()}}


# ---------------------------------------------------------------------------- CRF

def char_class(char):
    if char.isspace():
        return 'space'
    if '\uac00' <= char <= '\ud7a3':
        return 'hangul'
    if char.isdigit():
        return 'digit'
    if char.isascii() and char.isalpha():
        return 'latin'
    return unicodedata.category(char)


def char_features(text, index):
    padded = f'\x02\x02{text}\x03\x03'
    i = index + 2
    window = {f'c{offset:+d}': padded[i + offset] for offset in range(-2, 3)}
    return dict(window, bias=1.0, klass=char_class(text[index]), prev_class=char_class(padded[i - 1]),
                next_class=char_class(padded[i + 1]), b_before=padded[i - 1:i + 1], b_after=padded[i:i + 2],
                trigram=padded[i - 1:i + 2], tri_before=padded[i - 2:i + 1], tri_after=padded[i:i + 3],
                word_start=str(index == 0 or text[index - 1].isspace()),
                word_end=str(index == len(text) - 1 or text[index + 1].isspace()))


def sentence_features(text):
    return [char_features(text, index) for index in range(len(text))]


def crf(train_sentences, test_sentences, params=CRF_PARAMS):
    """A linear-chain CRF over characters (python-crfsuite); predictions read as strict IOB2."""
    import tempfile

    import pycrfsuite

    trainer = pycrfsuite.Trainer(verbose=False)
    for sentence in train_sentences:
        trainer.append(sentence_features(sentence.text), tags_from_spans(len(sentence.text), sentence.entities))
    trainer.set_params(params)
    with tempfile.TemporaryDirectory() as workdir:
        model = os.path.join(workdir, 'ner.crfsuite')
        trainer.train(model)
        tagger = pycrfsuite.Tagger()
        tagger.open(model)
        predictions = [spans_from_tags(tagger.tag(sentence_features(s.text))) for s in test_sentences]
        tagger.close()
    return predictions


# ---------------------------------------------------------------------------- gazetteer

def gazetteer_entries(train_sentences, min_precision=0.5):
    """``{string: type}``: training entity strings that are an entity in at least ``min_precision``
    of their occurrences (at a match position) in the training text."""
    types = defaultdict(Counter)
    for sentence in train_sentences:
        for start, end, label in sentence.entities:
            types[sentence.text[start:end]][label] += 1
    entries = {string: counter.most_common(1)[0][0] for string, counter in types.items() if string.strip()}
    occurrences = Counter()
    for sentence in train_sentences:
        for start, end, _ in longest_matches(sentence.text, entries):
            occurrences[sentence.text[start:end]] += 1
    return {string: label for string, label in entries.items()
            if sum(types[string].values()) >= min_precision * max(occurrences[string], 1)}


def match_starts(text):
    """Where a match may begin: the text's start, after whitespace or punctuation."""
    return {0} | {i for i in range(1, len(text)) if not text[i - 1].isalnum()}


def longest_matches(text, entries, longest=None):
    longest = longest or max(map(len, entries), default=0)
    spans, position, starts = [], 0, match_starts(text)
    while position < len(text):
        found = None
        if position in starts:
            for length in range(min(longest, len(text) - position), 0, -1):
                label = entries.get(text[position:position + length])
                if label is not None:
                    found = EntitySpan(position, position + length, label)
                    break
        if found:
            spans.append(found)
            position = found.end
        else:
            position += 1
    return spans


def gazetteer(train_sentences, test_sentences):
    """Training entity strings found again by greedy longest match (see :func:`gazetteer_entries`)."""
    entries = gazetteer_entries(train_sentences)
    longest = max(map(len, entries), default=0)
    return [longest_matches(sentence.text, entries, longest) for sentence in test_sentences]


BASELINES = {'crf': crf, 'gazetteer': gazetteer}


# ---------------------------------------------------------------------------- the run

def run(sentences, seeds, names):
    results = defaultdict(list)
    for seed in seeds:
        train, test = split_sentences(sentences, seed)
        for name in names:
            started = time.time()
            scores = score(test, BASELINES[name](train, test))
            scores['seconds'] = time.time() - started
            logger.info('seed %d %s: entity F1 %.4f, char F1 %.4f (%.0f s)', seed, name, scores['entity_f1'],
                        scores['char_f1'], scores['seconds'])
            results[name].append(dict(scores, seed=seed))
    return dict(results)


def mean_sd(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def table(results):
    lines = ['| baseline | entity F1 | char F1 (KLUE) | ' + ' | '.join(f'{t} F1' for t in KLUE_TYPES) + ' |',
             '|---|---|---|' + '---|' * len(KLUE_TYPES)]
    for name, runs in results.items():
        cells = [name] + ['%.3f ± %.3f' % mean_sd([r[key] for r in runs]) for key in ('entity_f1', 'char_f1')]
        cells += ['%.3f' % statistics.mean(r['per_type_f1'][t] for r in runs) for t in KLUE_TYPES]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shared-dir', default=os.environ.get('KOBERT_GLUON_SHARED'))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--baselines', nargs='+', choices=sorted(BASELINES), default=sorted(BASELINES))
    parser.add_argument('--json', help='also write every run to this file')
    args = parser.parse_args(argv)
    if not args.shared_dir:
        parser.error('--shared-dir (or KOBERT_GLUON_SHARED) is needed: the KLUE-NER sentences are read from there')
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    sentences = read_entity_file(os.path.join(args.shared_dir, KLUE_FILE))
    results = run(sentences, args.seeds, args.baselines)
    print(f'KLUE-NER dev, first {len(sentences)} sentences, 80/20 split, seeds {args.seeds} (mean ± sd)')
    print(table(results))
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as out:
            json.dump(results, out, indent=1)


if __name__ == '__main__':
    main()
