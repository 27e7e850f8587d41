#!/usr/bin/env python
"""Token ids on the PyTorch side versus ours, on every shared emotion sentence.

    KOBERT_GLUON_SHARED=../shared python benchmarks/tokenizer_interop.py [--json out.json]

Baseline: our pipeline, gluonnlp's BERTSPTokenizer + BERTSentenceTransform on KoBERT's .spiece.
Compared with it, per sentence (all ids of [CLS] ... [SEP], untruncated and cut at max_len 64):

- ``TokenIds``: kobert_gluon.interop.transformers.TokenIds, what a PyTorch user runs (sentencepiece only).
  It must differ on no sentence.
- ``KoBERTTokenizer (SKT)``: SKT's kobert_tokenizer.KoBERTTokenizer as it runs on transformers
  4.x, the tokenizer the Hugging Face KoBERT model card shows. It is transformers' slow
  XLNetTokenizer on the same .spiece: ``preprocess_text`` (collapse spaces, NFKD, drop
  combining marks), SentencePiece on the whole sentence, the digit-comma split, then
  ``[CLS] ids [SEP]``. Reimplemented here from that code, because transformers 5 no longer
  has the slow tokenizer it subclasses.
- ``XLNetTokenizer (transformers 5.24)``: transformers' current XLNetTokenizer loaded from the
  same file with KoBERT's special tokens, ids wrapped as KoBERT does.

Each tokenizer's time for the whole set is shown too (one pass, this process).
"""
import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
if os.path.isdir(os.path.join(REPO_ROOT, 'kobert_gluon')) and REPO_ROOT not in sys.path:
    sys.path.insert(1, REPO_ROOT)

import kobert_gluon  # noqa: E402,F401  (first: it sets thread defaults and patches gluonnlp's sentencepiece call)
import gluonnlp as nlp  # noqa: E402
import sentencepiece as spm  # noqa: E402

from kobert_gluon import TokenIds, get_bert_tokenizer, get_vocab, read_table  # noqa: E402

SPIECE = os.path.join('kobert', 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
EMOTION = os.path.join('data', 'emotion', 'single_turn_emotion.xlsx')
MAX_LEN = 64
UNTRUNCATED = 100_000
SPIECE_UNDERLINE = '\u2581'
CLS, SEP, UNK = 2, 3, 0


def ours(path, texts):
    vocab = get_vocab(path)
    transform = nlp.data.BERTSentenceTransform(get_bert_tokenizer(path, vocab), max_seq_length=UNTRUNCATED,
                                               pad=False, pair=False)
    return [transform([text])[0].tolist() for text in texts]


def token_ids(path, texts):
    encoder = TokenIds(path, get_vocab(path).idx_to_token)
    return [encoder.encode(text) for text in texts]


def skt_pieces(processor, text):
    """kobert_tokenizer.KoBERTTokenizer._tokenize with XLNetTokenizer.preprocess_text (transformers 4.x)."""
    text = ' '.join(text.strip().split()).replace('``', '"').replace("''", '"')
    text = ''.join(c for c in unicodedata.normalize('NFKD', text) if not unicodedata.combining(c))
    pieces = []
    for piece in processor.encode(text, out_type=str):
        if len(piece) > 1 and piece[-1] == ',' and piece[-2].isdigit():
            split = processor.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ''))
            if piece[0] != SPIECE_UNDERLINE and split[0][0] == SPIECE_UNDERLINE:
                split = split[1:] if len(split[0]) == 1 else [split[0][1:]] + split[1:]
            pieces += split + [piece[-1]]
        else:
            pieces.append(piece)
    return pieces


def skt_kobert(path, texts):
    processor = spm.SentencePieceProcessor(model_file=path)
    return [[CLS] + [processor.piece_to_id(p) for p in skt_pieces(processor, text)] + [SEP] for text in texts]


def digit_comma_sentences(path, texts):
    """Sentences where SKT's code takes the digit-comma branch (it names an undefined SPIECE_UNDERLINE there)."""
    processor = spm.SentencePieceProcessor(model_file=path)
    return sum(any(len(p) > 1 and p[-1] == ',' and p[-2].isdigit() for p in processor.encode(
        ''.join(c for c in unicodedata.normalize('NFKD', ' '.join(t.split())) if not unicodedata.combining(c)),
        out_type=str)) for t in texts)


def transformers_xlnet(path, texts):
    from transformers import XLNetTokenizer

    with tempfile.TemporaryDirectory() as directory:
        shutil.copyfile(path, os.path.join(directory, 'spiece.model'))
        tokenizer = XLNetTokenizer.from_pretrained(directory, bos_token='[CLS]', eos_token='[SEP]', unk_token='[UNK]',
                                                   sep_token='[SEP]', pad_token='[PAD]', cls_token='[CLS]',
                                                   mask_token='[MASK]')
    return [[CLS] + ids + [SEP] for ids in tokenizer(texts, add_special_tokens=False)['input_ids']]


def cut(ids, max_len):
    return ids[:max_len - 1] + [SEP] if len(ids) > max_len else ids


def compare(name, ids, baseline, seconds):
    different = sum(a != b for a, b in zip(ids, baseline))
    different_cut = sum(cut(a, MAX_LEN) != cut(b, MAX_LEN) for a, b in zip(ids, baseline))
    with_unk = sum(UNK in a for a in ids)
    return {'tokenizer': name, 'sentences_different': different, f'different_at_max_len_{MAX_LEN}': different_cut,
            'sentences_with_unk': with_unk, 'seconds': round(seconds, 2)}


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--shared', default=os.environ.get('KOBERT_GLUON_SHARED', os.path.join(REPO_ROOT, '..', 'shared')))
    parser.add_argument('--limit', type=int, help='first N sentences only (a quick look)')
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    path = os.path.join(args.shared, SPIECE)
    texts = list(read_table(os.path.join(args.shared, EMOTION), 'Sentence')['Sentence'])[:args.limit]
    baseline, baseline_seconds = timed(ours, path, texts)
    rows = [compare('gluonnlp BERTSPTokenizer (ours, baseline)', baseline, baseline, baseline_seconds)]
    for name, function in (('TokenIds (kobert_gluon.interop.transformers)', token_ids),
                           ('KoBERTTokenizer (SKT, transformers 4.x)', skt_kobert),
                           ('XLNetTokenizer (transformers 5.24)', transformers_xlnet)):
        ids, seconds = timed(function, path, texts)
        rows.append(compare(name, ids, baseline, seconds))
    print(f'{len(texts)} emotion sentences; ids compared with ours ([CLS] ... [SEP])\n')
    print(f'| tokenizer | sentences with different ids | at max_len {MAX_LEN} | with [UNK] | seconds |')
    print('|---|---:|---:|---:|---:|')
    for row in rows:
        print(f"| {row['tokenizer']} | {row['sentences_different']} | {row[f'different_at_max_len_{MAX_LEN}']} | "
              f"{row['sentences_with_unk']} | {row['seconds']} |")
    digit_comma = digit_comma_sentences(path, texts)
    print(f'\nsentences where SKT\'s digit-comma branch runs: {digit_comma}')
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as out:
            json.dump({'sentences': len(texts), 'rows': rows, 'digit_comma_sentences': digit_comma}, out, indent=2)
    return 0 if rows[1]['sentences_different'] == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
