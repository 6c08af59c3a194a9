"""What a document says about itself: title, date, publisher, 文号, issuing authority, type.

Scraped pages and official documents carry their metadata in visible text: a header
(title, 「2025年3月18日」, 来源：…) and, for 红头文件, a signature block at the end
(发文机关 and 「二〇二四年三月五日」). These are read here when the file's own metadata
is missing or junk, and :func:`build_document` is the shared tail of every reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import DocumentError
from rag.types import Document, page_at

from .text import _is_boilerplate, _join_lines, _normalize, _remove_boilerplate, strip_markup

# ---------------------------------------------------------------------------------------
# Dates: 2024-10-07 13:21, 2024年10月7日, 2024/10/07, 二〇二四年十月七日
# ---------------------------------------------------------------------------------------

_DATE_RE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:\s*(\d{1,2})\s*[:：时]\s*(\d{2}))?(?!\d)"
)
_CN_DIGIT = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"○": 0, "零": 0, "Ｏ": 0, "O": 0, "0": 0}
_CN_DATE_RE = re.compile(r"([〇○零Ｏ0一二三四五六七八九]{4})\s*年\s*([一二三四五六七八九十]{1,2})\s*月\s*([一二三四五六七八九十]{1,3})\s*日")


def _cn_number(text: str) -> int:
    """一 .. 三十一 as an int (enough for months and days)."""
    if "十" not in text:
        return _CN_DIGIT[text]
    tens, _, ones = text.partition("十")
    return (_CN_DIGIT[tens] if tens else 1) * 10 + (_CN_DIGIT[ones] if ones else 0)


def find_dates(text: str) -> list[tuple[int, int, str]]:
    """Every valid date in ``text`` as ``(start, end, "YYYY-MM-DD[ HH:MM]")``, in order."""
    found: list[tuple[int, int, str]] = []
    for m in _DATE_RE.finditer(text):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
        if 1 <= month <= 12 and 1 <= day <= 31:
            date = f"{year:04d}-{month:02d}-{day:02d}"
            if m[4] and int(m[4]) < 24 and int(m[5]) < 60:
                date += f" {int(m[4]):02d}:{m[5]}"
            found.append((m.start(), m.end(), date))
    if "年" in text:
        for m in _CN_DATE_RE.finditer(text):
            year = int("".join(str(_CN_DIGIT[c]) for c in m[1]))
            month, day = _cn_number(m[2]), _cn_number(m[3])
            if 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31:
                found.append((m.start(), m.end(), f"{year:04d}-{month:02d}-{day:02d}"))
    return sorted(found)


def _parse_date(text: str) -> str | None:
    """First valid date in ``text`` as ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM``, else None."""
    dates = find_dates(text)
    return dates[0][2] if dates else None


# ---------------------------------------------------------------------------------------
# The header: title, date and publisher from the first lines of a page or document
# ---------------------------------------------------------------------------------------

_PUBLISHER_RE = re.compile(
    r"(?:^|\s)(?:来源|稿源|出处|信息来源|文章来源|新闻来源|发布机构|发布单位|发文机关|来源单位)\s*[:：]\s*"
    r"([^\s|｜]{1,40})"
    r"|^(?:华人|头条|百家|企鹅|网易|搜狐|澎湃|大鱼|一点|凤凰|东方|新浪|抖音|快手|人民|新华|央视|微信公众|公众)号"
    + r"\s*[:：]\s*([^\s|｜]{1,40})"  # self-media platforms: 华人号:山西头条
)
_AUTHOR_RE = re.compile(r"(?:^|\s)(?:作者|记者|撰稿|撰文)(?:\s*[:：|丨]\s*|\s+)([^\s|｜:：]{2,20})")
# Labels, counters and widgets that share a line with the date: 「发布时间：… 浏览次数：12 字号：大 中 小」.
_META_WORDS_RE = re.compile(
    r"发布时间|发布日期|发表时间|更新时间|成文日期|发布于|时间|日期|发布|阅读量|阅读数|阅读|浏览次数|浏览量|浏览"
    + r"|点击量|点击数|点击|次|字号|分享|收藏|打印|评论|[大中小]|[\dA-Za-z:：+\-/.\s|｜丨【】\[\]()（）·•]"
)
_META_REST_MAX = 4  # characters a date line may hold beyond date, labels and counters
# A dated subtitle that is part of the text: 「——2026年2月2日在山西省第十四届人民代表大会第五次会议上」.
_DATED_LINE_RE = re.compile(r"^[—―\-–－（(\s]*(?:\d{4}|[〇○零Ｏ一二三四五六七八九]{4})\s*年")
_TITLE_END_BAD = tuple("。；;，,：:、")
_LIST_MARKER_RE = re.compile(r"(?:[(（]?(?:\d{1,2}|[一二三四五六七八九十]{1,3})[)）、.．]|[①-⑳])")
_POLICY_TITLE_RE = re.compile(
    r"^关于.+|.+(?:通知|决定|意见|办法|方案|规定|公告|通告|通报|报告|批复|决议|纪要|条例|细则|规划|计划"
    r"|规则|指引|指南|公报|法)$"
)
_HEADER_MAX_LINES = 12
_META_LINE_MAX = 80
_TITLE_MIN, _TITLE_MAX = 4, 80
# Titles that are no titles: what browsers, Office and scanners put in a file's properties.
_JUNK_TITLE_RE = re.compile(
    r"^(?:about:blank|untitled.*|无标题.*|新建.*文档.*|文档\d*|document\d*|microsoft (?:word|powerpoint|excel) - .*"
    r"|powerpoint 演示文稿|powerpoint presentation|幻灯片 ?\d*|slide ?\d*|sheet\d*|工作表\d*|scan.*|img[_-]?\d+.*|dsc[_-]?\d+.*"
    r"|https?://\S+|www\.\S+|[\w\-. ]+\.(?:docx?|wps|pptx?|xlsx?|pdf|txt|html?|jpe?g|png|tiff?)|[0-9a-f\-_]{8,})$",
    re.IGNORECASE,
)


def junk_title(title: str | None) -> bool:
    """True for empty titles and those a tool made up (about:blank, a file name, 无标题)."""
    return not title or not title.strip() or _JUNK_TITLE_RE.match(title.strip()) is not None


@dataclass
class _Header:
    """What the first lines of a text say about the article, and which lines said it."""

    title: str | None = None
    published: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    drop: set[int] = field(default_factory=set)  # line indices that are header, not body


def _parse_meta_line(line: str) -> dict[str, str] | None:
    """Parse a header line holding only a date, publisher and/or author; None for other lines."""
    if len(line) > _META_LINE_MAX:
        return None
    found: dict[str, str] = {}
    date = _parse_date(line)
    if date:
        found["published"] = date
    if m := _PUBLISHER_RE.search(line):
        found["publisher"] = m[1] or m[2]
    if m := _AUTHOR_RE.search(line):
        found["author"] = m[1]
    if not found:
        return None
    rest = _META_WORDS_RE.sub("", _AUTHOR_RE.sub(" ", _PUBLISHER_RE.sub(" ", _CN_DATE_RE.sub(" ", _DATE_RE.sub(" ", line)))))
    return found if len(rest) <= _META_REST_MAX else None


def _title_like(line: str) -> bool:
    """Could this line be a headline? Not too short or long, no list marker, no sentence end."""
    return (
        _TITLE_MIN <= len(line) <= _TITLE_MAX
        and not line.endswith(_TITLE_END_BAD)
        and not _LIST_MARKER_RE.match(line)
    )


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _read_header(lines: list[str], text: str, known_title: str | None = None) -> _Header:
    """Find title, date and publisher in the lines before the body starts.

    The scan stops at the first line that is neither boilerplate, metadata, a dated
    subtitle, very short nor title-like (a long or sentence-like line: the body). The title
    is, in order: the line equal to ``known_title``; a candidate quoted as 《candidate》 in
    ``text``; the candidate just before the date line; a candidate shaped like a policy
    title (关于…的通知); the first candidate. Lines before the title and the metadata lines
    are marked to drop; a dated subtitle gives its date and stays in the text.
    """
    header = _Header()
    candidates: list[int] = []
    date_index: int | None = None
    dated_lines = False
    seen = 0
    for i, line in enumerate(lines):
        if not line or line == PAGE_MARK:
            continue
        seen += 1
        if seen > _HEADER_MAX_LINES:
            break
        if (found := _parse_meta_line(line)) is not None:
            header.drop.add(i)
            if "published" in found and date_index is None:
                date_index = i
                header.published = found.pop("published")
            for key, value in found.items():
                header.meta.setdefault(key, value)
        elif _DATED_LINE_RE.match(line) and (dates := find_dates(line[:40])):
            # a law's 「…通过」「…修正」 lines: the latest is the version in force
            if date_index is None or (dated_lines and dates[0][2] > (header.published or "")):
                date_index, header.published = i, dates[0][2]
            dated_lines = True
        elif _is_boilerplate(line) or len(line) < _TITLE_MIN:
            continue
        elif _title_like(line):
            candidates.append(i)
        else:
            break
    title_index = _pick_title(lines, text, candidates, date_index, known_title)
    if title_index is not None:
        header.title = lines[title_index]
        header.drop.update(i for i in range(title_index + 1) if lines[i] != PAGE_MARK)
    return header


def _pick_title(
    lines: list[str], text: str, candidates: list[int], date_index: int | None, known_title: str | None
) -> int | None:
    """Index of the title line among ``candidates`` (see :func:`_read_header`), or None."""
    if known_title is not None:
        key = _squash(known_title)
        return next((i for i in candidates if _squash(lines[i]) == key), None)
    rules = (
        lambda i: f"《{lines[i]}》" in text,
        lambda i: date_index is not None and i < date_index and not any(i < j < date_index for j in candidates),
        lambda i: _POLICY_TITLE_RE.match(lines[i]) is not None,
        lambda i: True,
    )
    for rule in rules:
        for i in candidates:
            if rule(i):
                return i
    return None


_DATELINE_RE = re.compile(r"新华社|中新社|记者|电$|讯|消息|[（(【]|\d+月\d+日|最新|文件$")
_SOURCE_TAG_RE = re.compile(r"^【[^】]{1,10}】")
_SERIAL_RE = re.compile(r"^\S{0,12}(?:19|20)\d{2}年第\d{1,4}号$")  # 「2020年第2号」, 「税务总局公告2020年第8号」
_KICKER_MAX = 6  # a first segment this short is a kicker (引题), not the whole headline


def _leading_title(body: str) -> str | None:
    """The title of a document stored as one long line, 「标题 正文……」: its first
    space-separated segment when that reads as a headline, with a second short segment
    (「北京出台28条务实举措 助推疫情下的文化企业健康发展」) when the body or a dateline
    follows it; after an issuer's name (「四川省…指挥部 关于做好…的通知」), the 关于… segment."""
    first = body.split("\n", 1)[0]
    if len(first) <= _TITLE_MAX:
        return None
    segments = re.split(r"\s+", _SOURCE_TAG_RE.sub("", first), maxsplit=4)

    def headline(segment: str) -> bool:
        return _title_like(segment) and "。" not in segment and not segment.endswith(_TITLE_END_BAD)

    if _ORG_RE.match(segments[0]):
        found = next((seg for seg in segments[1:4] if seg.startswith("关于") and headline(seg)), None)
        if found:
            return found
    if not headline(segments[0]):
        return None
    if len(segments) > 2 and len(segments[0]) <= _KICKER_MAX and headline(segments[1]) \
            and not _DATELINE_RE.search(segments[1]) and (not _ORG_RE.match(segments[0]) or "关于" in segments[1]):
        # 「集结湖北！ 国家卫生健康委建立……机制」: a kicker, then the headline; 「国务院扶贫办 财政部关于……的通知」
        return f"{segments[0]} {segments[1]}"
    if len(segments) > 3 and segments[1] != segments[0] and len(segments[1]) <= 30 and headline(segments[1]) \
            and not _DOC_NUMBER_RE.search(segments[1]) and not _SERIAL_RE.match(segments[1]) \
            and not _DATELINE_RE.search(segments[1]) \
            and (len(segments[2]) > 30 or "。" in segments[2] or _DATELINE_RE.search(segments[2])
                 or _DOC_NUMBER_RE.match(segments[2])):
        return f"{segments[0]} {segments[1]}"
    return segments[0]


