#!/usr/bin/env python3
"""Generate adversarial Unicode inputs for tokenizer conformance tests.

Usage: gen_adversarial.py --out FILE [--seed N] [--count N]

Writes JSON Lines: one JSON string per line, `count` lines in all. The first
lines are hand-picked edge cases (special tokens written in the text, empty
and whitespace-only strings, words of exactly 99/100/101/250 characters,
script and range boundaries); the rest are random mixtures of fragments
drawn from many Unicode categories. The output depends only on --seed and
--count (and this file).

The file is UTF-8 (ensure_ascii=False) but U+0085, U+2028 and U+2029 are
always written as \\u escapes (json already escapes U+0000..U+001F), so that
splitting the file on any kind of line break gives the same lines as
splitting on b'\\n'. No string contains a surrogate code point.
"""

import argparse
import json
import random
import sys


def rng_chars(lo, hi):
    """Code points lo..hi inclusive, as a list of str (skipping surrogates)."""
    return [chr(c) for c in range(lo, hi + 1) if not 0xD800 <= c <= 0xDFFF]


# ---------------------------------------------------------------------------
# Pools of material
# ---------------------------------------------------------------------------

ASCII_WORDS = (
    "the quick brown fox jumps over lazy dog hello world tokenizer tokenization "
    "unbelievable unaffable running runner played playing internationalization "
    "transformers embedding sentence BERT MiniLM Swift Python HuggingFace GPU "
    "don't can't it's O'Neil rock'n'roll e-mail state-of-the-art well-known "
    "U.S.A. e.g. i.e. etc. Mr. Dr. St. 3.14 1,000,000 42 007 2024-01-31 12:30 "
    "user@example.com https://example.org/path?q=1&r=2#frag C++ C# .NET "
    "snake_case camelCase PascalCase kebab-case SCREAMING_CASE x86_64 utf-8 "
    "#hashtag @mention $100 50% a b c I A Z zz qqq xyzzy foo bar baz"
).split()

ASCII_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
UNICODE_PUNCT = list(
    "¡¿«»„“”‘’‚‹›…‰‱′″‴§¶†‡•‣–—‐‑‒―⁂※‼⁇⁈⁉‽⸘⸮·¦"
    "、。〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟・ー～｡｢｣､･"
)

PRECOMPOSED = list(
    "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞ"
    "ĀāĂăĄąĆćĈĉČčĎďĐđĒēĖėĘęĚěĞğĠġĢģĪīĮįĲĳĶķĹĺĻļĽľŁłŃńŅņŇňŌōŐőŒœ"
    "ŔŕŘřŚśŜŝŞşŠšŢţŤťŨũŪūŮůŰűŲųŴŵŶŷŸŹźŻżŽžƒǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟ"
    "ǢǣǦǧǨǩǪǫǬǭǸǹǺǻǼǽǾǿȀȁȂȃȘșȚțȦȧȨȩȮȯȲȳ"
    "ẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộ"
    "ỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ"
)
ACCENT_WORDS = (
    "café naïve résumé façade jalapeño crème brûlée São Paulo Zürich Kraków "
    "Ångström smörgåsbord Øresund Đà Nẵng Hà Nội tiếng Việt Dvořák Škoda "
    "fiancée coöperate Besançon El Niño señor mañana İstanbul Straße"
).split()
COMBINING = rng_chars(0x0300, 0x036F)
OTHER_MARKS = (rng_chars(0x0483, 0x0489) + rng_chars(0x0591, 0x05BD) + rng_chars(0x064B, 0x065F)
               + rng_chars(0x0E31, 0x0E31) + rng_chars(0x0E34, 0x0E3A) + rng_chars(0x0E47, 0x0E4E)
               + rng_chars(0x093C, 0x094D) + rng_chars(0x1AB0, 0x1ABE) + rng_chars(0x1DC0, 0x1DFF)
               + rng_chars(0x20D0, 0x20F0) + rng_chars(0xFE20, 0xFE2F) + ["\u3099", "\u309A"]
               + ["\U0001D165", "\U0001D166", "\U0001D167", "\U000E0100"])

