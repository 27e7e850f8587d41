"""A token-classification model served: /predict answers entities in the pipeline's shape, the
OpenAPI document describes them, and the page highlights each entity with its type at 360 px."""
import json

import pytest

from test_serve import ServerProcess, chromium, need, save_screenshot  # noqa: F401 (chromium: a fixture)

SENTENCES = ['김민수씨는 어제 서울에서 3명을 만났다.', '  오늘 박철수가 부산으로 떠났다.']


@pytest.fixture(scope='module')
def ner_server(ner_run):
    need('fastapi'), need('uvicorn')
    process = ServerProcess(ner_run[1] / 'best')
    yield process
    process.stop()


def test_predict_answers_each_texts_entities_in_the_pipelines_shape(ner_server, ner_run):
    expected = ner_run[0].predict(SENTENCES)
    assert any(expected)
    records = ner_server.predict(SENTENCES)
    assert [r['text'] for r in records] == SENTENCES
    for record, entities in zip(records, expected):
        assert [{k: e[k] for k in ('entity_group', 'word', 'start', 'end')} for e in record['entities']] == \
            [{k: e[k] for k in ('entity_group', 'word', 'start', 'end')} for e in entities]
        assert [e['score'] for e in record['entities']] == pytest.approx([e['score'] for e in entities], abs=1e-5)
    status, answer = ner_server.post({'inputs': SENTENCES[0]})
    assert status == 200 and [[e['word'] for e in entities] for entities in answer] == \
        [[e['word'] for e in expected[0]]]
    assert ner_server.call('GET', '/metadata')[2]['task'] == 'token_classification'


def test_openapi_describes_the_entities(ner_server):
    schema = ner_server.call('GET', '/openapi.json')[2]
    entity = schema['components']['schemas']['EntityAnswer']
    assert set(entity['properties']) == {'entity_group', 'word', 'start', 'end', 'score'}
    prediction = schema['components']['schemas']['Prediction']
    assert 'entities' in prediction['properties'] and 'EntityAnswer' in json.dumps(prediction['properties'])


def test_the_page_highlights_each_entity_with_its_type_at_phone_width(ner_server, ner_run, chromium, tmp_path,
                                                                      record_property, capsys):
    chromium.send('Runtime.enable')
    chromium.send('Emulation.setDeviceMetricsOverride', width=360, height=740, deviceScaleFactor=1, mobile=True)
    chromium.send('Page.navigate', url=ner_server.url + '/')
    chromium.wait_for("document.readyState === 'complete' && "
                      "document.getElementById('model').textContent.includes('max_len')")
    chromium.evaluate(f"document.getElementById('texts').value = {json.dumps(chr(10).join(SENTENCES))}")
    chromium.click('#classify')
    chromium.wait_for("document.querySelectorAll('#results .result').length === 2")
    shown = chromium.evaluate("[...document.querySelectorAll('#results .result')].map(card => "
                              "[...card.querySelectorAll('mark.entity')].map(m => "
                              "[m.dataset.type, m.firstChild.textContent, m.querySelector('.type').textContent]))")
    # the page trims each line, as it sends it
    expected = ner_run[0].predict([text.strip() for text in SENTENCES])
    assert shown == [[[e['entity_group'], e['word'], e['entity_group']] for e in entities] for entities in expected]
    assert any(shown)
    texts = chromium.evaluate("[...document.querySelectorAll('#results .result .text')].map(p => "
                              "[...p.childNodes].map(n => n.nodeType === 3 ? n.textContent : n.firstChild.textContent)"
                              ".join(''))")
    assert texts == [text.strip() for text in SENTENCES]
    assert not [event for event in chromium.events if event.get('method') == 'Runtime.exceptionThrown']
    assert chromium.evaluate('document.documentElement.scrollWidth <= window.innerWidth')
    save_screenshot(chromium, 'serve-page-entities.png', tmp_path, record_property, capsys)
