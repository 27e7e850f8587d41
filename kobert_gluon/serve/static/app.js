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
    // base_weights: what the BERT body started from; null or absent in older model directories.
    const base = info.base_weights && typeof info.base_weights === 'object' ? info.base_weights : null;
    modelLine.textContent = `레이블 labels: ${info.labels.join(', ')} · max_len ${info.max_len} · ` +
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

function card(record) {
  const item = element('li', 'result');
  item.append(element('p', 'text', record.text));
  if (record.label === null) {
    const none = element('p', 'label none');
    bilingual(none, '빈 문장', 'blank: no prediction');
    item.append(none);
    return item;
  }
  item.dataset.label = record.label;
  item.append(element('p', 'label', record.label));
  const bars = element('div', 'bars');
  for (const [name, probability] of Object.entries(record.probabilities)) {
    const percent = (100 * probability).toFixed(1);
    const bar = element('div', 'bar' + (name === record.label ? ' top' : ''));
    const fill = element('span', 'fill');
    fill.style.width = percent + '%';
    bar.append(element('span', 'name', name), element('span', 'track'), element('span', 'value', percent + '%'));
    bar.children[1].append(fill);
    bars.append(bar);
  }
  item.append(bars);
  return item;
}

async function classify(event) {
  event.preventDefault();
  const texts = textarea.value.split('\n').map((line) => line.trim()).filter((line) => line);
  if (!texts.length) {
    bilingual(statusLine, '문장을 입력하세요.', 'Enter at least one sentence.');
    return;
  }
  button.disabled = true;
  statusLine.classList.remove('error');
  bilingual(statusLine, '분류하는 중…', 'Classifying…');
  try {
    const response = await fetch('/predict', {
      method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({texts}),
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