EMOJI_BASIC = rng_chars(0x1F600, 0x1F64F) + rng_chars(0x1F300, 0x1F32F) + rng_chars(0x1F900, 0x1F92F) + list(
    "☀☁☂☃☄★☆☎☑☔☕☘☝☠☢☣☦☪☮☯☸☹☺♀♂♈♠♣♥♦♨♻♿⚓⚡⚽⛄⛔⛪⛵✂✅✈✉✊✋✌✏✒✔✖✝✡✨✳✴❄❇❌❎❓❔❕❗❣❤➕➖➗➡➰➿⤴⤵⬅⬆⬇⬛⬜⭐⭕〰〽㊗㊙")
EMOJI_SEQS = [
    "\u2764\ufe0f", "\u2764\ufe0e", "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",
    "\U0001F469\U0001F3FD\u200d\U0001F4BB", "\U0001F3F3\ufe0f\u200d\U0001F308",
    "\U0001F3F4\u200d\u2620\ufe0f", "\U0001F9D1\U0001F3FF\u200d\U0001F91D\u200d\U0001F9D1\U0001F3FB",
    "\U0001F441\ufe0f\u200d\U0001F5E8\ufe0f", "\U0001F469\u200d\u2764\ufe0f\u200d\U0001F48B\u200d\U0001F468",
    "\U0001F44D\U0001F3FB", "\U0001F44D\U0001F3FC", "\U0001F44D\U0001F3FD", "\U0001F44D\U0001F3FE",
    "\U0001F44D\U0001F3FF", "\U0001F3FB", "\U0001F3FF\U0001F3FF",
    "\U0001F1FA\U0001F1F8", "\U0001F1EF\U0001F1F5", "\U0001F1E9\U0001F1EA", "\U0001F1E8\U0001F1F3",
    "\U0001F1FA\U0001F1F8\U0001F1EF", "\U0001F1E6",
    "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",
    "1\ufe0f\u20e3", "#\ufe0f\u20e3", "*\ufe0f\u20e3", "0\u20e3", "9\ufe0f\u20e3", "\u20e3",
    "\u263a\ufe0f", "\u00a9\ufe0f", "\u2122\ufe0f", "\U0001F9D1\u200d\U0001F384",
]
SKIN_TONES = rng_chars(0x1F3FB, 0x1F3FF)
REGIONAL = rng_chars(0x1F1E6, 0x1F1FF)

FORMAT = (rng_chars(0x200B, 0x200F) + ["\u2060", "\ufeff", "\u00ad", "\u061c"] + rng_chars(0x202A, 0x202E)
          + rng_chars(0x2061, 0x2064) + rng_chars(0x2066, 0x206F) + rng_chars(0xFFF9, 0xFFFB)
          + ["\u180e", "\u0600", "\u0601", "\u06dd", "\u070f", "\U000110BD", "\U0001D173",
             "\U000E0001", "\U000E0020", "\U000E007F", "\u034f", "\u17b4", "\u115f", "\u3164"])
CONTROLS = rng_chars(0x00, 0x1F) + ["\x7f"] + rng_chars(0x80, 0x9F) + ["\ufffd"]
WHITESPACE = [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0", "\u1680"] + rng_chars(0x2000, 0x200A) + [
    "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\x1c", "\x1d", "\x1e", "\x1f", "\x85"]

FULLWIDTH = rng_chars(0xFF01, 0xFF5E) + rng_chars(0xFFE0, 0xFFEE)
HALFWIDTH_KATAKANA = rng_chars(0xFF61, 0xFF9F)

