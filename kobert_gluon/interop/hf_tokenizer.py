"""A ``tokenizer.json`` that gives transformers exactly kobert_gluon's token ids.

kobert_gluon tokenizes as gluonnlp 0.10 does: ``BERTSPTokenizer(spiece, vocab, lower=False)``
runs BERT's basic tokenizer (drop control characters, map whitespace to spaces, space out
CJK ideographs, NFD and drop non-spacing marks -- even though cased --, split punctuation
off), then encodes every word on its own with SentencePiece (whose ``nmt_nfkc`` normalizer
runs on that word), and looks the pieces up in the gluonnlp vocab; ``BERTSentenceTransform``
adds ``[CLS]``/``[SEP]`` and cuts the pieces so that the whole fits ``max_len``.

transformers cannot load that as a slow tokenizer, so :func:`write_hf_tokenizer` builds the
same steps from ``tokenizers``' blocks, in the same order:

1. normalizer: ``Replace`` steps with character classes computed from Python's
   ``unicodedata`` (the tables gluonnlp's basic tokenizer uses), ``NFD``; CJK ideographs and
   punctuation are spaced out with zero-width regex matches (``(?=[...])|(?<=[...])``
   replaced by a space), so punctuation is split *before* SentencePiece's normalization, as
   in gluonnlp ('…' stays one word that nmt_nfkc makes '...');
2. then SentencePiece's normalization: ``NFKC`` followed by the model's own
   ``precompiled_charsmap``. The charsmap alone is not enough: tokenizers' ``Precompiled``
   looks it up grapheme by grapheme, not by SentencePiece's longest match, and leaves
   sequences such as NFD Hangul or 'ㅋㅠ' (-> 큐) uncomposed; NFKC composes them as the
   charsmap does. Where NFKC and the charsmap disagree (FULLWIDTH TILDE; a circled Hangul
   syllable followed by a final jamo, '㉮ㄳ') the characters are kept from NFKC with
   control-character placeholders and barriers;
3. SentencePiece's whitespace rules (``remove_extra_whitespaces``, ``add_dummy_prefix``,
   ``escape_whitespaces``) as ``Replace``/``Prepend``; the pre-tokenizer splits before every
   ``▁`` (``split_by_whitespace``), which also ends each gluonnlp word;
4. model: ``Unigram`` with the SentencePiece scores, in the gluonnlp vocab's id order;
   post-processor ``[CLS] $A [SEP]``; truncation to ``max_len``; ``split_special_tokens``,
   since gluonnlp reads the text '[CLS]' as '[', 'CLS', ']'.

Checked equal to gluonnlp on every code point (between two syllables), every key of the
KoBERT charsmap, and every sentence of NSMC and the emotion set, with one exception that
tokenizers cannot express: SentencePiece sums Viterbi scores in float32, so between two
segmentations that are permutations of the same pieces (an exact tie: 'c888' as
'▁c 88 8' or '▁c 8 88') its rounding picks one, while tokenizers (float64, exact) keeps the
first it found. Such ties need a repeated run of characters with pieces of several lengths
(1 of the 78,159 corpus sentences). :func:`verify_hf_tokenizer` reports them like any
other difference; the converter runs it on :data:`PROBE_TEXTS`, which holds none.
"""
import functools
import json
import os
import sys
import unicodedata

from ..errors import ConversionError
from ..fileio import atomic_path

TOKENIZER_JSON = 'tokenizer.json'
TOKENIZER_CONFIG = 'tokenizer_config.json'
SPECIAL_TOKENS_MAP = 'special_tokens_map.json'
SPECIAL_TOKENS = {'unk_token': '[UNK]', 'pad_token': '[PAD]', 'cls_token': '[CLS]', 'sep_token': '[SEP]',
                  'mask_token': '[MASK]'}
SPACE_SYMBOL = '\u2581'  # SentencePiece's '▁'

# gluonnlp's _is_chinese_char (BERT's "CJK" blocks)
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))

