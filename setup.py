import re

from setuptools import find_packages, setup

with open('kobert_gluon/_version.py', encoding='utf-8') as version_file:
    version = re.search(r"^__version__ = '([^']+)'", version_file.read(), re.M).group(1)
with open('README.md', encoding='utf-8') as readme:
    long_description = readme.read()
with open('requirements.txt', encoding='utf-8') as requirements:
    install_requires = [line.strip() for line in requirements if line.strip() and not line.startswith('#')]

setup(
    name='kobert_gluon',
    version=version,
    description="SKT Brain's KoBERT fine-tuning stack on MXNet/GluonNLP, installable on Python 3.11",
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['kobert_gluon', 'kobert_gluon.*', 'kobert', 'kobert.*']),
    package_data={'kobert_gluon': ['resources/*.tsv', 'resources/*.md', 'resources/kobert/*', 'serve/static/*',
                                   'resources/pretrained/*.*', 'resources/pretrained/tokenizer/*']},
    install_requires=install_requires,
    # ipywidgets: the NSMC notebook's tqdm.notebook (tests/test_dropin.py runs it)
    # import-linter: `lint-imports` checks that imports run downward (.importlinter)
    # seqeval: the independent reference the entity metrics are tested against (not used at run time)
    extras_require={'dev': ['pytest>=7', 'scikit-learn>=1.2', 'websocket-client>=1.6', 'ipywidgets>=8',
                            'import-linter>=2.1', 'seqeval>=1.2.2'],
                    # python-crfsuite: the CRF baseline of benchmarks/ner_baselines.py
                    'bench': ['torch==2.13.0', 'transformers==5.24.0', 'python-crfsuite>=0.9.8'],
                    # transformers <-> gluon conversion (kobert_gluon/convert.py); safetensors alone
                    # reads and writes model.safetensors, torch only reads pytorch_model.bin.
                    # protobuf lets transformers read a SentencePiece model (its KoBERT tokenizer).
                    'convert': ['torch==2.13.0', 'transformers==5.24.0', 'safetensors>=0.4.3', 'protobuf>=4'],
                    # fastapi-offline: its copy of Swagger UI 5 serves /docs without a CDN
                    'serve': ['fastapi>=0.100', 'pydantic>=2.5', 'uvicorn>=0.29', 'fastapi-offline>=1.7'],
                    # --report_to tensorboard: TensorBoard scalars without torch
                    'report': ['tensorboardX>=2.6'],
                    # kobert-gluon export --format onnx (through the converted PyTorch model); ml_dtypes 0.6+
                    # and a bare onnx install pull numpy 2, which mxnet 1.9.1 cannot load
                    'onnx': ['torch==2.13.0', 'transformers==5.24.0', 'safetensors>=0.4.3', 'onnx>=1.16',
                             'onnxruntime>=1.17', 'ml_dtypes>=0.5,<0.6'],
                    # Build it against the installed mxnet: scripts/install.sh horovod does, with
                    # HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1
                    # HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 --no-build-isolation.
                    'horovod': ['horovod==0.28.1']},
    entry_points={'console_scripts': ['kobert-gluon=kobert_gluon.cli:main']},
)
