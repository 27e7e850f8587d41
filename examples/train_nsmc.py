"""Fine-tune KoBERT on NSMC (Naver movie reviews, binary sentiment, id/document/label TSV).

    python examples/train_nsmc.py --data ratings_train.txt --test_data ratings_test.txt --kobert_dir ~/kobert
    # quick check with a small BERT
    python examples/train_nsmc.py --data ratings_train_small.txt --test_data ratings_test_small.txt \\
        --bert small --num_epochs 1

Empty documents are dropped (and counted in the log). The run goes to a new
``runs/<data file name>-<date-time>/`` (its best/ model path is printed last); every flag of
``kobert-gluon train`` works here too.
"""
import sys

from kobert_gluon.cli import main

if __name__ == '__main__':
    sys.exit(main(['train', '--text_column', 'document', '--label_column', 'label',
                   *sys.argv[1:]]))