PROBE_TEXTS = (
    # full-width forms, compatibility characters NFKC rewrites
    'ＡＢＣ１２３！', 'ｶﾀｶﾅ ﾊﾝｶｸ', '①②③ ⑴⑵ ㈜삼성 ㈔ ㎏ ㎞ ℃ ™ № ½ ¼ ⅓ ²³ ﬁ ﬂ', '㉠㉮ ㈀ ㈎ ㉿',
    '\ubb3c\uacb0\uff5e\ud45c ~ \u301c',  # FULLWIDTH TILDE: nmt_nfkc keeps it, NFKC would not
    # Hangul compatibility forms NFKC would compose across characters, the charsmap not
    '\u326e\u3133\u327d\u3136 \u3276\uffa6 \u3271\uffaa \u3147\u3155 \u314b\u3160\u3160 \u3260\u314f \uffa1\uffa1',
    # accents: gluonnlp strips non-spacing marks even though KoBERT is cased
    'café naïve résumé Ångström Zoë façade', 'cafe\u0301 na\u0308ive', 'Ελληνικά ά ῷ', 'Ǆ ǅ ǆ ﬀ ẞ ß',
    # emoji, modifiers, ZWJ sequences, flags, keycaps
    '😀👍🏻 좋아요👍 👨‍👩‍👧‍👦 🇰🇷 1️⃣ ❤️ ♥ ☆★',
    # URLs, e-mail, markup
    'https://www.example.com/path?q=한국어&x=1#frag 보세요', 'mail: kobert@sktbrain.co.kr', '<b>굵게</b> &amp; &lt;',
    # quotes and brackets
    '“따옴표” ‘작은따옴표’ «guillemets» 「괄호」 『겹낫표』 【】 〈〉 《》', '"quoted" \'single\' `back`',
    # whitespace of every kind
    '탭\t문자\n줄바꿈\r\n캐리지\x0b수직탭\x0c폼피드', '\u00a0줄바꿈없는\u3000전각공백\u2003em\u2028줄\u2029문단\u202f좁은',
    # control characters, zero-width and other format characters, BOM, replacement char
    '제어\x00문자\x01\x07\x1b[0m\x7f\x85끝', '제로\u200b폭\u200c공백\u200d연결\ufeffBOM\u2060WJ\u00adSHY',
    '대체\ufffd문자 \u202e역방향\u202c \U000e0001태그', '사설\ue000영역\U000f0000',
    # CJK ideographs (Hanja), compatibility ideographs, Kangxi radicals, Japanese
    '大韓民國 漢字語 한자(漢字) 金씨', '豈 更 \U0002f800 ⼀⼆ ⺠', '日本語のテキストです。カタカナ、ひらがな！',
    '中文，标点。“引号”', '\U00020000\U0002a700 희귀한자',
    # Hangul oddities: compatibility jamo, conjoining jamo, halfwidth, archaic
    'ㅋㅋㅋㅋ ㅠㅠ ㅎㅎ ㄱㄴㄷ', '\u1100\u1161\u11a8 \u1112\u1161\u11ab', 'ﾡﾢﾣ', 'ᄒᆞᆫ글 ㅿ ㆁ ㆆ',
    # mixed Korean / English / digits
    '아이폰15 Pro Max가 1,299,000원!! 3.5점/5점', 'KoBERT는 SKT Brain이 만든 BERT-base 모델이다.', 'ver2.0.1a 2024-01-31 12:30pm',
    # repeated and odd punctuation
    '진짜????!!!!!!...... ㅋㅋ', '와…… 대박‼ ⁉ ⁇', '~~~!!!@@@###$$$%%%^^^&&&***((()))', '---___+++===|||\\\\\\',
    '§¶†‡•‣※‰′″‴', '₩1,000 $5 €3 £2 ¥100',
    # SentencePiece's own space symbol and special-token look-alikes
    '\u2581 \u2581\u2581a a\u2581 \u2581b\u2581c', '[CLS] [SEP] [PAD] [MASK] [UNK] <unk> <s> </s>',
    # other scripts
    'Привет мир', 'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया', 'สวัสดีชาวโลก', 'Tiếng Việt có dấu',
    # math and letterlike symbols
    '𝐀𝐁𝐂 𝒜 ℌ ℍ ∑∫√∞ ≠ ≤ ≥ ⁰¹ ₀₁ x² H₂O',
    # empty, whitespace only, punctuation only
    '', ' ', '   \t\n  ', '\u200b', '!', '…',
    # long text: more pieces than max_len
    '이 영화는 정말 재미있었고 배우들의 연기도 훌륭했으며 음악까지 완벽해서 다시 보고 싶은 작품이다. ' * 8,
    'a' * 300, '가나다라마바사' * 60, '😀' * 100, '!?' * 100,
)


