// The page's only script: reads /metadata, posts the textarea's lines to /predict and draws
// one card per sentence. User text is only ever set through textContent, never parsed as HTML.
'use strict';

const form = document.getElementById('form');
const textarea = document.getElementById('texts');
const button = document.getElementById('classify');
const statusLine = document.getElementById('status');
const results = document.getElementById('results');
const modelLine = document.getElementById('model');
const notice = document.getElementById('notice');
const pairBox = document.getElementById('pair-box');
const pairArea = document.getElementById('text-pairs');
// What /metadata says of the model: its task (classification, regression, multi_label) and
// whether it reads sentence pairs.
const model = {task: 'classification', pair: false};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bilingual(target, korean, english) {
  target.replaceChildren(korean + ' ', element('span', 'en', english));
}

async function showModel() {
  try {
    const response = await fetch('/metadata');
    const info = await response.json();
    model.task = info.task || 'classification';
    model.pair = Boolean(info.pair);
    pairBox.hidden = !model.pair;
    if (model.task === 'token_classification') {
      bilingual(document.querySelector('h1'), 'KoBERT 개체명 인식', 'Named entities');
      bilingual(button, '찾기', 'Find entities');
    }
    // base_weights: what the BERT body started from; null or absent in older model directories.
    const base = info.base_weights && typeof info.base_weights === 'object' ? info.base_weights : null;
    const task = {classification: '분류 classification', regression: '점수 regression',
      multi_label: '다중 레이블 multi-label', token_classification: '개체명 named entities'}[model.task] || model.task;
    modelLine.textContent = `${task}${model.pair ? ' · 문장 쌍 pairs' : ''} · ` +
      `레이블 labels: ${info.labels.join(', ')} · max_len ${info.max_len} · ` +
      `BERT ${info.bert.num_layers}×${info.bert.units} · ${info.dtype} · kobert_gluon ${info.library_version}` +
      (base ? ` · 기반 base: ${base.kind}${base.name ? ' ' + base.name : ''}` : '');
    if (base && base.kind === 'random') {
      bilingual(notice, '데모 모델입니다: 사전 학습되지 않은 무작위 BERT 가중치에서 학습했으므로 예측을 믿지 마세요.',
        'Demo model: trained from random (untrained) BERT weights, so its predictions are not meaningful.');
      notice.hidden = false;
    }
  } catch (error) {
    bilingual(modelLine, '모델 정보를 불러오지 못했습니다.', 'Could not load model information.');
  }
}

function bars(probabilities, chosen) {
  const box = element('div', 'bars');
  for (const [name, probability] of Object.entries(probabilities)) {
    const percent = (100 * probability).toFixed(1);
    const bar = element('div', 'bar' + (chosen.includes(name) ? ' top' : ''));
    const fill = element('span', 'fill');
    fill.style.width = percent + '%';
    bar.append(element('span', 'name', name), element('span', 'track'), element('span', 'value', percent + '%'));
    bar.children[1].append(fill);
    box.append(bar);
  }
  return box;
}

// The text with each entity in a <mark> naming its type (entity_group); start/end are
// character offsets into the text (code points, as Python counts them).
function highlighted(record) {
  const box = element('p', 'text entities');
  const chars = Array.from(record.text);
  let at = 0;
  for (const entity of record.entities) {
    if (entity.start > at) box.append(chars.slice(at, entity.start).join(''));
    const mark = element('mark', 'entity', chars.slice(entity.start, entity.end).join(''));
    mark.dataset.type = entity.entity_group;
    mark.title = `${entity.entity_group} ${(100 * entity.score).toFixed(1)}%`;
    mark.append(element('span', 'type', entity.entity_group));
    box.append(mark);
    at = entity.end;
  }
  if (at < chars.length) box.append(chars.slice(at).join(''));
  return box;
}

function blank(record) {
  if (model.task === 'token_classification') return !record.text.trim();
  return record.label === null || record.score === null || record.labels === null;
}

function card(record) {
  const item = element('li', 'result');
  if (model.task === 'token_classification' && !blank(record)) {
    item.dataset.entities = record.entities.map((e) => `${e.entity_group}:${e.start}:${e.end}`).join(',');
    item.append(highlighted(record));
    if (!record.entities.length) bilingual(item.appendChild(element('p', 'label none')), '개체 없음', 'no entity');
    return item;
  }
  item.append(element('p', 'text', record.text));
  if (record.text_pair !== undefined) item.append(element('p', 'pair', '↔ ' + record.text_pair));
  if (blank(record)) {
    const none = element('p', 'label none');
    bilingual(none, '빈 문장', 'blank: no prediction');
    item.append(none);
    return item;
  }
  if (model.task === 'regression') {
    item.dataset.score = record.score;
    item.append(element('p', 'score', `점수 score ${record.score.toFixed(3)}`));
  } else if (model.task === 'multi_label') {
    item.dataset.labels = record.labels.join(',');
    const chosen = element('ul', 'labels');
    if (!record.labels.length) bilingual(chosen, '해당 라벨 없음', 'no label above the threshold');
    for (const name of record.labels) chosen.append(element('li', null, name));
    item.append(chosen, bars(record.probabilities, record.labels));
  } else {
    item.dataset.label = record.label;
    item.append(element('p', 'label', record.label), bars(record.probabilities, [record.label]));
  }
  return item;
}

function lines(area) {
  return area.value.split('\n').map((line) => line.trim());
}

async function classify(event) {
  event.preventDefault();
  const firsts = lines(textarea);
  const seconds = lines(pairArea);
  const keep = firsts.map((line, i) => line && (!model.pair || seconds[i])).map(Boolean);
  const texts = firsts.filter((_, i) => keep[i]);
  const body = model.pair ? {texts, text_pairs: seconds.filter((_, i) => keep[i])} : {texts};
  if (!texts.length) {
    bilingual(statusLine, model.pair ? '두 칸에 문장 쌍을 입력하세요.' : '문장을 입력하세요.',
      model.pair ? 'Enter sentence pairs, line by line in both boxes.' : 'Enter at least one sentence.');
    return;
  }
  button.disabled = true;
  statusLine.classList.remove('error');
  bilingual(statusLine, '분류하는 중…', 'Classifying…');
  try {
    const response = await fetch('/predict', {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${response.status}: ${answer.error}`);
    results.replaceChildren(...answer.predictions.map(card));
    bilingual(statusLine, `${texts.length}개 문장`, `${texts.length} sentence(s)`);
  } catch (error) {
    statusLine.textContent = `오류 Error — ${error.message}`;
    statusLine.classList.add('error');
  } finally {
    button.disabled = false;
  }
}

form.addEventListener('submit', classify);
showModel();
