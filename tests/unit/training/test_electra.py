"""ELECTRA pretraining (replaced-token detection), sentence-order pairs and the CPU-time limit."""
import json

import mxnet as mx
import numpy as np
import pytest

from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.electra import build_electra_extras
from kobert_gluon.training import electra, mlm_eval, pretrain
from kobert_gluon.training.config import PretrainConfig
from kobert_gluon.training.masking import NOT_NEXT, SWAPPED, make_batch, sentence_order_examples

from helpers import tiny_pretrain_config

VOCAB_SIZE = 8002
CLS_ID, SEP_ID, PAD_ID = 2, 3, 1
TINY = {'num_layers': 1, 'units': 32, 'hidden_size': 64, 'num_heads': 2}


def electra_config(corpus_file, kobert_spiece, output_dir, **overrides):
    return tiny_pretrain_config(corpus_file, kobert_spiece, output_dir,
                                **{'objective': 'electra', 'generator_size': 0.5, **overrides})


def random_batch(rng, rows=6):
    examples = []
    for _ in range(rows):
        tokens = np.concatenate([[CLS_ID], rng.integers(5, VOCAB_SIZE, size=rng.integers(4, 20)), [SEP_ID]])
        examples.append((tokens, np.zeros(len(tokens), dtype=np.int32), 0))
    return make_batch(examples, rng, VOCAB_SIZE, PAD_ID, 0.3, 20, None)


def test_replaced_token_labels_are_drawn_ids_differing_from_the_originals():
    rng = np.random.default_rng(0)
    batch = random_batch(rng)
    # the drawn ids: the original piece at every other masked slot, another piece elsewhere
    sampled = np.where(np.arange(batch['masked_ids'].size).reshape(batch['masked_ids'].shape) % 2 == 0,
                       batch['masked_ids'], rng.integers(5, VOCAB_SIZE, size=batch['masked_ids'].shape))
    replaced, labels = electra.replace_tokens(batch, sampled)
    for row in range(len(labels)):
        originals = batch['token_ids'][row].copy()
        expected_ids, expected_labels = originals.copy(), np.zeros(len(originals))
        for slot in range(batch['masked_weights'].shape[1]):
            if batch['masked_weights'][row, slot]:
                position, original = batch['masked_positions'][row, slot], batch['masked_ids'][row, slot]
                expected_ids[position] = sampled[row, slot]
                expected_labels[position] = float(sampled[row, slot] != original)
        np.testing.assert_array_equal(replaced[row], expected_ids)
        np.testing.assert_array_equal(labels[row], expected_labels)
    assert 0 < labels.sum() < (batch['masked_weights'] > 0).sum()  # a drawn original is not 'replaced'
    # the unmasked pieces of the discriminator's input are the original ones (not [MASK])
    assert not (replaced == 4).any()


def test_draws_follow_the_generators_distribution_and_never_a_special():
    logits = np.log(np.array([[5, 5, 5, 5, 5, 1, 2, 7]], dtype=np.float64))  # specials 0-4 would dominate
    rng = np.random.default_rng(1)
    draws = np.concatenate([electra.sample_replacements(np.repeat(logits, 1000, axis=0), rng) for _ in range(20)])
    assert draws.min() >= 5
    frequencies = np.bincount(draws, minlength=8)[5:] / len(draws)
    np.testing.assert_allclose(frequencies, np.array([1, 2, 7]) / 10, atol=0.01)


def build_pair(units=32):
    config = BertConfig(**{**BertConfig.small(vocab_size=VOCAB_SIZE).to_dict(), **TINY, 'max_length': 32, 'dropout': 0.0})
    disc = pretrain.build_pretraining_model(config, mx.cpu())
    return config, disc, build_electra_extras(disc, config, 0.5, mx.cpu())


def test_shared_embeddings_are_one_parameter_that_both_networks_train():
    config, disc, extras = build_pair()
    generator = extras.generator
    assert generator.word_weight is disc.word_embed[0].weight
    assert generator.position_weight is disc.encoder.position_weight
    assert generator.segment_weight is disc.token_type_embed[0].weight
    run_config = PretrainConfig(corpus=None, objective='electra')
    params, trainable = pretrain.trainable_parameters(run_config, disc, extras)
    words = [param for param in params.values() if param is disc.word_embed[0].weight]
    assert len(words) == 1 and sum(param is words[0] for param in trainable) == 1
    assert electra.extras_arrays(extras, disc) and not any(
        param is words[0] for param in electra.extras_arrays(extras, disc).values())

    batch = random_batch(np.random.default_rng(2))

    def word_gradient(part):
        mx.random.seed(7)  # the same dropout masks in each of the three passes
        with mx.autograd.record():
            outputs = electra.forward(disc, extras, batch, mx.cpu(), np.random.default_rng(3))
            loss, rtd_loss = electra.electra_loss(outputs, mx.cpu(), 50.0)
            loss = {'generator': outputs['mlm_loss'], 'discriminator': 50.0 * rtd_loss, 'both': loss}[part]
        loss.backward()
        return words[0].grad().asnumpy().copy()
    from_generator, from_discriminator, from_both = (word_gradient(part) for part in
                                                     ('generator', 'discriminator', 'both'))
    assert np.abs(from_generator).sum() > 0 and np.abs(from_discriminator).sum() > 0
    np.testing.assert_allclose(from_both, from_generator + from_discriminator, rtol=1e-4, atol=1e-7)


