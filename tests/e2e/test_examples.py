"""The examples run end to end, as a user would start them, on subsets of the shared data."""
import json
import os
import subprocess
import sys

import pandas as pd
from hangguard import hang_guard

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_example(script, *args, cwd):
    env = {**os.environ, 'PYTHONPATH': ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')}
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'examples', script), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=hang_guard(120))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


QUICK = ['--bert', 'small', '--num_epochs', '1', '--max_len', '32', '--batch_size', '32', '--learning_rate', '5e-4']


def test_emotion_example_on_xlsx(shared_dir, kobert_dir, tmp_path):
    frame = pd.read_excel(shared_dir / 'data' / 'emotion' / 'single_turn_emotion.xlsx')
    subset = tmp_path / 'emotion.xlsx'
    frame.groupby('Emotion').sample(60, random_state=0).to_excel(subset, index=False)
    result = run_example('train_emotion.py', '--data', str(subset), '--kobert_dir', str(kobert_dir), *QUICK,
                         cwd=tmp_path)
    best = tmp_path / result.stdout.strip().splitlines()[-1]
    assert best.parent.parent == tmp_path / 'runs' and best.parent.name.startswith('emotion-')
    config = json.loads((best / 'config.json').read_text(encoding='utf-8'))
    assert config['labels'] == {'공포': 0, '놀람': 1, '분노': 2, '슬픔': 3, '중립': 4, '행복': 5, '혐오': 6}
    for plot in ('loss_lr.png', 'accuracy.png', 'confusion_matrix.png', 'test_report.json'):
        assert (best.parent / plot).is_file()


def test_nsmc_example_and_predict(shared_dir, kobert_dir, tmp_path):
    for name in ('train', 'test'):
        source = shared_dir / 'data' / 'nsmc' / f'ratings_{name}_small.txt'
        pd.read_csv(source, sep='\t', quoting=3, keep_default_na=False).head(200).to_csv(
            tmp_path / f'{name}.txt', sep='\t', index=False)
    trained = run_example('train_nsmc.py', '--data', str(tmp_path / 'train.txt'), '--test_data',
                          str(tmp_path / 'test.txt'), '--kobert_dir', str(kobert_dir), *QUICK, cwd=tmp_path)
    best = trained.stdout.strip().splitlines()[-1]
    result = run_example('predict.py', best, '재밌어요', '지루해요', cwd=tmp_path)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.split('\t')[0] in ('0', '1') for line in lines)
