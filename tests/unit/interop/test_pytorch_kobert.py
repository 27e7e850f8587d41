"""SKT's kobert.pytorch_kobert: get_pytorch_kobert_model / get_kobert_model convert the Gluon weights."""
import sys

import numpy as np
import pytest

CONVERT_EXTRA = 'the convert extra is not installed (bash scripts/install.sh convert)'
torch = pytest.importorskip('torch', reason=CONVERT_EXTRA)
transformers = pytest.importorskip('transformers', reason=CONVERT_EXTRA)

pytestmark = pytest.mark.extra

import mxnet as mx  # noqa: E402

from kobert_gluon.errors import MissingExtraError  # noqa: E402
from kobert_gluon.models.config import BertConfig  # noqa: E402

from helpers import save_random_bert

SMALL_GLUON = BertConfig(num_layers=2, units=64, hidden_size=128, num_heads=4, max_length=128)
SKT_INPUT = ([[31, 51, 99], [15, 5, 1]], [[1, 1, 1], [1, 1, 0]], [[0, 0, 1], [0, 1, 0]])  # SKT's __main__ example


@pytest.fixture(scope='module')
def small_params(tmp_path_factory):
    """Gluon weights in the bert_12_768_12 layout at a small size, KoBERT's vocab (8,002)."""
    return save_random_bert(SMALL_GLUON, tmp_path_factory.mktemp('small-bert') / 'small.params')


def gluon_pooled(small_params, kobert_dir):
    from kobert import get_mxnet_kobert_model

    bert, vocab = get_mxnet_kobert_model(use_decoder=False, use_classifier=False, model_file=str(small_params),
                                         kobert_dir=str(kobert_dir), config=SMALL_GLUON)
    ids, mask, segments = (np.array(a) for a in SKT_INPUT)
    sequence, pooled = bert(mx.nd.array(ids), mx.nd.array(segments), mx.nd.array(mask.sum(axis=1)))
    return sequence.asnumpy(), pooled.asnumpy(), vocab


def test_get_pytorch_kobert_model_matches_the_gluon_model(small_params, kobert_dir):
    from kobert import get_pytorch_kobert_model

    model, vocab = get_pytorch_kobert_model(ctx='cpu', model_file=str(small_params), kobert_dir=str(kobert_dir),
                                            config=SMALL_GLUON)
    assert isinstance(model, transformers.BertModel) and not model.training
    input_ids, input_mask, token_type_ids = (torch.LongTensor(a) for a in SKT_INPUT)
    with torch.no_grad():
        outputs = model(input_ids, input_mask, token_type_ids)  # SKT's positional call
    assert isinstance(outputs, tuple)  # return_dict=False, as SKT's v0.2.3
    sequence_output, pooled_output = outputs
    expected_sequence, expected_pooled, expected_vocab = gluon_pooled(small_params, kobert_dir)
    assert np.abs(pooled_output.numpy() - expected_pooled).max() < 1e-4
    mask = np.array(SKT_INPUT[1])[..., None]
    assert (np.abs(sequence_output.numpy() - expected_sequence) * mask).max() < 1e-4
    assert vocab.idx_to_token == expected_vocab.idx_to_token and len(vocab) == 8002


def test_get_kobert_model_v01_takes_a_transformers_folder_or_params(small_params, kobert_dir, tmp_path):
    from kobert.pytorch_kobert import get_kobert_model, get_pytorch_kobert_model

    spiece = kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece'
    model, _ = get_pytorch_kobert_model(model_file=str(small_params), kobert_dir=str(kobert_dir), config=SMALL_GLUON)
    model.save_pretrained(str(tmp_path / 'kobert_from_pretrained'))
    loaded, vocab = get_kobert_model(str(tmp_path / 'kobert_from_pretrained'), str(spiece))
    input_ids = torch.LongTensor(SKT_INPUT[0])
    with torch.no_grad():
        assert torch.equal(loaded(input_ids)[1], model(input_ids)[1])
    _, v01_vocab = get_kobert_model(str(tmp_path / 'kobert_from_pretrained'),
                                    str(kobert_dir / 'kobertvocab_f38b8a4d6d.json'))
    assert v01_vocab.idx_to_token == vocab.idx_to_token


def test_without_torch_one_error_names_the_extra(monkeypatch):
    from kobert import pytorch_kobert

    monkeypatch.setitem(sys.modules, 'torch', None)
    for call in (pytorch_kobert.get_pytorch_kobert_model, lambda: pytorch_kobert.get_kobert_model('m', 'v')):
        with pytest.raises(MissingExtraError, match=r'torch and transformers .*kobert_gluon\[convert\]'):
            call()