# 「【发文日期】 2020-01-30」, 「发文日期：2020-02-10」 inside a long first line
_LABELED_DATE_RE = re.compile(r"(?:发文日期|发布日期|发布时间|成文日期|印发日期)\s*[】\]]?\s*[:：]?\s*")
_LABELED_SCAN = 500


def _labeled_date(body: str) -> str | None:
    """A date given with its label near the start: 「发文日期：2020-02-10」."""
    for m in _LABELED_DATE_RE.finditer(body, 0, _LABELED_SCAN):
        dates = find_dates(body[m.end():m.end() + 25])
        if dates and dates[0][0] == 0:
            return dates[0][2]
    return None


# ---------------------------------------------------------------------------------------
# Official-document fields: 文号, issuing authority, signature date, document type
# ---------------------------------------------------------------------------------------

# 晋政发〔2024〕12号, 国办发[2020]5号, 津商外资〔2020〕1号
_DOC_NUMBER_RE = re.compile(
    r"([\u4e00-\u9fff]{1,12}\s*[〔\[［【(（]\s*(?:19|20)\d{2}\s*[〕\]］】)）]\s*第?\s*\d{1,5}\s*号)"
)
_DOC_NUMBER_SCAN = 600  # the own 文号 stands in the header; later ones are citations
_ORG_RE = re.compile(
    r"^[\u4e00-\u9fff（）()]{2,40}(?:人民政府|政府|办公厅|办公室|委员会|常委会|委|局|厅|部|署|院|中心|小组|指挥部"
    r"|公司|银行|协会|学会|基金会|集团|党委|支行|分行|管委会|组|联合会|大学|学校|医院|监狱|研究所|事务所|法院|检察院|政协)$"
)
_SIGN_TAIL = 300  # the signature block is in the last characters
_SIGN_AFTER_MAX = 60  # what may follow the signature date: （此件公开发布）, a contact line
_NOT_SIGN_AFTER = re.compile(r"^\s*(?:起|前|后|以前|以后|以来|至|到|开始|零时|0时|24时|期间|印发|发布的|起施行|施行|，|,|、)")
_DOC_TYPES = (
    ("实施细则", "细则"), ("细则", "细则"), ("工作报告", "报告"), ("报告", "报告"), ("通知", "通知"),
    ("通告", "通告"), ("公告", "公告"), ("通报", "通报"), ("意见", "意见"), ("办法", "办法"), ("规定", "规定"),
    ("决定", "决定"), ("决议", "决议"), ("方案", "方案"), ("批复", "批复"), ("条例", "条例"), ("规则", "规则"),
    ("规划", "规划"), ("计划", "计划"), ("纲要", "纲要"), ("指南", "指南"), ("指引", "指引"), ("公报", "公报"),
    ("纪要", "纪要"), ("命令", "命令"), ("函", "函"), ("宪法", "法律"), ("法典", "法律"), ("法", "法律"),
    ("修正案", "法律"), ("解释", "解释"), ("措施", "措施"), ("公示", "公示"),
)
_TITLE_TAIL_RE = re.compile(r"(?:[（(][^（）()]{1,20}[）)]|[_\-]\d{4}-\d{2}-\d{2}|\s)+$")


