"""The extractor's patterns and thresholds, and jieba tagging with a dictionary-only fallback
(the words the patterns are built from are in rag.zh.lexicon)."""

from __future__ import annotations

import math
import re
from functools import lru_cache

from ..zh import jieba, pos_tags, word_freq
from ..zh import lexicon as lx

# --------------------------------------------------------------------------------------
# Patterns (the words they are built from are in rag.zh.lexicon)
# --------------------------------------------------------------------------------------

_NAME_ASK_RE = re.compile(r"叫什么|名字|姓名|名叫|称作什么|称为什么")
_TRAILING_PUNCT_RE = re.compile(r"[\s?？!！。.,，;；:：~～…、\"'“”」』]+$")
_LEADING_Q_RE = re.compile(r"^(?:请问|请告诉我|请|问|我想知道|想知道|你知道)[,:，：\s]*")

_UNIT_AT_RE = re.compile(rf"(?:{lx.UNIT_ALT})")
_CN_DIGITS = "零〇一二两三四五六七八九十百千万亿"
_ARABIC = r"\d+(?:,\d{3})*(?:\.\d+)?"
_CN_NUM = rf"[{_CN_DIGITS}]+(?:点[零〇一二三四五六七八九]+)?"
_RANGE_SEP = r"\s?[-~～至到—–]\s?"
_ARABIC_QTY = rf"-?{_ARABIC}(?:[万亿]\d{{1,4}})?[万亿千百]{{0,2}}(?:多|余|来)?"
_ARABIC_COUNT_RE = re.compile(
    rf"(?<![\d.a-z])(?:第|[$¥￥€£]|hk\$|us\$)?{_ARABIC_QTY}(?:\s?(?:{lx.UNIT_ALT}))?"
    rf"(?:{_RANGE_SEP}{_ARABIC_QTY}(?:\s?(?:{lx.UNIT_ALT}))?)?"
)
_CN_COUNT_RE = re.compile(
    rf"(?<![\d.,])(?:第)?{_CN_NUM}(?:{_RANGE_SEP}{_CN_NUM})?(?:多|余|来)?(?:{lx.UNIT_ALT})|第[{_CN_DIGITS}]+"
)
_NUMERAL_RE = re.compile(rf"[\d{_CN_DIGITS}]")
_UNIT_END_RE = re.compile(rf"(?:{lx.UNIT_ALT})$")
_BARE_YEAR_RE = re.compile(r"(?:1[0-9]|20)\d{2}\s?年")  # 「2024年」: a date, rarely a count
_CN_ARTICLE_RE = re.compile(r"一\w|十分|万分|百分|千万|万一|一\w\w")
_PERCENT_RE = re.compile(rf"百分之(?:{_ARABIC}|{_CN_NUM})")

_ERAS = (
    "民国|顺治|康熙|雍正|乾隆|嘉庆|道光|咸丰|同治|光绪|宣统|洪武|永乐|嘉靖|万历|崇祯|天启|贞观|开元|天宝"
    "|明治|大正|昭和|平成|令和"
)
_DATE_RE = re.compile(
    rf"[清明唐宋元汉]?(?:{_ERAS})(?:元|[一二三四五六七八九十]{{1,3}})年(?:[一二三四五六七八九十]{{1,2}}月)?"
    r"|(?:西元|公元)前?[一二三四五六七八九十]{1,3}世纪(?:初|中叶|中期|末|上半叶|下半叶)?"
    r"|(?:公元前?|西元前?|前)?(?:\d{1,4}|[〇零一二三四五六七八九]{2,4})\s?年代?(?:初|中期|末期|末|后期|前期)?"
    r"(?:\s?\d{1,2}\s?月(?:\s?\d{1,2}\s?[日号])?)?(?:上半年|下半年|初|底|末)?"
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    r"|\d{1,2}\s?月\s?\d{1,2}\s?[日号]"
    r"|(?:\d{1,2}|[一二三四五六七八九十]{1,3})月(?:份|初|中旬|上旬|下旬|底)?"
    r"|\d{1,2}世纪(?:\d0年代)?(?:初|中叶|中期|末|上半叶|下半叶)?"
    r"|[一二三四五六七八九十]{1,3}世纪(?:初|中叶|中期|末|上半叶|下半叶)?"
    r"|今年|去年|明年|前年|上半年|下半年|年初|年底|年末|近年来|近日|日前|当天|当日|次日|同年"
)
_HAS_DAY_RE = re.compile(r"[日号]$|\d[-/.]\d{1,2}[-/.]\d")
_DATE_NUMERAL_RE = re.compile(r"\d|[〇零一二三四五六七八九十元]")
_SHORT_YEARS_RE = re.compile(r"\d{1,2}年")
_YEAR_IN_DATE_RE = re.compile(
    rf"[清明唐宋元汉]?(?:{_ERAS})(?:元|[一二三四五六七八九十]{{1,3}})年|(?:公元前?|西元前?|前)?(?:\d{{1,4}}|[〇零一二三四五六七八九]{{2,4}})\s?年"
)