# ---------------------------------------------------------------------------- character classes

def _all_chars():
    return (chr(code) for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF)


@functools.lru_cache(maxsize=None)
def _chars_where(kind):
    """The characters of one class, by Python's unicodedata (which gluonnlp's tokenizer uses)."""
    tests = {
        # gluonnlp _step1: dropped (NUL, U+FFFD, Cc/Cf except \t \n \r)
        'control': lambda ch, cat: ch in '\x00\ufffd' or (cat in ('Cc', 'Cf') and ch not in '\t\n\r'),
        # gluonnlp _step1: mapped to ' '
        'whitespace': lambda ch, cat: ch in ' \t\n\r' or cat == 'Zs',
        # gluonnlp _step2: dropped after NFD
        'nonspacing': lambda ch, cat: cat == 'Mn',
        # str.split() also splits on these (U+2028, U+2029, ...), which _step1 kept
        'split': lambda ch, cat: ch.isspace() and ch != ' ',
        # not a Hangul syllable itself, but NFKC makes it end in one that takes no final (LV)
        'syllable_compat': lambda ch, cat: not 0xAC00 <= ord(ch) <= 0xD7A3 and _ends_in_lv(ch),
        # gluonnlp _step2: spaced out
        'punctuation': lambda ch, cat: (33 <= ord(ch) <= 47 or 58 <= ord(ch) <= 64 or 91 <= ord(ch) <= 96
                                        or 123 <= ord(ch) <= 126 or cat.startswith('P')),
    }
    test = tests[kind]
    return tuple(ch for ch in _all_chars() if test(ch, unicodedata.category(ch)))


def _ends_in_lv(char):
    if unicodedata.is_normalized('NFKC', char):
        return False
    last = ord(unicodedata.normalize('NFKC', char)[-1])
    return 0xAC00 <= last <= 0xD7A3 and (last - 0xAC00) % 28 == 0


def _ranges(codes):
    ranges = []
    for code in sorted(codes):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return ranges


def _regex_class(codes):
    """An Oniguruma character class listing exactly ``codes`` (as \\x{...} ranges)."""
    parts = []
    for low, high in _ranges(codes):
        parts.append(f'\\x{{{low:X}}}' if low == high else f'\\x{{{low:X}}}-\\x{{{high:X}}}')
    return '[' + ''.join(parts) + ']'


def _class_of(kind):
    return _regex_class(ord(ch) for ch in _chars_where(kind))


def _spaced_out(char_class):
    """A regex whose zero-width matches lie before and after each character of the class."""
    return f'(?={char_class})|(?<={char_class})'


# Characters that SentencePiece's nmt_nfkc charsmap maps differently from NFKC: FULLWIDTH
# TILDE stays itself (nmt_nfkc's rule), NFKC makes it '~'. Checked on every code point.
NFKC_EXCEPTIONS = ('\uff5e',)
# NFKC makes '㉮ㄳ' one syllable (가 + final ᆪ -> 갃); the charsmap has no such key and maps
# the two characters apart. A control character after each compatibility character whose
# NFKC ends in a Hangul LV syllable (㉮-㉻, ㉼ 참고, ㉽ 주의, ㉾ 우) stops the composition.
COMPOSITION_BARRIER = '\x1f'


