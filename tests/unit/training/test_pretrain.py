"""Pretraining: BERT's masking, the streamed and sharded corpus, the training loop, its outputs."""
import dataclasses
import json
import logging
import os
import shlex
import signal
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from kobert_gluon import cli, fileio

from kobert_gluon.text import corpus

from kobert_gluon.models import pretrained
from kobert_gluon.training import masking, pretrain
from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.bert import get_mxnet_kobert_model
from kobert_gluon.training.masking import make_batch, mask_tokens, word_start_table
from kobert_gluon.text.tokenizer import get_bert_tokenizer, get_vocab

from helpers import interrupt_cli, tiny_pretrain_config

VOCAB_SIZE = 8002
MASK_ID, CLS_ID, SEP_ID, PAD_ID = 4, 2, 3, 1
TINY = {'num_layers': 1, 'units': 32, 'hidden_size': 64, 'num_heads': 2}


# ---------------------------------------------------------------------------- masking

def test_masked_share_and_80_10_10_split_and_specials_untouched():
    rng = np.random.default_rng(0)
    data_rng = np.random.RandomState(1)
    chosen = kept = replaced_by_mask = randomised = candidates = 0
    for _ in range(300):
        length = data_rng.randint(60, 100)
        tokens = np.concatenate([[CLS_ID], data_rng.randint(5, VOCAB_SIZE, length - 2), [SEP_ID],
                                 [PAD_ID] * (100 - length)])
        tokens[data_rng.randint(1, length - 1, 3)] = 0  # [UNK]s inside the sentence
        masked, positions, labels = mask_tokens(tokens, rng, VOCAB_SIZE, 0.15, max_predictions=100)
        ordinary = tokens >= 5
        assert ordinary[positions].all()
        np.testing.assert_array_equal(masked[~ordinary], tokens[~ordinary])  # specials and padding stay
        unchosen = np.setdiff1d(np.arange(len(tokens)), positions)
        np.testing.assert_array_equal(masked[unchosen], tokens[unchosen])
        np.testing.assert_array_equal(labels, tokens[positions])
        assert len(positions) == round(ordinary.sum() * 0.15)
        candidates += ordinary.sum()
        chosen += len(positions)
        replaced_by_mask += (masked[positions] == MASK_ID).sum()
        kept += (masked[positions] == labels).sum()
        randomised += ((masked[positions] != MASK_ID) & (masked[positions] != labels)).sum()
        assert (masked[positions] >= 4).all()  # random replacements are never specials other than [MASK]
    assert abs(chosen / candidates - 0.15) < 0.005
    assert abs(replaced_by_mask / chosen - 0.8) < 0.03
    assert abs(kept / chosen - 0.1) < 0.02
    assert abs(randomised / chosen - 0.1) < 0.02


def test_whole_word_masking_masks_whole_words(kobert_spiece, nsmc_lines):
    vocab = get_vocab(kobert_spiece)
    tokenizer = get_bert_tokenizer(kobert_spiece, vocab)
    starts = word_start_table(vocab)
    rng = np.random.default_rng(3)
    multi_piece_words_masked = 0
    for text in nsmc_lines[:200]:
        pieces = tokenizer(text)
        tokens = np.array([CLS_ID] + vocab[pieces] + [SEP_ID])
        _, positions, _ = mask_tokens(tokens, rng, len(vocab), 0.15, 20, word_starts=starts)
        # words from the piece strings: a word begins at every '▁' piece
        words, word = [], []
        for position, piece in enumerate(pieces, start=1):
            if piece.startswith('▁') and word:
                words.append(word)
                word = []
            if vocab[piece] >= 5:  # an [UNK] piece is never masked
                word.append(position)
        words.append(word)
        chosen = set(positions.tolist())
        for word in words:
            hit = chosen & set(word)
            assert not hit or hit == set(word), (text, pieces, word, sorted(chosen))
            multi_piece_words_masked += bool(hit) and len(word) > 1
    assert multi_piece_words_masked > 20