def doc_type(title: str) -> str | None:
    """The document type a title ends with: 关于…的通知 -> 通知, …安全生产法（2021年修正） -> 法律."""
    core = _TITLE_TAIL_RE.sub("", title or "").rstrip("》」”\"")
    return next((kind for suffix, kind in _DOC_TYPES if core.endswith(suffix)), None)


def doc_number(text: str) -> str | None:
    """The document's own 文号 from its header; a number cited as 《…》（国发〔2020〕5号） is not it."""
    for m in _DOC_NUMBER_RE.finditer(text, 0, _DOC_NUMBER_SCAN):
        before = text[max(0, m.start() - 3):m.start()]
        if not any(c in before for c in "（(》"):
            return re.sub(r"\s+", "", m[1])
    return None


def _org_before(text: str) -> str | None:
    """The issuing authority standing right before position ``len(text)`` (signature)."""
    tokens = re.split(r"[\s　]+", text.rstrip())
    orgs: list[str] = []
    for token in reversed(tokens):
        if not _ORG_RE.match(token):
            break
        orgs.append(token)
        if len(orgs) == 3:
            break
    return "、".join(reversed(orgs)) or None


def signature(text: str) -> tuple[str | None, str | None]:
    """``(date, authority)`` from the signature block at the end of an official document:
    「……特此通知。\\n山西省人民政府\\n2024年3月5日」; a date inside a sentence is not one.

    A 印发 notice signs before the document it issues (「……请认真贯彻执行。 陕西省人民政府办公厅
    2020年2月16日 陕西省……若干措施 ……」), so without a signature at the end, the first
    date standing alone between an authority's name and a break is taken."""
    tail_start = max(0, len(text) - _SIGN_TAIL)
    tail = text[tail_start:]
    for start, end, date in reversed(find_dates(tail)):
        after = tail[end:].strip()
        if len(after) > _SIGN_AFTER_MAX or _NOT_SIGN_AFTER.match(tail[end:]):
            continue
        before = tail[:start]
        last = re.split(r"[\s。；！]", before)[-1]
        if last and not _ORG_RE.match(last):
            continue  # 「于2020年2月5日」: a date inside a sentence
        return date[:10], _org_before(before)
    for start, end, date in find_dates(text[:tail_start]):
        if not text[end:end + 1].isspace() or not text[start - 1:start].isspace():
            continue  # a signature date stands alone, apart from the text around it
        if _NOT_SIGN_AFTER.match(text[end:]):
            continue
        if org := _org_before(text[:start]):
            return date[:10], org
    return None, None