CJK_RANGES = [
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B739), (0x2B740, 0x2B81D),
    (0x2B820, 0x2CEA1), (0x2CEB0, 0x2EBE0), (0x30000, 0x3134A), (0x31350, 0x323AF),
    (0xF900, 0xFAD9), (0x2F800, 0x2FA1D), (0x2E80, 0x2EF3), (0x2F00, 0x2FD5), (0x3190, 0x319F),
    (0x31C0, 0x31E3), (0x3200, 0x32FF), (0x3300, 0x33FF),
]
# Code points at and next to the ends of the CJK blocks (and of the ranges
# that BERT's "is Chinese character" test uses).
CJK_EDGES = [chr(c) for c in (
    0x33FF, 0x3400, 0x4DBF, 0x4DC0, 0x4DFF, 0x4E00, 0x9FA5, 0x9FFF, 0xA000, 0xF8FF, 0xF900, 0xFA6D,
    0xFAD9, 0xFAFF, 0xFB00, 0x1FFFF, 0x20000, 0x2A6DF, 0x2A6E0, 0x2A6FF, 0x2A700, 0x2B739, 0x2B73F,
    0x2B740, 0x2B81D, 0x2B81F, 0x2B820, 0x2B91F, 0x2B920, 0x2CEA1, 0x2CEAF, 0x2CEB0, 0x2EBE0, 0x2EBEF,
    0x2EBF0, 0x2F7FF, 0x2F800, 0x2FA1D, 0x2FA1F, 0x2FA20, 0x2FFFD, 0x30000, 0x3134A, 0x31350, 0x323AF,
    0x323B0, 0x3FFFD)]
CJK_PUNCT = ["\u3001", "\u3002", "\u300c", "\u300d", "\u300e", "\u300f", "\u3010", "\u3011",
             "\u3008", "\u3009", "\u300a", "\u300b", "\uff0c", "\uff1a", "\uff1b", "\uff01", "\uff1f",
             "\u30fb", "\u3003", "\u3005", "\u3006", "\u3007", "\u303b", "\u303c"]

SCRIPTS = {
    "hiragana": rng_chars(0x3041, 0x3096) + rng_chars(0x3099, 0x309F),
    "katakana": rng_chars(0x30A1, 0x30FF) + rng_chars(0x31F0, 0x31FF),
    "hangul": rng_chars(0xAC00, 0xD7A3),
    "jamo": rng_chars(0x1100, 0x11FF) + rng_chars(0x3131, 0x318E),
    "thai": rng_chars(0x0E01, 0x0E3A) + rng_chars(0x0E3F, 0x0E5B),
    "arabic": rng_chars(0x0621, 0x064A) + rng_chars(0x064B, 0x0652) + rng_chars(0x0671, 0x06D3),
    "hebrew": rng_chars(0x05D0, 0x05EA) + rng_chars(0x05B0, 0x05C7),
    "devanagari": rng_chars(0x0900, 0x0963) + rng_chars(0x0966, 0x097F),
    "greek": rng_chars(0x0386, 0x03CE) + rng_chars(0x1F00, 0x1FFE),
    "cyrillic": rng_chars(0x0400, 0x04FF) + rng_chars(0x0500, 0x052F),
    "armenian": rng_chars(0x0531, 0x0556) + rng_chars(0x0561, 0x0587),
    "georgian": rng_chars(0x10A0, 0x10C5) + rng_chars(0x10D0, 0x10FF) + rng_chars(0x1C90, 0x1CBF),
    "cherokee": rng_chars(0x13A0, 0x13F5) + rng_chars(0xAB70, 0xABBF),
    "ethiopic": rng_chars(0x1200, 0x1248),
    "latin-ext": rng_chars(0x0180, 0x024F) + rng_chars(0x1E00, 0x1EFF) + rng_chars(0x2C60, 0x2C7F),
    "ipa": rng_chars(0x0250, 0x02AF) + rng_chars(0x02B0, 0x02FF),
    "deseret": rng_chars(0x10400, 0x1044F),
    "glagolitic": rng_chars(0x2C00, 0x2C5F),
}
SCRIPT_WORDS = (
    "こんにちは ありがとう カタカナ トウキョウ 안녕하세요 한국어 สวัสดี ภาษาไทย مرحبا العربية "
    "שלום עברית नमस्ते हिन्दी Ελληνικά ΑΘΗΝΑ Ὀδυσσεύς ΣΟΦΟΣ σοφός Москва ПРИВЕТ Ёлка "
    "Україна Բարեւ ქართული ᏣᎳᎩ ሰላም 北京大学 中华人民共和国 東京都 日本語"
).split()