def _nfkc_exceptions():
    # placeholders: control characters, which the first step removed from the text
    return [(char, chr(1 + i)) for i, char in enumerate(NFKC_EXCEPTIONS)]


# ---------------------------------------------------------------------------- the tokenizer

def _require():
    try:
        import tokenizers
    except ImportError:  # pragma: no cover - depends on the environment
        from ..errors import MissingExtraError
        raise MissingExtraError('convert', 'tokenizers (needed for a transformers tokenizer.json)') from None
    return tokenizers


def _load_model_proto(spiece_path):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    with open(spiece_path, 'rb') as source:
        proto.ParseFromString(source.read())
    return proto


def _check_spiece(proto, spiece_path):
    spec, trainer = proto.normalizer_spec, proto.trainer_spec
    problems = []
    if trainer.model_type != trainer.UNIGRAM:
        problems.append(f'model_type {trainer.ModelType.Name(trainer.model_type)} (only UNIGRAM)')
    if trainer.byte_fallback:
        problems.append('byte_fallback')
    if trainer.treat_whitespace_as_suffix:
        problems.append('treat_whitespace_as_suffix')
    if not trainer.split_by_whitespace:
        problems.append('split_by_whitespace off')
    if not (spec.add_dummy_prefix and spec.remove_extra_whitespaces and spec.escape_whitespaces):
        problems.append('normalizer without add_dummy_prefix/remove_extra_whitespaces/escape_whitespaces')
    if spec.normalization_rule_tsv:
        problems.append('a custom normalization_rule_tsv')
    if problems:
        raise ConversionError(f'{spiece_path}: cannot express this SentencePiece model as a transformers '
                              f'tokenizer: {", ".join(problems)}')


def _unigram_vocab(proto, vocab, spiece_path):
    """``[(token, score)]`` in the gluonnlp vocab's id order, SentencePiece's scores.

    gluonnlp looks each SentencePiece piece up in the vocab, so a piece SentencePiece can
    output must be a vocab token (else gluonnlp gives [UNK] where Unigram could not).
    Vocab tokens SentencePiece lacks (the BERT specials of the v0.1 .json) can never be
    produced from text (their brackets are split off first); they get score 0.
    """
    pieces = {piece.piece: piece for piece in proto.pieces}
    normal = proto.SentencePiece.NORMAL
    missing = [p.piece for p in proto.pieces if p.type == normal and p.piece not in vocab.token_to_idx]
    if missing:
        raise ConversionError(f'{spiece_path}: {len(missing)} SentencePiece pieces are not in the vocab '
                              f'(first: {missing[:5]}); gluonnlp maps them to [UNK], which a Unigram '
                              f'tokenizer cannot express')
    entries = []
    for token in vocab.idx_to_token:
        piece = pieces.get(token)
        # only NORMAL pieces take part in SentencePiece's Viterbi search as scored pieces;
        # user-defined ones ([PAD] ...) are matched verbatim and cannot occur after the
        # basic tokenizer split their brackets off.
        entries.append((token, float(piece.score) if piece is not None and piece.type == normal else 0.0))
    return entries