def _authority(title: str, lines: list[str], signed_by: str | None) -> str | None:
    """发文机关: a 「XX人民政府文件」 header line, the signature, or 「XX关于…」 in the title."""
    for line in lines[:8]:
        m = re.match(r"^(\S{2,40}?)\s*文件$", line.strip())
        if m and _ORG_RE.match(m[1]):
            return m[1]
    if signed_by:
        return signed_by
    m = re.match(r"^(\S{2,40}?)关于", title or "")
    return m[1] if m and _ORG_RE.match(m[1]) else None


# ---------------------------------------------------------------------------------------
# Pages: a reader joins pages with a marker line; the document keeps their start offsets
# ---------------------------------------------------------------------------------------

PAGE_MARK = "\ue000"  # private-use character on a line of its own between two pages


def _split_pages(body: str) -> tuple[str, list[int]]:
    """Remove the page marker lines; return the text and each page's start offset.

    A page with no text left starts where the next text starts, so :func:`page_of` never
    names it."""
    pages = [part.strip("\n") for part in body.split(PAGE_MARK)]
    text, starts = "", []
    for part in pages:
        if part and text:
            text += "\n\n"
        starts.append(len(text))
        text += part
    return text, starts


def page_of(meta: dict, offset: int) -> int | None:
    """The 1-based page holding character ``offset`` of a document's text, or None when
    the document has no pages (``meta`` is ``Document.meta`` or ``Passage.meta``)."""
    return page_at(meta.get("page_starts", ""), offset)