SPECIAL_CASING = [
    "\u0130", "\u0131", "\u00df", "\u1e9e", "\u01c4", "\u01c5", "\u01c6", "\u01c7", "\u01c8", "\u01ca",
    "\u01cb", "\u01f1", "\u01f2", "\u03a3", "\u03c3", "\u03c2", "\u1f88", "\u1f8f", "\u1fbc", "\u1fcc",
    "\u1ffc", "\u0149", "\u01f0", "\u0390", "\u03b0", "\u0587", "\u1e96", "\u1e97", "\u1e98", "\u1e99",
    "\u1e9a", "\ufb00", "\ufb01", "\ufb02", "\ufb03", "\ufb04", "\ufb05", "\ufb06", "\ufb13", "\ufb17",
    "\u212a", "\u212b", "\u2126", "\u0345", "\u24b6", "\u24e9", "\u2160", "\u216f", "\u13a0", "\uab70",
    "\U00010400", "\U00010428", "\u2c00", "\ua640", "\u0178", "\u00b5", "\u017f", "\u1e9b", "\u03d0",
    "\u03f4", "\u1c80", "\u1c88", "\u0049\u0307", "\u0069\u0307", "\u03a3\u0301", "\U0001E900",
    "\U00016E40", "\U000104B0", "\U00010C80", "\U000118A0",
]
MATH_ALNUM = rng_chars(0x1D400, 0x1D7FF)
LETTERLIKE = rng_chars(0x2100, 0x214F) + rng_chars(0x2150, 0x218B) + rng_chars(0x2460, 0x24FF)
PRIVATE_USE = ["\ue000", "\ue001", "\uf8ff", "\U000F0000", "\U000FFFFD", "\U00100000", "\U0010FFFD"]
UNASSIGNED = ["\u0378", "\u0379", "\u0380", "\u0381", "\u0382", "\u0383", "\u038b", "\u038d", "\u03a2",
              "\u0530", "\u0557", "\u05ff", "\u0eff", "\u2065", "\U000E01F0", "\U000E0080", "\U0001FFFD",
              "\U0003FFFD", "\U000DFFFD", "\U0001F8FF", "\U00012550"]
NONCHARACTERS = ["\ufffe", "\uffff", "\ufdd0", "\ufdef", "\U0001FFFE", "\U0001FFFF", "\U0010FFFE",
                 "\U0010FFFF"]