def build_hf_tokenizer(spiece_path, vocab, max_len):
    """A ``tokenizers.Tokenizer`` giving gluonnlp's ids for ``spiece_path`` + ``vocab``."""
    _require()
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if max_len < 2:
        raise ConversionError(f'max_len={max_len}: must leave room for [CLS] and [SEP]')
    spiece_path = os.fspath(spiece_path)
    proto = _load_model_proto(spiece_path)
    _check_spiece(proto, spiece_path)
    ids = {name: vocab.token_to_idx.get(token) for name, token in SPECIAL_TOKENS.items()}
    if None in ids.values() or vocab.unknown_token != SPECIAL_TOKENS['unk_token']:
        raise ConversionError(f'{spiece_path}: the vocab lacks a BERT special token: {ids}')

    space = SPACE_SYMBOL
    tokenizer = Tokenizer(models.Unigram(_unigram_vocab(proto, vocab, spiece_path), unk_id=ids['unk_token'],
                                         byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        # a leading space: a zero-width match at offset 0 breaks tokenizers' alignments (NFD panics)
        normalizers.Prepend(' '),
        # --- gluonnlp BERTBasicTokenizer(lower=False)
        normalizers.Replace(Regex(_class_of('control')), ''),
        normalizers.Replace(Regex(_class_of('whitespace')), ' '),
        normalizers.Replace(Regex(_spaced_out(_regex_class(
            code for low, high in CJK_RANGES for code in range(low, high + 1)))), ' '),
        normalizers.NFD(),
        normalizers.Replace(Regex(_class_of('nonspacing')), ''),
        normalizers.Replace(Regex(_class_of('split')), ' '),
        normalizers.Replace(Regex(_spaced_out(_class_of('punctuation'))), ' '),
        # --- SentencePiece, on each word: its normalizer...
        # tokenizers' Precompiled looks the charsmap up per grapheme, not by SentencePiece's
        # longest match, so it leaves sequences such as 'ㅋㅠ' or NFD Hangul (ᄏ ᅲ) uncomposed;
        # NFKC composes them as the charsmap does. The charsmap's exceptions to NFKC are kept
        # away from NFKC behind placeholders (control characters, all removed above).
        *[normalizers.Replace(char, placeholder) for char, placeholder in _nfkc_exceptions()],
        *([normalizers.Replace(Regex(f'(?<={_class_of("syllable_compat")})'), COMPOSITION_BARRIER)]
          if _chars_where('syllable_compat') else []),
        normalizers.NFKC(),
        normalizers.Replace(COMPOSITION_BARRIER, ''),
        *[normalizers.Replace(placeholder, char) for char, placeholder in _nfkc_exceptions()],
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        # ...removes spaces and ▁ at a word's end and repeated spaces, adds the dummy prefix,
        # escapes spaces as ▁
        normalizers.Replace(Regex(f'[ {space}]+(?= |$)'), ''),
        normalizers.Replace(Regex('^ +'), ''),
        normalizers.Replace(' ', space),
        normalizers.Prepend(space),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Split(space, behavior='merged_with_next')
    tokenizer.decoder = decoders.Metaspace(replacement=space, prepend_scheme='always', split=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f'{SPECIAL_TOKENS["cls_token"]} $A {SPECIAL_TOKENS["sep_token"]}',
        pair=f'{SPECIAL_TOKENS["cls_token"]} $A {SPECIAL_TOKENS["sep_token"]} $B:1 {SPECIAL_TOKENS["sep_token"]}:1',
        special_tokens=[(SPECIAL_TOKENS['cls_token'], ids['cls_token']),
                        (SPECIAL_TOKENS['sep_token'], ids['sep_token'])])
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False)
                                  for token in SPECIAL_TOKENS.values()])
    # gluonnlp never reads "[CLS]" in a text as the special token: it splits off the brackets
    tokenizer.encode_special_tokens = True
    tokenizer.enable_truncation(max_length=max_len)
    return tokenizer


# ---------------------------------------------------------------------------- files

def tokenizer_config(max_len):
    """``tokenizer_config.json``: a plain fast tokenizer, cased, specials never read from text."""
    return {'tokenizer_class': 'PreTrainedTokenizerFast', 'model_max_length': max_len, 'do_lower_case': False,
            # gluonnlp reads the text "[CLS]" as '[', 'CLS', ']', never as the special token
            'split_special_tokens': True, 'clean_up_tokenization_spaces': False,
            'padding_side': 'right', 'truncation_side': 'right',
            'model_input_names': ['input_ids', 'token_type_ids', 'attention_mask'], **SPECIAL_TOKENS}