def read_params(path):
    return {name: array.asnumpy() for name, array in mx.nd.load(str(path)).items()}


def test_electra_resume_of_a_killed_run_equals_an_uninterrupted_one(corpus_file, kobert_spiece, tmp_path, monkeypatch):
    pretrain.pretrain(electra_config(corpus_file, kobert_spiece, tmp_path / 'straight'))
    original = pretrain.save_checkpoint

    def killed_after_first_checkpoint(*args):
        original(*args)
        raise KeyboardInterrupt
    monkeypatch.setattr(pretrain, 'save_checkpoint', killed_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        pretrain.pretrain(electra_config(corpus_file, kobert_spiece, tmp_path / 'killed'))
    monkeypatch.setattr(pretrain, 'save_checkpoint', original)
    pretrain.pretrain(electra_config(corpus_file, kobert_spiece, tmp_path / 'killed', resume=True))
    for name in ('bert.params', electra.GENERATOR_FILE):
        straight, resumed = read_params(tmp_path / 'straight' / name), read_params(tmp_path / 'killed' / name)
        assert straight.keys() == resumed.keys() and straight
        for key in straight:
            np.testing.assert_array_equal(straight[key], resumed[key], err_msg=f'{name}: {key}')
    histories = [json.loads((tmp_path / run / 'pretrain.json').read_text())['history'] for run in ('straight', 'killed')]
    assert [h['rtd_loss'] for h in histories[0]] == [h['rtd_loss'] for h in histories[1]]


def test_electra_learns_and_its_bert_params_fine_tune(corpus_file, kobert_spiece, nsmc_lines, tmp_path):
    from kobert_gluon.training.config import TrainConfig
    from kobert_gluon.training.finetune import train
    config = electra_config(corpus_file, kobert_spiece, tmp_path / 'pre', num_steps=40, batch_size=16,
                            log_interval=10, save_every=100, warmup_ratio=0.0)
    params_path = pretrain.pretrain(config)
    record = json.loads((tmp_path / 'pre' / 'pretrain.json').read_text())
    history = record['history']
    assert record['objective'] == 'electra' and record['generator']['file'] == electra.GENERATOR_FILE
    assert history[-1]['rtd_loss'] < history[0]['rtd_loss'] and history[-1]['mlm_loss'] < history[0]['mlm_loss']
    assert 0 < history[-1]['replaced_share'] <= 1
    heldout = mlm_eval.evaluate_rtd(params_path, str(corpus_file))
    assert heldout['masked_pieces'] > 0 and 0 < heldout['replaced_share_of_positions'] < 1
    assert heldout['rtd_accuracy_always_original'] == pytest.approx(1 - heldout['replaced_share_of_positions'])
    assert 0 <= heldout['rtd_auc'] <= 1 and heldout['generator_mlm_loss'] < np.log(VOCAB_SIZE) + 1

    labeled = tmp_path / 'labeled.tsv'
    labeled.write_text('text\tlabel\n' + ''.join(f'{text}\t{i % 2}\n' for i, text in enumerate(nsmc_lines[:40])),
                       encoding='utf-8')
    classifier = train(TrainConfig(data=str(labeled), bert='small', init_from=params_path, num_epochs=1,
                                   max_len=32, valid_size=0.0, learning_rate=1e-12, ctx='cpu',
                                   output_dir=str(tmp_path / 'fine')))
    saved = read_params(params_path)
    loaded = {param.name: param.data().asnumpy() for param in classifier.model.bert.collect_params().values()}
    embedding = next(value for name, value in loaded.items() if name.endswith('word_embed_embedding0_weight'))
    np.testing.assert_allclose(embedding, saved['word_embed.0.weight'], atol=1e-6)


def test_sentence_order_pairs_are_the_two_parts_of_a_line_half_swapped():
    rng = np.random.default_rng(0)
    lines = [np.arange(10, 10 + n) for n in rng.integers(2, 12, size=400)]
    examples = list(sentence_order_examples(lines, 64, CLS_ID, SEP_ID, rng))
    assert len(examples) == len(lines)
    for ids, (tokens, segments, label) in zip(lines, examples):
        first, second = tokens[1:][segments[1:] == 0][:-1], tokens[segments == 1][:-1]
        assert len(first) and len(second)
        joined = np.concatenate([second, first] if label == SWAPPED else [first, second])
        np.testing.assert_array_equal(joined, ids)
    share = np.mean([label == SWAPPED for _, _, label in examples])
    assert 0.4 < share < 0.6 and {label for _, _, label in examples} == {NOT_NEXT, SWAPPED}


def test_max_cpu_seconds_stops_the_run_and_is_recorded(corpus_file, kobert_spiece, tmp_path):
    config = electra_config(corpus_file, kobert_spiece, tmp_path, objective='mlm', sentence_order=True,
                            num_steps=50, max_cpu_seconds=1e-6)
    pretrain.pretrain(config)
    record = json.loads((tmp_path / 'pretrain.json').read_text())
    assert record['steps'] == 1 and record['stopped_by'] == 'max_cpu_seconds' and record['cpu_seconds'] > 0
    assert record['history'][-1]['nsp_loss'] > 0  # the sentence-order head was trained


def test_rank_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    labels = rng.random(600) < 0.3
    scores = np.round(rng.normal(size=600), 1) + labels  # rounded: many ties
    assert mlm_eval.rank_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert mlm_eval.rank_auc(scores, np.zeros(600, dtype=bool)) is None