SYMBOLS = list(
    "$¢£¤¥€₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₴₵₸₹₺₼₽₾₿﷼﹩＄￠￡￥￦"          # Sc
    "^`¨¯´¸˂˃˄˅˒˓˔˕˖˗˘˙˚˛˜˝˞˟˥˦˧˨˩˪˫˭˯˰˿͵΄΅᾽᾿῀῁῍῎῏῝῞῟῭΅`´῾゛゜꜀꜁꜂꜃꜄꜅꜆꜇꜈꜉꜊꜋꜌꜍꜎꜏꜐꜑꜒꜓꜔꜕꜖꜠꜡꞉꞊＾｀￣"  # Sk
    "+<=>|~¬±×÷϶؆؇؈⁄⁒⁺⁻⁼₊₋₌℘⅀⅁⅂⅃⅄⅋←↑→↓↔∀∂∃∅∆∇∈∉∑−∓∔∕∗∘∙√∛∜∝∞∟∠∧∨∩∪∫∬∮≈≠≡≤≥⊂⊃⊕⊗⊥⋅⌈⌉⌊⌋⟨⟩⨀﬩﹢﹤﹥﹦＋＜＝＞｜～￢"  # Sm
    "©®°¦҂֍֎؎؏۞۩۽۾߶৺୰௳௴௵௶௷௸௺౿൏൹༁༂༃༓༕༖༗༚༛༜༝༞༟༴༶༸྾྿࿀࿁࿂࿃࿄࿅࿇࿈࿉࿊࿋࿌࿎࿏࿕࿖࿗࿘႞႟᎐᎑᎒᎓᎔᎕᎖᎗᎘᎙"  # So
    "℀℁℃℄℅℆℈℉℔№℗℞℟℠℡™℣℥℧℩℮℺℻⅊⅌⅍⅏↕↖↗↘↙↜↝↞↟↡↢↤↥↧↨↩↪↫↬↭↯↰↱↲↳↴↵↶↷↸↹↺↻↼↽↾↿⇀⇁⇂⇃⇄⇅⇆⇇⇈⇉⇊⇋⇌⇍⇐⇑⇒⇓⇔"
    "⌀⌁⌂⌃⌄⌅⌆⌇⌌⌍⌎⌏⌐⌑⌒⌓⌔⌕⌖⌗⌘⌙⌚⌛⌜⌝⌞⌟■□▢▣▤▥▦▧▨▩▪▫▬▭▮▯▲△▶▷▼▽◀◁◆◇◈◉◊○◌◍◎●"
    "〒〓〠〶〷〾〿㆐㆑㈀㈁㈂㈱㉐㉠㊀㍱㏿䷀䷁䷂꒐꒑꒒꠨꠩꠪꠫"
)
DIGITS = (list("0123456789") + rng_chars(0x0660, 0x0669) + rng_chars(0x06F0, 0x06F9)
          + rng_chars(0x0966, 0x096F) + rng_chars(0x09E6, 0x09EF) + rng_chars(0x0E50, 0x0E59)
          + rng_chars(0x0F20, 0x0F33) + rng_chars(0x1040, 0x1049) + rng_chars(0xFF10, 0xFF19)
          + rng_chars(0x1D7CE, 0x1D7FF) + rng_chars(0x104A0, 0x104A9) + rng_chars(0x2070, 0x2079)
          + rng_chars(0x2080, 0x2089) + rng_chars(0x00B2, 0x00B3) + ["\u00b9", "\u00bc", "\u00bd", "\u00be"]
          + rng_chars(0x2150, 0x215F) + rng_chars(0x2460, 0x2473) + rng_chars(0x3021, 0x3029)
          + ["\u3007", "\u96f6", "\u4e00", "\u5341", "\u767e", "\u5343", "\u4e07"])

SPECIAL_TOKEN_TEXTS = [
    "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[mask]", "x[MASK]y", "[MASK][MASK]", "[ MASK ]",
    "[MASK", "MASK]", "[[MASK]]", "[Mask]", "[cls]", "[SEP][CLS]", "[UNK][UNK][UNK]", "[PAD] [PAD]",
    "\uff3b\uff2d\uff21\uff33\uff2b\uff3d", "[MASK]\u0301", "\u00e9[MASK]\u00e9", "\u4e2d[MASK]\u6587",
    "[MASK]\u200b", "\u200b[MASK]", "[MA\u200bSK]", "[MASK]\ufeff[SEP]", "##", "##ing", "[UNK]##",
]


# ---------------------------------------------------------------------------
# Fixed edge cases
# ---------------------------------------------------------------------------