_TITLE_RE = re.compile(r"《[^《》\n]{1,40}》|「[^「」\n]{1,30}」|“[^“”\n]{1,30}”|\"[^\"\n]{1,30}\"")
_FOREIGN_NAME_RE = re.compile(rf"[{lx.TRANSLIT}]{{1,8}}(?:[·•・‧-][{lx.TRANSLIT}]{{1,8}})+")
_PERSON_TITLE_RE = re.compile(lx.PERSON_TITLES)
_TITLE_NAME_RE = re.compile(
    lx.PERSON_TITLES
    + r"([\u4e00-\u9fff]{2,3}?)(?=说|表示|指出|介绍|强调|认为|称|告诉|提出|坦言|透露|解释|[,:(])"
)
_PLACE_SUFFIX_RE = re.compile(
    r"(?:省|市|县|区|镇|乡|村|州|国|岛|山|河|湖|江|海|街|路|局|委|厅|部|院|校|中心|公司|集团|大学|学院"
    r"|医院|馆|园|所|办|会|署|站|港|湾|城|营|洲|镇|社区|基地|平台|库|室|团|庄|寺|宫|殿|楼|桥)$"
)

_ORG_SUFFIX_RE = re.compile(
    r"(?:局|委|厅|部|院|校|中心|公司|集团|大学|学院|协会|学会|银行|政府|委员会|电视台|出版社)$"
)
_SENTENCE_RE = re.compile(r"[^。!?;\n]+[。!?;]*")
_CLAUSE_SPLIT_RE = re.compile(r"(?<!\d),|,(?!\d{3}(?!\d))|(?<!\d):|:(?!\d)")
_HAN_OR_ALNUM_RE = re.compile(r"[\u4e00-\u9fff0-9a-z]")
_EDGE_TRIM = " \t\r\n,.;:!?'\"、()[]{}<>…—-~·。，；：！？（）【】"
_SLOT_LEAD_TRIM_RE = re.compile(
    r"(?:名称|名字|全名|原名|简称|又称|别称)?(?:是|为|乃|即|叫做?|称为|名为)|有|在|于|了|的|位于|以"
    r"|(?:共有|共|约|达)(?=[\d零〇一二两三四五六七八九十百千万])"
)
_SLOT_TAIL_TRIM_RE = re.compile(r"(?:的|了|是|等|之一|说|表示|指出|介绍|强调|认为|称)$")

_CONNECTORS = frozenset({"、", "和", "及", "与", "以及", "或", "或者", "、和"})

_MIN_COVERAGE = 0.3  # below this share of the question's key-term weight: abstain
_MIN_CONFIDENCE = 0.25
_MIN_PASSAGE_COVERAGE = 0.6  # confidence shrinks when the passage holds less of the question
_NAME_MISSING_FACTOR = 0.25  # confidence factor per proper name of the question the passage lacks
_TOP_SENTENCES = 6  # sentences searched for slot-filling and clause answers
_MAX_SENTENCES = 40  # sentences searched for typed (regex) candidates
_MIN_RELATIVE = 0.3  # ... as long as they score at least this share of the best one
_TOP_TAGGED = 3  # best sentences segmented and tagged for who/where candidates
_MAX_SLOT = 40  # longest slot-filling answer, in characters


_HAN_RE = re.compile(r"[\u4e00-\u9fff]+")


@lru_cache(maxsize=4096)
def _tag(text: str) -> tuple[tuple[str, str], ...]:
    """Words with part-of-speech tags: jieba's segmentation, tags from its dictionary.

    Much faster than ``jieba.posseg`` (no tagging HMM). Words the dictionary does not know
    are guessed: two to four Han characters starting with a surname -> ``nr`` (a person),
    ending in a place suffix -> ``ns``; digits -> ``m``; Latin letters -> ``eng``.
    """
    tags = pos_tags()
    out = []
    for word in jieba().lcut(text):
        flag = tags.get(word)
        if flag is None:
            if 2 <= len(word) <= 4 and _HAN_RE.fullmatch(word):
                if word[0] in lx.SURNAMES or word.startswith(lx.COMPOUND_SURNAMES):
                    flag = "nr"
                elif _PLACE_SUFFIX_RE.search(word):
                    flag = "ns"
                else:
                    flag = "nz"
            elif word.isdigit():
                flag = "m"
            elif word.isascii() and word.isalpha():
                flag = "eng"
            else:
                flag = "x"
        out.append((word, flag))
    return tuple(out)


@lru_cache(maxsize=65536)
def _term_weight(word: str) -> float:
    """Rarity weight of a word: inverse document frequency from jieba's dictionary."""
    freqs, total = word_freq()
    freq = freqs.get(word, 0)
    idf = math.log(total / (freq + 1))
    w = min(max(idf - 4.0, 1.0), 12.0)
    if len(word) == 1:
        w *= 0.5
    return w