def test_batches_never_mask_padding_or_specials(corpus_file, kobert_spiece, tmp_path):
    config = tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path)
    vocab = get_vocab(kobert_spiece)
    stream = masking.BatchStream(config, kobert_spiece, vocab)({'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0})
    for _ in range(10):
        batch, _ = next(stream)
        for row in range(len(batch['token_ids'])):
            valid = int(batch['valid_length'][row])
            used = batch['masked_weights'][row] > 0
            positions = batch['masked_positions'][row][used]
            assert ((positions > 0) & (positions < valid - 1)).all()  # not [CLS], [SEP] or padding
            assert (batch['token_ids'][row, valid:] == PAD_ID).all()
            assert batch['token_ids'][row, 0] == CLS_ID and batch['token_ids'][row, valid - 1] == SEP_ID
            assert (batch['masked_ids'][row][used] >= 5).all()
    stream.close()


def test_make_batch_pads_to_a_multiple_of_eight():
    examples = [(np.array([CLS_ID] + list(range(10, 10 + n)) + [SEP_ID]), np.zeros(n + 2, 'int32'), 0)
                for n in (3, 11)]
    batch = make_batch(examples, np.random.default_rng(0), VOCAB_SIZE, PAD_ID, 0.15, 20, None)
    assert batch['token_ids'].shape == (2, 16)
    np.testing.assert_array_equal(batch['valid_length'], [5, 13])


# ---------------------------------------------------------------------------- corpus: sharding, streaming

def physical_lines(path):
    return path.read_text(encoding='utf-8').split('\n')[:-1]


def test_sharding_is_disjoint_covering_and_by_line_number(tmp_path):
    lines = [f'문장 {i}' if i % 7 else '' for i in range(103)]
    path = tmp_path / 'c.txt'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    seen = []
    for rank in range(3):
        units = [u for chunk in corpus.read_chunks(str(path), 10, rank, 3) for u in chunk.units]
        assert units == [line for i, line in enumerate(lines) if line and i % 3 == rank]
        seen += units
    assert sorted(seen) == sorted(line for line in lines if line)


def test_documents_are_dealt_whole_and_chunks_restart_exactly(tmp_path):
    documents = [[f'문서{d} 문장{s}' for s in range(1 + d % 4)] for d in range(40)]
    path = tmp_path / 'docs.txt'
    path.write_text('\n\n'.join('\n'.join(doc) for doc in documents) + '\n', encoding='utf-8')
    for rank in range(2):
        chunks = list(corpus.read_chunks(str(path), 5, rank, 2, documents=True))
        assert [u for chunk in chunks for u in chunk.units] == documents[rank::2]
        for index, chunk in enumerate(chunks):  # each chunk's start re-reads it and what follows
            again = list(corpus.read_chunks(str(path), 5, rank, 2, documents=True, start=chunk.start))
            assert [c.units for c in again] == [c.units for c in chunks[index:]]


def test_tokenizing_in_workers_is_ordered_and_bounded(corpus_file, kobert_spiece):
    pulled = []

    def chunks():
        for chunk in corpus.read_chunks(str(corpus_file), 16):
            pulled.append(chunk)
            yield chunk
    in_process = [ids for _, ids in corpus.tokenized_chunks(corpus.read_chunks(str(corpus_file), 16),
                                                            kobert_spiece, 0)]
    consumed = 0
    for (chunk, ids), expected in zip(corpus.tokenized_chunks(chunks(), kobert_spiece, 2), in_process):
        consumed += 1
        # never more chunks read ahead than the workers' queue holds
        assert len(pulled) - consumed < 2 * corpus.IN_FLIGHT_PER_PROCESS
        assert len(ids) == len(expected) and all(np.array_equal(a, b) for a, b in zip(ids, expected))
    assert consumed == len(in_process) > 10


def test_streaming_a_large_corpus_keeps_memory_bounded(tmp_path, nsmc_lines):
    path = tmp_path / 'large.txt'
    block = ('\n'.join(nsmc_lines) + '\n').encode('utf-8')
    with open(path, 'wb') as out:
        for _ in range(60 * 2 ** 20 // len(block) + 1):
            out.write(block)
    # VmHWM is this process's own peak; ru_maxrss would start at pytest's, carried over fork + exec.
    script = ('import sys\n'
              'from kobert_gluon.text.corpus import read_chunks\n'
              'def peak_kb():\n'
              '    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])\n'
              'before = peak_kb()\n'
              'lines = sum(len(c.units) for c in read_chunks(sys.argv[1], 2048))\n'
              'print(lines, peak_kb() - before)\n'
              'whole = open(sys.argv[1], "rb").read()\n'  # the control: what holding the file costs
              'print(len(whole), peak_kb() - before)\n')
    result = subprocess.run([sys.executable, '-c', script, str(path)], capture_output=True, text=True, check=True)
    (lines, growth_kb), (size, control_kb) = [map(int, line.split()) for line in result.stdout.splitlines()]
    assert lines > 500000
    assert growth_kb < 30 * 1024, f'peak RSS grew {growth_kb / 1024:.0f} MB reading a 60 MB corpus'
    assert control_kb > size / 1024 * 0.9  # the measurement does see a file held in memory


# ---------------------------------------------------------------------------- training

def read_params(path):
    return {name: array.asnumpy() for name, array in mx.nd.load(str(path)).items()}


def test_mlm_loss_falls(corpus_file, kobert_spiece, tmp_path):
    config = tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path, num_steps=40, batch_size=16, log_interval=10,
                         save_every=100, warmup_ratio=0.0)
    pretrain.pretrain(config)
    history = json.loads((tmp_path / 'pretrain.json').read_text())['history']
    losses = [entry['mlm_loss'] for entry in history]
    assert losses[0] > np.log(VOCAB_SIZE) - 1  # starts near chance
    assert losses[-1] < losses[0] - 1.5, losses


def test_resume_of_a_killed_run_equals_an_uninterrupted_one(corpus_file, kobert_spiece, tmp_path, monkeypatch):
    settings = dict(whole_word_mask=True, num_steps=12, save_every=5)
    pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'straight', num_procs=2, **settings))

    original = pretrain.save_checkpoint

    def killed_after_first_checkpoint(*args):
        original(*args)
        raise KeyboardInterrupt
    monkeypatch.setattr(pretrain, 'save_checkpoint', killed_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'killed', **settings))
    assert json.loads((tmp_path / 'killed' / 'last' / 'state.json').read_text())['step'] == 5
    monkeypatch.setattr(pretrain, 'save_checkpoint', original)
    pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'killed', resume=True, **settings))

    straight, resumed = read_params(tmp_path / 'straight' / 'bert.params'), read_params(tmp_path / 'killed' / 'bert.params')
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    histories = [json.loads((tmp_path / run / 'pretrain.json').read_text())['history'] for run in ('straight', 'killed')]
    assert [h['mlm_loss'] for h in histories[0]] == [h['mlm_loss'] for h in histories[1]]


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_the_last_step_and_the_printed_command_finishes_it_exactly(
        corpus_file, kobert_spiece, tmp_path, signum):
    settings = dict(num_steps=150, save_every=1000, log_interval=1)  # no checkpoint before the end
    pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'straight', **settings))
    config = tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'run', **settings)
    flags = [f'--{name}={value}' for name, value in dataclasses.asdict(config).items()
             if value is not None and not isinstance(value, bool)]
    err, command = interrupt_cli(['pretrain', *flags], 'step 20/150', signum)
    state = json.loads((tmp_path / 'run' / 'last' / 'state.json').read_text())
    assert 20 <= state['step'] < 150
    assert f"interrupted: saved a checkpoint in {tmp_path / 'run' / 'last'} (step {state['step']})" in err
    assert command == f"kobert-gluon pretrain --output_dir {tmp_path / 'run'} --resume"

    assert cli.main(shlex.split(command)[1:]) == 0  # its settings come from the run's pretrain_config.json
    straight, resumed = read_params(tmp_path / 'straight' / 'bert.params'), read_params(tmp_path / 'run' / 'bert.params')
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_a_crash_while_last_is_replaced_resumes_from_the_newest_complete_checkpoint(corpus_file, kobert_spiece,
                                                                                    tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    settings = dict(num_steps=12, save_every=5)
    pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'straight', **settings))
    original_replace = os.replace

    def crash_between_renames(source, target):
        original_replace(source, target)
        if str(target).endswith('last.old'):  # the step-10 checkpoint: last -> last.old done, tmp -> last not
            raise KeyboardInterrupt('killed between the two renames')
    with monkeypatch.context() as patch:
        patch.setattr(fileio.os, 'replace', crash_between_renames)
        with pytest.raises(KeyboardInterrupt):
            pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'killed', **settings))
    assert not (tmp_path / 'killed' / 'last').exists() and (tmp_path / 'killed' / 'last.old').is_dir()

    caplog.clear()
    pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'killed', resume=True, **settings))
    # The interrupted write removed its own temporary copy, so last.old (step 5) is the newest
    # complete checkpoint; before, a resume found no last/ and silently started at step 0.
    assert 'last.old (the newest complete checkpoint)' in caplog.text and 'at step 5' in caplog.text
    assert sorted(os.listdir(tmp_path / 'killed' / 'last')) == sorted(os.listdir(tmp_path / 'straight' / 'last'))
    straight, resumed = read_params(tmp_path / 'straight' / 'bert.params'), read_params(tmp_path / 'killed' / 'bert.params')
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)


