"""Classify new sentences with a fine-tuned model directory (KoBERT issue #28).

    python examples/predict.py runs/demo-20261126-101500/best "배송이 빨라서 좋았어요" "다시는 안 삽니다"
"""
import sys

from kobert_gluon import TextClassifier

if __name__ == '__main__':
    classifier = TextClassifier.load(sys.argv[1])
    sentences = sys.argv[2:]
    for sentence, label, probabilities in zip(sentences, classifier.predict(sentences),
                                              classifier.predict_proba(sentences)):
        print(f'{label}\t{probabilities.max():.3f}\t{sentence}')
