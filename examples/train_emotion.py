"""Fine-tune KoBERT on the Korean single-turn emotion dataset (7 classes, xlsx).

    # the real job: 12-layer KoBERT, the seed notebook's settings
    python examples/train_emotion.py --data 한국어_단발성_대화_데이터셋.xlsx --kobert_dir ~/kobert
    # a quick end-to-end check with a small BERT (KoBERT tokenizer still used when found)
    python examples/train_emotion.py --data single_turn_emotion.xlsx --bert small --num_epochs 1

Labels get ids in sorted order (공포 0, 놀람 1, 분노 2, 슬픔 3, 중립 4, 행복 5, 혐오 6); rows are
stored grouped by label, and the stratified split shuffles them. The run goes to a new
``runs/<data file name>-<date-time>/`` (its best/ model path is printed last); every flag of
``kobert-gluon train`` works here too (``--output_dir``, ``--resume``, ...).
"""
import sys

from kobert_gluon.cli import main

if __name__ == '__main__':
    sys.exit(main(['train', '--text_column', 'Sentence', '--label_column', 'Emotion',
                   *sys.argv[1:]]))