def test_continued_pretraining_round_trips(corpus_file, kobert_spiece, kobert_dir, tmp_path, caplog):
    import gluonnlp as nlp
    from kobert_gluon.training.config import TrainConfig
    from kobert_gluon.training.finetune import prepare_model, start_from

    # An encoder-only BERT in bert_12_768_12 layout, built and saved by gluonnlp itself.
    small = BertConfig.small()
    encoder = nlp.model.BERTEncoder(num_layers=small.num_layers, units=small.units, hidden_size=small.hidden_size,
                                    max_length=small.max_length, num_heads=small.num_heads, dropout=0.1,
                                    output_attention=False, output_all_encodings=False)
    start = nlp.model.BERTModel(encoder, VOCAB_SIZE, token_type_vocab_size=2, units=small.units,
                                embed_size=small.units, use_pooler=True, use_decoder=False, use_classifier=False)
    start.initialize(mx.init.Normal(0.02))
    start(mx.nd.array([[2, 100, 3]]), mx.nd.zeros((1, 3)), mx.nd.array([3]))  # shapes are inferred here
    start.save_parameters(str(tmp_path / 'start.params'))
    initial = read_params(tmp_path / 'start.params')

    caplog.set_level(logging.INFO, logger='kobert_gluon')
    config = tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'run', init_from=str(tmp_path / 'start.params'),
                         num_steps=3, next_sentence=False, **{k: None for k in TINY})
    params_path = pretrain.pretrain(config)
    saved = read_params(params_path)
    assert saved.keys() >= initial.keys() and any(k.startswith('decoder.') for k in saved)
    assert any(not np.array_equal(saved[k], initial[k]) for k in initial)  # it did train

    record = json.loads((tmp_path / 'run' / 'pretrain.json').read_text())
    assert record['bert'] == small.to_dict() and record['init_from']['file'] == 'start.params'
    started_heads = [r.getMessage() for r in caplog.records if 'start from random weights' in r.getMessage()]
    assert len(started_heads) == 1 and 'decoder.0.weight' in started_heads[0]
    assert 'decoder.3.weight' not in started_heads[0]  # tied to the embedding, which the file has
    caplog.clear()
    pretrain.build_pretraining_model(small, mx.cpu(), params_path)  # a pretrain result has every head
    assert not [r for r in caplog.records if 'start from random weights' in r.getMessage()]
    vocab = get_vocab(kobert_spiece)
    model, _ = get_mxnet_kobert_model(model_file=params_path, config=BertConfig(**record['bert']), vocab=vocab)
    for name, param in model._collect_params_with_prefix().items():
        stored = 'word_embed.0.weight' if name == 'decoder.3.weight' else name  # tied, stored once
        np.testing.assert_array_equal(param.data().asnumpy(), saved[stored], err_msg=name)

    config = TrainConfig(bert='small', init_from=params_path, kobert_dir=str(kobert_dir))
    classifier = prepare_model(config, BertConfig(**record['bert']), 2, [mx.cpu()], start_from(config)[0])
    for name, param in classifier.bert._collect_params_with_prefix().items():
        np.testing.assert_array_equal(param.data().asnumpy(), saved[name], err_msg=name)