def fixed_cases():
    out = []
    add = out.append

    # Empty, whitespace-only and control-only strings.
    for s in ["", " ", "  ", "   ", "\t", "\n", "\r", "\r\n", " \t\n\r ", "\u00a0", "\u3000", "\u2028",
              "\u2029", "\u1680", "\u202f", "\u205f", "\x85", "\x0b\x0c", "\x1c\x1d\x1e\x1f",
              "".join(WHITESPACE), " " * 300]:
        add(s)
    for s in ["\x00", "\x00\x00\x00", "\x01\x02\x03", "\x7f", "\x80\x81\x9f", "\ufffd", "\ufffd\ufffd",
              "".join(CONTROLS), "\u200b", "\ufeff", "\u00ad", "\u200b\u200c\u200d", "".join(FORMAT),
              "\x00 \x00", "\ufffd \ufffd", "a\x00b", "a\ufffdb", "a\u00adb", "a\u200bb", "a\ufeffb",
              "a\x7fb", "a\x85b", "a\u2028b", "a\tb\nc\rd", "\u0301", "\u0301\u0301", " \u0301",
              "\u0301a", "a \u0301 b"]:
        add(s)

    # Special tokens written in the text, alone and in context.
    for s in SPECIAL_TOKEN_TEXTS:
        add(s)
        add("The capital of France is " + s + ".")
        add(s + " " + s)
    add("[CLS] hello [SEP] world [SEP]")
    add("a[MASK]b[SEP]c[PAD]d[UNK]e[CLS]f")

    # Words of exactly 99, 100, 101 and 250 characters (WordPiece gives up
    # on words longer than 100 characters).
    pieces = ["a", "e", "\u00e9", "e\u0301", "\u0434", "\u3042", "\u0130", "\u00df", "\ufb03", "\u03a3",
              "\u1f88", "\U0001D400", "\u0e01", "\u05d0", "\u0915\u094d", "ab", "xy", "un", "##"]
    for n in (98, 99, 100, 101, 102, 250):
        for p in pieces:
            add((p * n)[:n])  # exactly n code points
        add("x" + "\u0301" * (n - 1))
        add("\u00e9" * (n // 2) + "e\u0301" * ((n - n // 2) // 2) + "e" * ((n - n // 2) % 2))
        add(("unbelievable" * 30)[:n])
        add(("tokenization" * 30)[:n])
        add("hello " + ("internationalization" * 20)[:n] + " world")
        add(("\u00e9" * n) + "!")
        add("!" + ("a" * n) + "\u3002" + ("b" * n))
    return out


# ---------------------------------------------------------------------------
# Random mixtures
# ---------------------------------------------------------------------------

class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def run(self, pool, lo, hi):
        return "".join(self.pick(pool) for _ in range(self.r.randint(lo, hi)))

    def cjk(self):
        lo, hi = self.pick(CJK_RANGES)
        return chr(self.r.randint(lo, hi))

    # Each fragment generator returns a short string.
    def f_ascii_word(self):
        w = self.pick(ASCII_WORDS)
        k = self.r.random()
        if k < 0.15:
            w = w.upper()
        elif k < 0.3:
            w = w.capitalize()
        return w

    def f_punct(self):
        return self.run(ASCII_PUNCT if self.r.random() < 0.6 else UNICODE_PUNCT, 1, 3)

    def f_accent_pre(self):
        if self.r.random() < 0.5:
            return self.pick(ACCENT_WORDS)
        return self.run(PRECOMPOSED + list("abcdefghijklmnopqrstuvwxyz"), 2, 10)

    def f_accent_decomposed(self):
        s = []
        for _ in range(self.r.randint(1, 8)):
            s.append(self.pick("aeiouncyzAEIOUNCSZ"))
            for _ in range(self.r.randint(0, 3)):
                s.append(self.pick(COMBINING))
        return "".join(s)

    def f_combining_run(self):
        base = self.pick(["a", "e", "Z", " ", "", "\u4e2d", "\u3042", "1", "\u05d0", "\u0e01", "-"])
        return base + self.run(COMBINING + OTHER_MARKS, 5, 60)

    def f_emoji(self):
        k = self.r.random()
        if k < 0.35:
            return self.run(EMOJI_BASIC, 1, 4)
        if k < 0.7:
            return self.pick(EMOJI_SEQS)
        if k < 0.8:
            return self.pick(EMOJI_BASIC) + self.pick(SKIN_TONES)
        if k < 0.9:
            return self.run(REGIONAL, 1, 5)
        return self.pick(EMOJI_BASIC) + "\u200d" + self.pick(EMOJI_BASIC)

    def f_format(self):
        return self.run(FORMAT, 1, 3)

    def f_control(self):
        return self.run(CONTROLS, 1, 3)

    def f_space(self):
        return self.run(WHITESPACE, 1, 4)

    def f_fullwidth(self):
        return self.run(FULLWIDTH if self.r.random() < 0.7 else HALFWIDTH_KATAKANA, 1, 8)

    def f_cjk(self):
        if self.r.random() < 0.15:
            return self.run(CJK_EDGES, 1, 3)
        return "".join(self.cjk() for _ in range(self.r.randint(1, 8)))

    def f_cjk_punct(self):
        return self.run(CJK_PUNCT, 1, 2)

    def f_script(self):
        if self.r.random() < 0.3:
            return self.pick(SCRIPT_WORDS)
        return self.run(SCRIPTS[self.pick(sorted(SCRIPTS))], 1, 10)

    def f_special_casing(self):
        return self.run(SPECIAL_CASING, 1, 4) + ("" if self.r.random() < 0.5 else self.f_ascii_word())

    def f_math(self):
        return self.run(MATH_ALNUM if self.r.random() < 0.7 else LETTERLIKE, 1, 6)

    def f_private(self):
        return self.run(PRIVATE_USE + UNASSIGNED + NONCHARACTERS, 1, 3)

    def f_symbol(self):
        return self.run(SYMBOLS, 1, 4)

    def f_digits(self):
        return self.run(DIGITS, 1, 6)

    def f_special_token(self):
        return self.pick(SPECIAL_TOKEN_TEXTS)

    def f_long_word(self):
        n = self.pick([99, 100, 101, 250, self.r.randint(90, 110)])
        pool = self.pick([list("abcdefghijklmnopqrstuvwxyz"), PRECOMPOSED, SCRIPTS["cyrillic"],
                          SCRIPTS["hiragana"], SCRIPTS["greek"], SPECIAL_CASING])
        return "".join(self.pick(pool) for _ in range(n))[:n]  # exactly n code points

    GENERATORS = [
        ("f_ascii_word", 14), ("f_punct", 6), ("f_accent_pre", 5), ("f_accent_decomposed", 5),
        ("f_combining_run", 2), ("f_emoji", 5), ("f_format", 4), ("f_control", 4), ("f_space", 5),
        ("f_fullwidth", 3), ("f_cjk", 6), ("f_cjk_punct", 3), ("f_script", 6), ("f_special_casing", 4),
        ("f_math", 2), ("f_private", 2), ("f_symbol", 3), ("f_digits", 3), ("f_special_token", 2),
        ("f_long_word", 1),
    ]

    def fragment(self):
        names = [n for n, _ in self.GENERATORS]
        weights = [w for _, w in self.GENERATORS]
        return getattr(self, self.r.choices(names, weights)[0])()

    def separator(self):
        k = self.r.random()
        if k < 0.55:
            return " "
        if k < 0.8:
            return ""
        return self.pick(WHITESPACE + FORMAT[:6] + ["\x00", "\u00ad"])

    def mixture(self):
        k = self.r.random()
        if k < 0.6:
            nfrag = self.r.randint(1, 8)
        elif k < 0.9:
            nfrag = self.r.randint(8, 30)
        else:
            nfrag = self.r.randint(30, 120)
        parts = []
        for i in range(nfrag):
            if i:
                parts.append(self.separator())
            parts.append(self.fragment())
        s = "".join(parts)
        k = self.r.random()
        if k < 0.1:
            s = self.pick(WHITESPACE) + s
        elif k < 0.2:
            s = s + self.pick(WHITESPACE)
        return s

    def focused(self):
        """A string made from one or two categories only."""
        g1 = getattr(self, self.pick([n for n, _ in self.GENERATORS]))
        g2 = getattr(self, self.pick([n for n, _ in self.GENERATORS]))
        return self.separator().join(g1() if self.r.random() < 0.7 else g2()
                                     for _ in range(self.r.randint(1, 6)))


def generate(seed, count):
    out = fixed_cases()
    g = Gen(seed)
    while len(out) < count:
        out.append(g.mixture() if g.r.random() < 0.75 else g.focused())
    return out[:count]


def dumps_line(s):
    line = json.dumps(s, ensure_ascii=False)
    return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output JSON Lines file")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--count", type=int, default=4000)
    args = ap.parse_args(argv)

    strings = generate(args.seed, args.count)
    for s in strings:
        for c in s:
            if 0xD800 <= ord(c) <= 0xDFFF:
                raise AssertionError("surrogate code point generated")
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for s in strings:
            f.write(dumps_line(s))
            f.write("\n")
    print(f"[swift-bert] wrote {len(strings)} adversarial strings to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
