"""Exports load with plain mxnet (no kobert_gluon) and give the classifier's logits."""
import json
import os
import subprocess
import sys
import warnings

import mxnet as mx
import numpy as np
import pytest
from hangguard import hang_guard

import kobert_gluon
from kobert_gluon.assets import md5sum
from kobert_gluon.inference.export import EXPORT_FILE, export, sample_inputs

INPUT_NAMES = ['data0', 'data1', 'data2']
# Other lengths than export() traces with, so a graph fixed to one shape would fail.
TEXTS = ['배송이 빨라서 좋았어요', '', '😀 漢字 KoBERT 123', '정말 최고의 영화였습니다 ' * 100]

# Runs in a fresh interpreter as a server would: only mxnet and numpy, files named by export.json.
SERVER = r'''
import json, sys
import mxnet as mx
import numpy as np

manifest = json.load(open('export/export.json', encoding='utf-8'))
names = [entry['name'] for entry in manifest['inputs']]
net = mx.gluon.SymbolBlock.imports('export/' + manifest['symbol'], names, 'export/' + manifest['params'])
inputs = np.load('inputs.npz')
arrays = [mx.nd.array(inputs[entry['role']], dtype=entry['dtype']) for entry in manifest['inputs']]
np.save('logits.npy', net(*arrays).asnumpy())
print(json.dumps({'kobert_gluon_imported': 'kobert_gluon' in sys.modules}))
'''


def server_env():
    """The environment without PYTHONPATH and without what kobert_gluon set at import time."""
    env = {name: value for name, value in os.environ.items()
           if name != 'PYTHONPATH' and name not in kobert_gluon.CPU_DEFAULTS}
    env['PYTHONNOUSERSITE'] = '1'
    return env


def import_exported(paths):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # "Cannot decide type" until the first call
        return mx.gluon.SymbolBlock.imports(paths['symbol'], INPUT_NAMES, paths['params'])


def test_export_holds_graph_params_manifest_and_tokenizer(demo_model_dir, demo_classifier, tmp_path):
    paths = export(demo_model_dir, tmp_path / 'export')

    for role in ('symbol', 'params', 'manifest', 'tokenizer', 'vocab_json'):
        assert os.path.isfile(paths[role]), role
    assert os.path.basename(paths['symbol']) == 'model-symbol.json'
    assert os.path.basename(paths['params']) == 'model-0000.params'
    manifest = json.loads((tmp_path / 'export' / EXPORT_FILE).read_text(encoding='utf-8'))
    assert [entry['name'] for entry in manifest['inputs']] == INPUT_NAMES
    assert [entry['role'] for entry in manifest['inputs']] == ['token_ids', 'segment_ids', 'valid_length']
    assert {entry['dtype'] for entry in manifest['inputs']} == {'int32'}
    assert manifest['max_len'] == demo_classifier.max_len
    assert manifest['labels'] == demo_classifier.label_map.names
    vocab = demo_classifier.tokenizer.vocab
    assert manifest['special_tokens']['[PAD]'] == vocab[vocab.padding_token]
    original = demo_classifier.tokenizer_files['tokenizer']
    assert md5sum(paths['tokenizer']) == md5sum(original) == manifest['tokenizer']['tokenizer']['md5']
    exported_vocab = json.loads(open(paths['vocab_json'], encoding='utf-8').read())
    assert exported_vocab['idx_to_token'] == vocab.idx_to_token
    # Written atomically: nothing but the export itself is left beside it.
    assert os.listdir(tmp_path) == ['export']


def test_exported_graph_gives_the_same_logits_without_kobert_gluon(demo_model_dir, demo_classifier, tmp_path):
    export(str(demo_model_dir), tmp_path / 'export')
    token_ids, segment_ids, valid_length = sample_inputs(demo_classifier, TEXTS)
    np.savez(tmp_path / 'inputs.npz', token_ids=token_ids, segment_ids=segment_ids, valid_length=valid_length)

    server = subprocess.run([sys.executable, '-c', SERVER], cwd=tmp_path, env=server_env(),
                            capture_output=True, text=True, timeout=hang_guard(60))

    assert server.returncode == 0, server.stderr
    assert json.loads(server.stdout.strip().splitlines()[-1]) == {'kobert_gluon_imported': False}
    np.testing.assert_allclose(np.load(tmp_path / 'logits.npy'), demo_classifier.logits(TEXTS),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize('dtype', ['int32', 'float32'])
def test_exported_in_memory_classifier_accepts_int32_and_float32(demo_run, tmp_path, dtype):
    classifier = demo_run.classifier
    net = import_exported(export(classifier, tmp_path / 'export'))

    inputs = [mx.nd.array(array, dtype=dtype) for array in sample_inputs(classifier, TEXTS)]

    np.testing.assert_allclose(net(*inputs).asnumpy(), classifier.logits(TEXTS), rtol=0, atol=1e-5)


def test_export_replaces_a_previous_export_but_not_other_directories(demo_classifier, tmp_path):
    target = tmp_path / 'export'
    export(demo_classifier, target)
    export(demo_classifier, target, name='classifier')
    assert (target / 'classifier-symbol.json').is_file()
    assert not (target / 'model-symbol.json').exists()

    precious = tmp_path / 'precious'
    precious.mkdir()
    (precious / 'notes.txt').write_text('keep me', encoding='utf-8')
    with pytest.raises(ValueError, match='refusing to replace'):
        export(demo_classifier, precious)
    assert os.listdir(precious) == ['notes.txt']


@pytest.mark.parametrize('name', ['', '..', 'sub/model'])
def test_export_name_must_be_a_plain_prefix(demo_classifier, tmp_path, name):
    with pytest.raises(ValueError, match='plain file name prefix'):
        export(demo_classifier, tmp_path / 'export', name=name)