def test_next_sentence_pairs_from_documents(kobert_spiece, nsmc_lines, tmp_path):
    path = tmp_path / 'docs.txt'
    path.write_text('\n\n'.join('\n'.join(nsmc_lines[i:i + 4]) for i in range(0, 200, 4)) + '\n', encoding='utf-8')
    config = tiny_pretrain_config(path, kobert_spiece, tmp_path / 'nsp', next_sentence=True, num_steps=4)
    stream = masking.BatchStream(config, kobert_spiece, get_vocab(kobert_spiece))(
        {'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0})
    labels = []
    for _ in range(6):
        batch, _ = next(stream)
        labels += batch['next_sentence'].tolist()
        for row in range(len(batch['token_ids'])):
            valid = int(batch['valid_length'][row])
            assert (batch['token_ids'][row, :valid] == SEP_ID).sum() == 2
            first_sep = list(batch['token_ids'][row]).index(SEP_ID)
            np.testing.assert_array_equal(batch['segment_ids'][row, :valid],
                                          [0] * (first_sep + 1) + [1] * (valid - first_sep - 1))
    stream.close()
    assert 0.3 < np.mean(labels) < 0.7
    pretrain.pretrain(config)
    assert json.loads((tmp_path / 'nsp' / 'pretrain.json').read_text())['history'][-1]['nsp_loss'] > 0


# ---------------------------------------------------------------------------- CLI

def test_cli_pretrains_and_reports_bad_corpus_in_one_line(corpus_file, kobert_spiece, tmp_path, capsys):
    flags = ['--num_layers', '1', '--units', '32', '--hidden-size', '64', '--num_heads', '2']
    code = cli.main(['pretrain', '--corpus', str(corpus_file), '--output_dir', str(tmp_path / 'cli'),
                     '--tokenizer', kobert_spiece, '--num_steps', '2', '--batch_size', '4', '--max_len', '32',
                     '--num_procs', '0', '--ctx', 'cpu', '--save_dtype', 'float16', *flags])
    out = capsys.readouterr().out
    assert code == 0 and out.strip() == str(tmp_path / 'cli' / 'bert.params')
    assert {a.dtype for a in mx.nd.load(out.strip()).values()} == {np.float16}
    record = json.loads((tmp_path / 'cli' / 'pretrain.json').read_text())
    assert record['steps'] == 2 and '--save_dtype float16' in record['command']

    missing = tmp_path / 'no-such.txt'
    code = cli.main(['pretrain', '--corpus', str(missing), '--output_dir', str(tmp_path / 'bad')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(missing) in err[0] and err[0].startswith('kobert-gluon: error:')

    before = (tmp_path / 'cli' / 'bert.params').read_bytes()
    code = cli.main(['pretrain', '--corpus', str(corpus_file), '--output_dir', str(tmp_path / 'cli'),
                     '--tokenizer', kobert_spiece, '--num_steps', '1', '--ctx', 'cpu', *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and 'already holds a run' in err[-1]
    assert (tmp_path / 'cli' / 'bert.params').read_bytes() == before


def test_fine_tuning_from_a_pretrain_result_brings_its_tokenizer_and_size(corpus_file, nsmc_lines, tmp_path):
    from kobert_gluon.assets import md5sum
    from kobert_gluon.training.config import TrainConfig
    from kobert_gluon.training.finetune import train

    # own tokenizer trained on the corpus, and a size that is not BertConfig.small()
    config = tiny_pretrain_config(corpus_file, 'train', tmp_path / 'pre', tokenizer_vocab_size=600, num_steps=2)
    params_path = pretrain.pretrain(config)
    record = json.loads((tmp_path / 'pre' / 'pretrain.json').read_text())
    labeled = tmp_path / 'labeled.tsv'
    labeled.write_text('text\tlabel\n' + ''.join(f'{text}\t{i % 2}\n' for i, text in enumerate(nsmc_lines[:60])),
                       encoding='utf-8')
    classifier = train(TrainConfig(data=str(labeled), bert='small', init_from=params_path, num_epochs=1,
                                   max_len=32, valid_size=0.0, ctx='cpu', output_dir=str(tmp_path / 'fine')))
    assert classifier.bert_config.to_dict() == record['bert'] and record['bert']['units'] == TINY['units']
    assert md5sum(classifier.tokenizer_files['tokenizer']) == record['tokenizer']['md5']
    assert len(classifier.tokenizer.vocab) == record['bert']['vocab_size'] < VOCAB_SIZE

    # a record that no longer matches its files is refused, naming the file
    with open(params_path, 'ab') as params_file:
        params_file.write(b'x')
    with pytest.raises(ValueError, match='bert.params: md5 differs'):
        pretrained.fine_tuning_start(params_path)

    # the record names its tokenizer; a name leading out of tokenizer/ is refused, not read
    record_path = os.path.join(os.path.dirname(params_path), 'pretrain.json')
    with open(record_path, encoding='utf-8') as source:
        tampered = json.load(source)
    tampered['tokenizer']['file'] = '../../outside.spiece'
    with open(record_path, 'w', encoding='utf-8') as target:
        json.dump(tampered, target)
    with pytest.raises(ValueError, match='pretrain.json: tokenizer file .* refusing to read outside'):
        pretrained.fine_tuning_start(params_path)


def test_demo_starts_from_a_shipped_checkpoint_only_when_one_is_shipped(corpus_file, kobert_spiece, tmp_path,
                                                                        monkeypatch):
    monkeypatch.delenv('KOBERT_GLUON_NO_PACKAGED')  # conftest turns the packaged files off
    absent = tmp_path / 'absent' / 'bert.params'
    monkeypatch.setattr(pretrained, 'shipped_params', lambda: str(absent))
    assert pretrained.fine_tuning_start(None, shipped=True) == (None, None)  # nothing shipped: random weights

    shipped = pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'shipped', num_steps=1))
    monkeypatch.setattr(pretrained, 'shipped_params', lambda: shipped)
    params, record = pretrained.fine_tuning_start(None, shipped=True)
    assert params == shipped and record['steps'] == 1
    assert pretrained.fine_tuning_start("none", shipped=True) == (None, None)
    assert pretrained.fine_tuning_start(None, shipped=False) == (None, None)  # runs with data: KoBERT's or none
    monkeypatch.setenv('KOBERT_GLUON_NO_PACKAGED', '1')
    assert pretrained.fine_tuning_start(None, shipped=True) == (None, None)  # packaged files turned off


def test_zero_steps_saves_the_initial_weights_with_the_tokenizer(corpus_file, kobert_spiece, tmp_path):
    params_path = pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path, num_steps=0, seed=5))
    again = pretrain.pretrain(tiny_pretrain_config(corpus_file, kobert_spiece, tmp_path / 'again', num_steps=0, seed=5))
    first, second = read_params(params_path), read_params(again)
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    weights = first['word_embed.0.weight']
    assert weights.shape == (VOCAB_SIZE, TINY['units']) and abs(weights.std() - 0.02) < 0.002


def test_split_lines_pairs_cut_each_line_in_two(kobert_spiece):
    rng = np.random.default_rng(0)
    lines = [np.arange(100 + 10 * i, 100 + 10 * i + 3 + i % 7, dtype=np.int32) for i in range(200)]
    examples = list(masking.split_line_examples(lines, 64, CLS_ID, SEP_ID, rng))
    assert len(examples) == len(lines)
    labels = [label for _, _, label in examples]
    assert 0.4 < np.mean(labels) < 0.6
    for line, (tokens, segments, label) in zip(lines, examples):
        first_sep = list(tokens).index(SEP_ID)
        first, second = tokens[1:first_sep], tokens[first_sep + 1:-1]
        assert len(first) >= 1 and len(second) >= 1 and (segments == (np.arange(len(tokens)) > first_sep)).all()
        np.testing.assert_array_equal(first, line[:len(first)])
        continues = np.array_equal(second, line[len(first):])
        assert continues == (label == masking.NOT_NEXT)  # a random second part never continues the line