# ---------------------------------------------------------------------------------------
# Building documents
# ---------------------------------------------------------------------------------------


def document_from_text(
    text: str, source: str = "", title: str | None = None, published: str | None = None
) -> Document:
    """Clean raw (scraped) text into a Document, taking title/date/publisher from its header.

    ``title`` and ``published`` override what the header says. Without any title the file
    stem of ``source`` is used. Raises :class:`DocumentError` when no text is left.
    """
    return build_document(text, source, title=title, published=published)


def build_document(
    raw: str,
    source: str,
    *,
    title: str | None = None,
    published: str | None = None,
    fallback_published: str | None = None,
    meta: dict[str, str] | None = None,
    pages: bool = False,
    header: bool = True,
) -> Document:
    """The shared tail of every reader: normalize, read the header, strip boilerplate, read
    the official-document fields, fill in defaults.

    ``title`` is used unless it is junk (about:blank, a file name). The date is, in order:
    ``published`` (given explicitly), the visible header's date, the signature block's date,
    ``fallback_published`` (a guess from markup). With ``pages``, ``raw`` holds pages
    separated by :data:`PAGE_MARK` lines and ``meta["page_starts"]`` records where each begins.
    ``header=False`` (tables) reads no header: every line is body.
    """
    normalized = _normalize(strip_markup(raw))
    lines = normalized.split("\n")
    title = _normalize(title).replace("\n", " ").strip() if title else None
    title = None if junk_title(title) else title
    header = _read_header(lines, normalized, known_title=title) if header else _Header()
    del normalized
    body = _join_lines(_remove_boilerplate(line for i, line in enumerate(lines) if i not in header.drop))
    if not body.replace(PAGE_MARK, "").strip() and header.title:  # a one-line text: its title is its body
        body = _join_lines(_remove_boilerplate(lines))
    meta = dict(meta or {})
    if pages:
        body, starts = _split_pages(body)
        meta["page_starts"] = ",".join(map(str, starts))
    if not body.strip():
        raise DocumentError("no article text left after removing navigation and boilerplate")
    date = _parse_date(published) if published else None
    if header.published and (date is None or header.published.startswith(date)):
        date = header.published  # same day, but the header also has the time
    signed_on, signed_by = signature(body)
    date = date or _labeled_date(body) or signed_on or (_parse_date(fallback_published) if fallback_published else None)
    final_title = (title or header.title or _leading_title(body) or (Path(source).stem if source else "")
                   or body.split("\n", 1)[0][:40])
    meta.update(header.meta)
    fields = {"doc_number": doc_number("\n".join(lines[:_HEADER_MAX_LINES * 4]) or body), "authority": _authority(final_title, lines, signed_by),
              "doc_type": doc_type(final_title)}
    meta.update({k: v for k, v in fields.items() if v})
    return Document(title=final_title, text=body, source=source, published=date, meta=meta)