def write_hf_tokenizer(spiece_path, vocab, output_dir, max_len):
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

    ``transformers.AutoTokenizer.from_pretrained(output_dir)`` then gives a fast tokenizer
    whose ``tokenizer(text, truncation=True)['input_ids']`` are kobert_gluon's ids for
    ``spiece_path`` + ``vocab`` (a gluonnlp ``BERTVocab``) at ``max_len``. Returns the paths
    written. Check the result with :func:`verify_hf_tokenizer` (the converter does).
    """
    tokenizer = build_hf_tokenizer(spiece_path, vocab, max_len)
    os.makedirs(output_dir, exist_ok=True)
    paths = {name: os.path.join(output_dir, name) for name in (TOKENIZER_JSON, TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP)}
    with atomic_path(paths[TOKENIZER_JSON]) as tmp:
        tokenizer.save(tmp)
    for name, content in ((TOKENIZER_CONFIG, tokenizer_config(max_len)), (SPECIAL_TOKENS_MAP, dict(SPECIAL_TOKENS))):
        with atomic_path(paths[name]) as tmp:
            with open(tmp, 'w', encoding='utf-8') as out:
                json.dump(content, out, ensure_ascii=False, indent=2)
    return paths


# ---------------------------------------------------------------------------- checking

def gluon_ids(gluon_tokenizer, max_len, texts):
    """kobert_gluon's ids: ``BERTSentenceTransform(gluon_tokenizer, max_len, pad=False, pair=False)``."""
    import gluonnlp as nlp

    transform = nlp.data.BERTSentenceTransform(gluon_tokenizer, max_seq_length=max_len, pad=False, pair=False)
    return [[int(i) for i in transform([text])[0]] for text in texts]


def _hf_ids(tokenizer, max_len, texts):
    """ids from a tokenizer directory, a ``tokenizers.Tokenizer`` or a transformers fast tokenizer."""
    if isinstance(tokenizer, (str, os.PathLike)):
        _require()
        from tokenizers import Tokenizer

        path = os.fspath(tokenizer)
        tokenizer = Tokenizer.from_file(os.path.join(path, TOKENIZER_JSON) if os.path.isdir(path) else path)
    if hasattr(tokenizer, 'encode_batch'):  # tokenizers.Tokenizer: a copy, the caller's keeps its settings
        tokenizer = type(tokenizer).from_str(tokenizer.to_str())
        tokenizer.enable_truncation(max_length=max_len)
        tokenizer.encode_special_tokens = True
        return [encoding.ids for encoding in tokenizer.encode_batch(list(texts))]
    return tokenizer(list(texts), truncation=True, max_length=max_len)['input_ids']


def verify_hf_tokenizer(tokenizer, gluon_tokenizer, max_len, texts=PROBE_TEXTS, strict=True):
    """Texts on which ``tokenizer`` gives other ids than kobert_gluon's ``gluon_tokenizer``.

    ``tokenizer`` is a directory :func:`write_hf_tokenizer` wrote (or its tokenizer.json), a
    ``tokenizers.Tokenizer`` or a transformers fast tokenizer; ``gluon_tokenizer`` is the
    gluonnlp ``BERTSPTokenizer``. Both are cut to ``max_len``. With ``strict`` (the default)
    any difference raises :class:`ConversionError` naming the first one and the count;
    otherwise the list of differing texts is returned (empty when all agree).
    """
    texts = list(texts)
    expected = gluon_ids(gluon_tokenizer, max_len, texts)
    got = _hf_ids(tokenizer, max_len, texts)
    mismatches = [(text, want, have) for text, want, have in zip(texts, expected, got) if list(have) != want]
    if mismatches and strict:
        text, want, have = mismatches[0]
        vocab = gluon_tokenizer.vocab
        raise ConversionError(
            f'the transformers tokenizer differs from kobert_gluon\'s on {len(mismatches)} of {len(texts)} texts; '
            f'first {text[:80]!r}: kobert_gluon {[vocab.idx_to_token[i] for i in want]} '
            f'vs transformers {[vocab.idx_to_token[i] if 0 <= i < len(vocab) else i for i in have]}')
    return [text for text, _, _ in mismatches]
