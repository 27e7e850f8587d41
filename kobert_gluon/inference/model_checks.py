"""What a hand-edited model directory may hold, checked before MXNet sees it: ``num_classes`` an
integer of at least 1 (never a bool: JSON's ``true`` is Python's 1), at least one label, and each
tokenizer role naming a file of its kind (the SentencePiece model under ``tokenizer``, a JSON
vocabulary under ``vocab_json``), so a swapped role is one clear error instead of a
UnicodeDecodeError from deep inside the vocabulary reader."""
import json

from ..errors import ModelDirectoryError

TOKENIZER_ROLES = ('tokenizer', 'vocab_json')


def check_num_classes(path, config):
    number = config['num_classes']
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ModelDirectoryError(f'{path}: num_classes={json.dumps(number)} must be an integer of at least 1')
    if not config['labels']:
        raise ModelDirectoryError(f"{path}: 'labels' is empty; a model has at least one label")


def check_tokenizer_roles(path, files):
    """Each role's file is of its kind (``files``: role -> path, md5 already checked)."""
    unknown = sorted(set(files) - set(TOKENIZER_ROLES))
    if unknown:
        raise ModelDirectoryError(f"{path}: unknown tokenizer role(s) {unknown}; the roles are {list(TOKENIZER_ROLES)}")
    if 'tokenizer' in files and (_looks_like_json(files['tokenizer']) or not _is_sentencepiece(files['tokenizer'])):
        raise ModelDirectoryError(f"{path}: the 'tokenizer' role names {files['tokenizer']}, which is not a "
                                  "SentencePiece model (are the 'tokenizer' and 'vocab_json' files swapped?)")
    if 'vocab_json' in files and not _looks_like_json(files['vocab_json']):
        raise ModelDirectoryError(f"{path}: the 'vocab_json' role names {files['vocab_json']}, which is not a JSON "
                                  "vocabulary (the SentencePiece model? are the roles swapped?)")


def _is_sentencepiece(path):
    import sentencepiece
    try:
        sentencepiece.SentencePieceProcessor(model_file=path)
    except Exception:  # sentencepiece raises RuntimeError/OSError for a file that is no model
        return False
    return True


def _looks_like_json(path):
    with open(path, 'rb') as source:
        start = source.read(4096).lstrip()
    try:
        start.decode('utf-8')
    except UnicodeDecodeError as error:
        if error.start < len(start) - 4:  # a character cut at the end of the block is still text
            return False
    return start[:1] in (b'{', b'[')
