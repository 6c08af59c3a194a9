"""Read articles (txt, md, html, pdf, docx) into cleaned :class:`~rag.types.Document` values.

Every reader ends in the same place: raw text goes through :func:`clean_text` (newlines,
invisible characters, spaces, NFC, web boilerplate) and a small header parser pulls the
title, date and publisher out of the first lines of a scraped page. Errors are always
:class:`~rag.errors.DocumentError` with the file name and the reason in the message.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

from rag.errors import DocumentError
from rag.types import Document

__all__ = ["SUPPORTED_SUFFIXES", "clean_text", "decode_bytes", "document_from_text", "iter_files", "read_file"]

logger = logging.getLogger(__name__)


class _NoDiscardWarning(logging.Filter):
    """trafilatura logs ``discarding data: None`` at WARNING whenever it finds no main text
    (a 10,000-level nested page, a page of links); :func:`_read_html` then falls back to its
    own extractor, so for our users it is no warning at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("discarding data")


logging.getLogger("trafilatura.core").addFilter(_NoDiscardWarning())

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")

# ---------------------------------------------------------------------------------------
# Finding files
# ---------------------------------------------------------------------------------------


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the readable files named by ``paths``, folders searched recursively.

    Folder contents come sorted by name (depth first), hidden files and Office lock files
    (``~$x.docx``) are skipped, only :data:`SUPPORTED_SUFFIXES` are kept, and each file is
    yielded once even when reachable twice. Symlinked folders are followed, but a folder
    already visited (by resolved path) is not entered again, so link loops end.
    A missing path, or a file named explicitly with an unsupported suffix, raises
    :class:`DocumentError`.
    """
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = _walk(path, seen_dirs)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise DocumentError(
                    f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; "
                    f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
                )
            found = iter([path])
        elif path.exists():
            raise DocumentError(f"{path}: not a regular file or folder")
        else:
            raise DocumentError(f"{path} does not exist (or is a broken link); check the path")
        for file in found:
            key = file.resolve()
            if key not in seen_files:
                seen_files.add(key)
                yield file


def _walk(folder: Path, seen_dirs: set[Path]) -> Iterator[Path]:
    """Depth-first, name-sorted walk of ``folder`` that never enters a folder twice."""
    real = folder.resolve()
    if real in seen_dirs:
        return
    seen_dirs.add(real)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        logger.warning("skipping folder %s: %s", folder, exc)
        return
    for entry in entries:
        if entry.name.startswith((".", "~$")):
            continue
        if entry.is_dir():
            yield from _walk(entry, seen_dirs)
        elif entry.is_file() and entry.suffix.lower() in SUPPORTED_SUFFIXES:
            yield entry


# ---------------------------------------------------------------------------------------
# Decoding bytes
# ---------------------------------------------------------------------------------------

_BOMS = (  # UTF-32 LE must be tested before UTF-16 LE: its BOM starts with FF FE too.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SAMPLE_CHARS = 65536
# Characters that are rare in Chinese prose but common when Big5 bytes are read as GB18030
# (kana, Greek, Cyrillic, box drawing, bopomofo, private use).
_FOREIGN_RE = re.compile("[\u0370-\u04ff\u2500-\u257f\u3040-\u30ff\u3100-\u312f\ue000-\uf8ff\uff61-\uff9f]")
_BINARY_RE = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f\ufffd]")
# Declared charsets that decode any bytes, so they prove nothing (pages often declare them wrongly).
_SINGLE_BYTE_RE = re.compile(r"(?:iso-?8859|latin|l1$|windows-125|cp125|ascii|us-ascii)", re.IGNORECASE)
_DECLARED_CHARSET_RE = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9_\-]{2,30})""", re.IGNORECASE)


def decode_bytes(data: bytes) -> str:
    """Decode file bytes to text: BOM, strict UTF-8, strict GB18030 (or Big5), charset-normalizer.

    Raises :class:`DocumentError` for binary data (NUL bytes, mostly control characters)
    and for bytes no encoding explains.
    """
    return _decode(data)[0]


def _decode(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Return ``(text, encoding)``; ``declared`` (e.g. an HTML meta charset) is tried first."""
    if not data:
        return "", "utf-8"
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _refuse_binary(data.decode(encoding)), encoding
            except UnicodeDecodeError as exc:
                raise DocumentError(
                    f"invalid {encoding} text after its byte-order mark ({exc.reason} at byte {exc.start})"
                ) from None
    if b"\x00" in data:
        raise DocumentError("binary file (contains NUL bytes), not text")
    for encoding in ("utf-8", declared):
        text = _strict(data, encoding) if encoding and not _SINGLE_BYTE_RE.match(encoding) else None
        if text is not None:
            return _refuse_binary(text), encoding or "utf-8"
    text, encoding = _decode_chinese(data)
    if text is None:
        text, encoding = _decode_guess(data)
    return _refuse_binary(text), encoding


def _strict(data: bytes, encoding: str) -> str | None:
    """Decode strictly, or None when the bytes are not valid in ``encoding``."""
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _foreign_ratio(text: str) -> float:
    """Share of non-ASCII characters (in a sample) that are unlikely in Chinese text."""
    sample = text[:_SAMPLE_CHARS]
    non_ascii = sum(1 for ch in sample if ord(ch) > 127)
    return len(_FOREIGN_RE.findall(sample)) / non_ascii if non_ascii else 0.0


def _decode_chinese(data: bytes) -> tuple[str | None, str]:
    """Try GB18030, then Big5: Big5 bytes usually also decode as GB18030, into kana soup."""
    gb = _strict(data, "gb18030")
    if gb is not None and _foreign_ratio(gb) <= 0.02:
        return gb, "gb18030"
    for encoding in ("big5", "cp950", "big5hkscs"):
        big5 = _strict(data, encoding)
        if big5 is not None and (gb is None or _foreign_ratio(big5) < _foreign_ratio(gb)):
            return big5, encoding
    return gb, "gb18030"


def _decode_guess(data: bytes) -> tuple[str, str]:
    """Last resort: let charset-normalizer guess."""
    charset_normalizer = _require("charset_normalizer", "detecting text encodings", "charset-normalizer")
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise DocumentError("unreadable encoding: not UTF-8, GB18030, Big5 or any encoding detected")
    return str(best), best.encoding


def _refuse_binary(text: str) -> str:
    """Raise when decoded text is mostly control characters or replacement marks."""
    sample = text[:_SAMPLE_CHARS]
    if sample and len(_BINARY_RE.findall(sample)) > 0.05 * len(sample):
        raise DocumentError("binary file (mostly control characters), not text")
    return text


# ---------------------------------------------------------------------------------------
# Normalization and boilerplate
# ---------------------------------------------------------------------------------------

_NEWLINE_RE = re.compile("\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# Zero-width, bidi and other invisible format characters, C0/C1 controls (not \n or \t),
# and lone surrogates.
_INVISIBLE_CLASS = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
)
_INVISIBLE_RE = re.compile(f"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff{_INVISIBLE_CLASS}]+")
_SPACES_RE = re.compile(r"[^\S\n]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")

_SEP = r"[\s|｜/／·•>»›,，、:：【】\[\]()（）]*"
_NAV_WORDS = (
    "登录更多", "登录", "登陆", "注册", "退出", "更多", "首页", "返回首页", "返回顶部", "返回", "顶部",
    "举报", "收藏", "分享", "转发", "评论", "点赞", "赞", "关注", "订阅", "打印", "打印本页", "关闭",
    "关闭窗口", "纠错", "我要纠错", "上一篇", "下一篇", "网站地图", "联系我们", "关于我们", "帮助中心",
    "设为首页", "加入收藏", "隐私政策", "用户协议", "意见反馈", "广告服务", "微信", "微博", "QQ空间",
    "QQ", "扫一扫", "二维码", "字号", "大", "中", "小", "搜索", "导航", "菜单", "English", "繁體",
    "繁体", "简体", "无障碍", "长者模式", "下载App", "下载客户端", "打开App", "App",
)
# A line made only of navigation words: 「登录更多 下载App」, 「举报收藏」, 「【打印】【关闭】」.
_NAV_LINE_RE = re.compile(
    rf"{_SEP}(?:(?:{'|'.join(sorted(_NAV_WORDS, key=len, reverse=True))}){_SEP})+", re.IGNORECASE
)
# Patterns that mark a short line (<= _SHORT_LINE chars) as boilerplate.
_SHORT_LINE = 60
_SHORT_PATTERNS = (
    r"评论\s*[(（]\s*\d+\s*条?\s*[)）]",  # 评论 (0条)
    r"(?:登录|登陆)后|请先登录|您需要登录|点击此处(?:进行)?登录|立即登录",
    r"^(?:点击|扫码|立即)?下载.{0,12}(?:app|客户端|头条)$",  # 下载华人头条
    r"©|&copy;|copyright|版权所有|all rights reserved|\(c\)\s*\d{4}",
    r"(?:icp|公网安备|网安备|备案号|许可证号).{0,30}\d{4,}",  # ICP许可证号 闽ICP备10203582号
    r"(?:服务|客服|违法和不良信息举报)(?:热线|电话|邮箱)|举报(?:热线|邮箱)",
    r"(?:阅读量|阅读数|阅读次数|浏览量|浏览次数|点击量|点击数|点击率|访问量)\s*[:：]?\s*\d",
    r"(?:阅读|浏览|点击)\s*[:：]\s*\d|\d+\s*(?:人|次)(?:阅读|浏览)",
    r"^(?:责任编辑|责编|编辑|审核|审校|校对|监制|值班编辑|主编|编审|终审|初审|复审)\s*[:：|丨]",
    r"^(?:分享到|分享至|扫一扫|微信扫一扫|扫码|长按(?:识别)?二维码|点击(?:关注|查看原文|阅读原文)|阅读原文|原文链接)",
    r"^(?:上一篇|下一篇|上一条|下一条)",
    r"^(?:相关(?:阅读|推荐|新闻|文章|链接|稿件)|推荐阅读|热门(?:推荐|文章|新闻)|猜你喜欢|延伸阅读|精彩推荐|为您推荐)"
    + r"\s*[:：]?$",
    r"^(?:图片|图|配图|视频|图源|题图)\s*(?:来源|来自|由)?\s*[:：]",  # captions: 图片来源：网络
    r"^(?:当前位置|您的位置|您现在的位置|您当前的位置|所在位置)\s*[:：]|^(?:首页|主页)\s*[>»›＞/]",
    r"^(?:第\s*\d+\s*页(?:\s*[,，/]?\s*共\s*\d+\s*页)?|共\s*\d+\s*页|[-—–]\s*\d{1,4}\s*[-—–]"
    + r"|page\s+\d+(?:\s+of\s+\d+)?)$",  # page numbers
)
_SHORT_RE = re.compile("|".join(f"(?:{p})" for p in _SHORT_PATTERNS), re.IGNORECASE)
# Patterns that mark a line of any length as boilerplate.
_ANY_PATTERNS = (
    r"^[\[【(（]?(?:图片|图像|配图|image|img|photo|视频|video|广告|gif)[\]】)）]?$",  # placeholders
    r"小编(?:为您|为你|为大家|给大家|给您|带来|整理|分享|推荐)",  # 以上就是小编为您分享...
    r"^(?:更多|想了解更多|了解更多).{0,40}(?:请|敬请)(?:多多|持续)?关注",
    r"(?:您还可以|欢迎)下载.{0,20}(?:app|客户端)",
    r"(?:如有|若有|如涉及)侵权.{0,12}(?:联系|删除)",
    r"^(?:免责(?:申明|声明)|版权声明|特别声明|法律声明)\s*[:：]\s*\S",  # one-line disclaimer
)
_ANY_RE = re.compile("|".join(f"(?:{p})" for p in _ANY_PATTERNS), re.IGNORECASE)
_ANY_SCAN = 300  # only the start of a long paragraph is searched: linear time on huge files
# A disclaimer heading starts a block of clauses that is dropped with it.
_DISCLAIMER_RE = re.compile(r"(?:免责(?:申明|声明|条款)|版权声明|特别声明|法律声明)\s*[:：]?")
_CLAUSE_RE = re.compile(r"[(（]?(?:\d{1,2}|[一二三四五六七八九十]{1,3})[)）、.．]|[①-⑳]")
_DISCLAIMER_WORDS_RE = re.compile(
    r"本站|本网|本平台|本文|本号|侵权|版权|著作权|观点|立场|删除|转载|原作者|授权|法律责任|不代表"
)
_DISCLAIMER_MAX_LINES = 30


def clean_text(text: str) -> str:
    """Normalize ``text`` and remove web boilerplate lines; paragraphs are kept apart by one blank line."""
    return _join_lines(_remove_boilerplate(_normalize(text).split("\n")))


def _normalize(text: str) -> str:
    """Unify newlines, drop invisible/control characters, NFC, one space per run, strip lines.

    Full-width punctuation (。，：) is left alone: NFC, not NFKC.
    """
    text = _NEWLINE_RE.sub("\n", text)
    text = _INVISIBLE_RE.sub("", text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = _SPACES_RE.sub(" ", text)
    return "\n".join(line.strip() for line in text.split("\n"))


# Markup inside plain text (a .txt or .md with HTML pasted in, escaped code shown on a web
# page) is removed so that no answer, passage or vector is drawn from it: 「共有<img src=x
# onerror=alert(4)>五口古井」 would otherwise answer 「几口」 with 4. Only real tag shapes count
# (``<`` then an ASCII tag name), so 「x<y且y>z」 stays. Bounded repeats keep it linear.
_MARKUP_RE = re.compile(
    r"<(!--|script\b|style\b)[^<>]{0,2000}?(?:>|(?<=!--))"  # opens a comment, script or style block: its content goes too
    r"|</?[a-zA-Z][a-zA-Z0-9:-]{0,30}(?:[\s/][^<>]{0,2000})?>"  # any other tag with its attributes
    r"|<[a-zA-Z][a-zA-Z0-9:-]{0,30}\s[^<>\n]{0,2000}=[^<>\n]{0,2000}$",  # a tag cut off at the line end
    re.IGNORECASE | re.MULTILINE,
)
_MARKUP_HINT_RE = re.compile(r"<[!/a-zA-Z]")
_BLOCK_END_RE = {"!--": re.compile("-->"), "script": re.compile(r"</script[^<>]{0,2000}>|</script", re.IGNORECASE),
                 "style": re.compile(r"</style[^<>]{0,2000}>|</style", re.IGNORECASE)}


def strip_markup(text: str) -> str:
    """``text`` without HTML tags, comments and script/style blocks; a block-level tag
    (``<p>``, ``<br>``, ``<div>``) becomes a line break, any other tag nothing. A block
    that is never closed is dropped to the end of its line."""
    if not _MARKUP_HINT_RE.search(text):
        return text
    out: list[str] = []
    pos = 0
    unclosed: set[str] = set()  # block kinds with no end after some point: not searched again
    while m := _MARKUP_RE.search(text, pos):
        out.append(text[pos:m.start()])
        pos = m.end()
        kind = (m[1] or "").lower()
        if kind:
            close = None if kind in unclosed else _BLOCK_END_RE[kind].search(text, pos)
            if close is None:
                unclosed.add(kind)
                line_end = text.find("\n", pos)
                pos = len(text) if line_end < 0 else line_end
            else:
                pos = close.end()
        name = re.match(r"</?([a-zA-Z0-9]+)", m[0])
        out.append("\n" if name and name[1].lower() in _BLOCK_TAGS else "")
    out.append(text[pos:])
    return "".join(out)


def _is_boilerplate(line: str) -> bool:
    """True for a navigation, sharing, footer, counter, caption or promo line."""
    if not line:
        return False
    if len(line) <= _SHORT_LINE and (_NAV_LINE_RE.fullmatch(line) or _SHORT_RE.search(line)):
        return True
    return _ANY_RE.search(line, 0, _ANY_SCAN) is not None


def _remove_boilerplate(lines: Iterable[str]) -> Iterator[str]:
    """Drop boilerplate lines and disclaimer blocks (heading plus its clauses) from stripped lines."""
    in_disclaimer = 0  # lines left in the current disclaimer block, 0 when outside one
    for line in lines:
        if in_disclaimer:
            in_disclaimer -= 1
            if not line:  # blank lines keep the paragraph break and the block open
                yield line
                continue
            if _CLAUSE_RE.match(line) or _DISCLAIMER_WORDS_RE.search(line):
                continue
            in_disclaimer = 0
        if len(line) <= _SHORT_LINE and _DISCLAIMER_RE.fullmatch(line):
            in_disclaimer = _DISCLAIMER_MAX_LINES
        elif not _is_boilerplate(line):
            yield line


def _join_lines(lines: Iterable[str]) -> str:
    """Join lines, keeping at most one blank line between paragraphs and none at the ends."""
    return _BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip("\n")


# ---------------------------------------------------------------------------------------
# Title, date and publisher from the first lines of a scraped page
# ---------------------------------------------------------------------------------------

_DATE_RE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:\s*(\d{1,2})\s*[:：时]\s*(\d{2}))?(?!\d)"
)
_PUBLISHER_RE = re.compile(
    r"(?:^|\s)(?:来源|稿源|出处|信息来源|文章来源|新闻来源|发布机构|发布单位|发文机关|来源单位)\s*[:：]\s*"
    r"([^\s|｜]{1,40})"
    r"|^(?:华人|头条|百家|企鹅|网易|搜狐|澎湃|大鱼|一点|凤凰|东方|新浪|抖音|快手|人民|新华|央视|微信公众|公众)号"
    + r"\s*[:：]\s*([^\s|｜]{1,40})"  # self-media platforms: 华人号:山西头条
)
_AUTHOR_RE = re.compile(r"(?:^|\s)(?:作者|记者|撰稿|撰文)(?:\s*[:：|丨]\s*|\s+)([^\s|｜:：]{2,20})")
# Labels, counters and widgets that share a line with the date: 「发布时间：… 浏览次数：12 字号：大 中 小」.
_META_WORDS_RE = re.compile(
    r"发布时间|发布日期|发表时间|更新时间|发布于|时间|日期|发布|阅读量|阅读数|阅读|浏览次数|浏览量|浏览|点击量|点击数|点击"
    + r"|次|字号|分享|收藏|打印|评论|[大中小]|[\dA-Za-z:：+\-/.\s|｜丨【】\[\]()（）·•]"
)
_META_REST_MAX = 4  # characters a date line may hold beyond date, labels and counters
_TITLE_END_BAD = tuple("。；;，,：:、")
_LIST_MARKER_RE = re.compile(r"(?:[(（]?(?:\d{1,2}|[一二三四五六七八九十]{1,3})[)）、.．]|[①-⑳])")
_POLICY_TITLE_RE = re.compile(
    r"^关于.+|.+(?:通知|决定|意见|办法|方案|规定|公告|通告|通报|报告|批复|决议|纪要|条例|细则|规划|计划"
    r"|规则|指引|指南|公报)$"
)
_HEADER_MAX_LINES = 12
_META_LINE_MAX = 80
_TITLE_MIN, _TITLE_MAX = 4, 80


@dataclass
class _Header:
    """What the first lines of a text say about the article, and which lines said it."""

    title: str | None = None
    published: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    drop: set[int] = field(default_factory=set)  # line indices that are header, not body


def _parse_date(text: str) -> str | None:
    """First valid date in ``text`` as ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM``, else None."""
    for m in _DATE_RE.finditer(text):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
        if not (1 <= month <= 12 and 1 <= day <= 31):
            continue
        date = f"{year:04d}-{month:02d}-{day:02d}"
        if m[4] and int(m[4]) < 24 and int(m[5]) < 60:
            date += f" {int(m[4]):02d}:{m[5]}"
        return date
    return None


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
    rest = _META_WORDS_RE.sub("", _AUTHOR_RE.sub(" ", _PUBLISHER_RE.sub(" ", _DATE_RE.sub(" ", line))))
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

    The scan stops at the first line that is neither boilerplate, metadata, very short nor
    title-like (a long or sentence-like line: the body). The title is, in order: the line
    equal to ``known_title``; a candidate quoted as 《candidate》 in ``text``; the candidate
    just before the date line; a candidate shaped like a policy title (关于…的通知); the first
    candidate. Lines before the title and the metadata lines are marked to drop.
    """
    header = _Header()
    candidates: list[int] = []
    date_index: int | None = None
    seen = 0
    for i, line in enumerate(lines):
        if not line:
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
        elif _is_boilerplate(line) or len(line) < _TITLE_MIN:
            continue
        elif _title_like(line):
            candidates.append(i)
        else:
            break
    title_index = _pick_title(lines, text, candidates, date_index, known_title)
    if title_index is not None:
        header.title = lines[title_index]
        header.drop.update(range(title_index + 1))
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
    return _build_document(text, source, title=title, published=published)


def _build_document(
    raw: str,
    source: str,
    *,
    title: str | None = None,
    published: str | None = None,
    meta: dict[str, str] | None = None,
) -> Document:
    """Shared tail of every reader: strip markup, normalize, read the header, strip
    boilerplate, fill in defaults."""
    normalized = _normalize(strip_markup(raw))
    lines = normalized.split("\n")
    title = _normalize(title).replace("\n", " ") if title else None
    header = _read_header(lines, normalized, known_title=title)
    del normalized
    body = _join_lines(_remove_boilerplate(line for i, line in enumerate(lines) if i not in header.drop))
    if not body and header.title:  # a one-line text: its title is its body
        body = _join_lines(_remove_boilerplate(lines))
    if not body:
        raise DocumentError("no article text left after removing navigation and boilerplate")
    date = _parse_date(published) if published else None
    if header.published and (date is None or header.published.startswith(date)):
        date = header.published  # same day, but the header also has the time
    final_title = title or header.title or (Path(source).stem if source else "") or body.split("\n", 1)[0][:40]
    return Document(
        title=final_title, text=body, source=source, published=date, meta={**(meta or {}), **header.meta}
    )


def read_file(path: str | Path) -> Document:
    """Read one article file into a cleaned Document; the format comes from the suffix.

    Raises :class:`DocumentError` naming the file and the reason: missing, empty, binary,
    unreadable encoding, corrupt or encrypted PDF/DOCX, scanned PDF without text, or a page
    with nothing but navigation.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix not in _READERS:
            raise DocumentError(
                f"unsupported file type {suffix or '(no suffix)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
            )
        if not path.exists():
            raise DocumentError("does not exist")
        if not path.is_file():
            raise DocumentError("not a regular file")
        if path.stat().st_size == 0:
            raise DocumentError("empty file (0 bytes)")
        return _READERS[suffix](path)
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc}") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read file ({exc.strerror or exc})") from None


def _read_txt(path: Path) -> Document:
    text, encoding = _decode(path.read_bytes())
    return _build_document(text, str(path), meta={"format": "txt", "encoding": encoding})


# --- Markdown -------------------------------------------------------------------------

_FRONT_MATTER_RE = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)
_MD_H1_RE = re.compile(r"^ {0,3}#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_MD_RULES = (
    (re.compile(r"<!--.*?-->", re.DOTALL), ""),  # comments
    (re.compile(r"^ {0,3}(?:```|~~~).*$", re.MULTILINE), ""),  # code fences
    (re.compile(r"^ {0,3}(?:[-*_][ \t]*){3,}$", re.MULTILINE), ""),  # horizontal rules
    (re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)"), ""),  # images
    (re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)"), r"\1"),  # links keep their text
    (re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE), r"\1"),  # headings
    (re.compile(r"^ {0,3}>[ \t]?", re.MULTILINE), ""),  # block quotes
    (re.compile(r"^[ \t]*[-*+][ \t]+", re.MULTILINE), ""),  # bullets (numbered lists stay)
    (re.compile(r"(\*\*|__)(?=\S)([^\n]+?)(?<=\S)\1"), r"\2"),  # bold
    (re.compile(r"(?<!\*)\*(?=[^\s*])([^*\n]+?)(?<=\S)\*(?!\*)"), r"\1"),  # italics
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # inline code
)


def _markdown_to_text(markdown: str) -> tuple[str, str | None, str | None]:
    """Strip Markdown markup lightly; return ``(text, title, date)`` from front matter or first ``# ``."""
    markdown = _NEWLINE_RE.sub("\n", markdown).lstrip("\ufeff")
    title = date = None
    if m := _FRONT_MATTER_RE.match(markdown):
        for key, _, value in (line.partition(":") for line in m[1].split("\n")):
            value = value.strip().strip("\"'")
            if key.strip().lower() == "title" and value:
                title = value
            elif key.strip().lower() == "date" and value:
                date = value
        markdown = markdown[m.end() :]
    if title is None and (m := _MD_H1_RE.search(markdown)):
        title = m[1]
    for pattern, replacement in _MD_RULES:
        markdown = pattern.sub(replacement, markdown)
    return markdown, title, date


def _read_md(path: Path) -> Document:
    text, encoding = _decode(path.read_bytes())
    text, title, date = _markdown_to_text(text)
    return _build_document(
        text, str(path), title=title, published=date, meta={"format": "md", "encoding": encoding}
    )


# --- HTML -----------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "nav", "header", "footer", "aside",
                        "form", "svg", "iframe", "button", "select", "head"})
_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "main",
                         "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "dd", "dt", "hr", "td"})
_LINK_LINE_MAX = 20
_TITLE_SPLIT_RE = re.compile(r"\s+[-|–—_]\s+|_")


class _HtmlStripper(HTMLParser):
    """Fallback text extractor; also records <title>, the first <h1> and all link texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self.links: set[str] = set()
        self._skip = 0
        self._stack: list[tuple[str, list[str]]] = []  # open <title>/<h1>/<a> collecting text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag in ("title", "h1", "a"):
            self._stack.append((tag, []))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if self._stack and self._stack[-1][0] == tag:
            text = " ".join("".join(self._stack.pop()[1]).split())
            if tag == "a" and text:
                self.links.add(text)
            elif tag == "title" and not self.title:
                self.title = text
            elif tag == "h1" and not self.h1:
                self.h1 = text

    def handle_data(self, data: str) -> None:
        for _, texts in self._stack:
            texts.append(data)
        if not self._skip:
            self.parts.append(data)


def _html_title(stripper: _HtmlStripper, extracted: str | None) -> str | None:
    """Headline: trafilatura's, else <h1>, else <title> without a trailing ' - site name'."""
    if extracted:
        return extracted
    if stripper.h1:
        return stripper.h1
    parts = [p for p in _TITLE_SPLIT_RE.split(stripper.title) if p.strip()]
    return parts[0].strip() if parts else None


def _read_html(path: Path) -> Document:
    data = path.read_bytes()
    declared = _DECLARED_CHARSET_RE.search(data[:4096])
    markup, encoding = _decode(data, declared[1].decode("ascii").lower() if declared else None)
    del data
    stripper = _HtmlStripper()
    stripper.feed(markup)
    stripper.close()
    trafilatura = _require("trafilatura", "reading HTML", "trafilatura")
    extracted = None
    try:
        extracted = trafilatura.bare_extraction(
            markup, include_comments=False, favor_recall=True, with_metadata=True
        )
    except Exception as exc:  # noqa: BLE001 - any trafilatura/lxml failure: use the fallback
        logger.warning("trafilatura failed on %s (%s); using the simple extractor", path, exc)
    text = (extracted.text if extracted else None) or "".join(stripper.parts)
    # Short lines that are exactly a link text are navigation or link lists, not body.
    lines = [line for line in text.split("\n") if not (len(line.strip()) <= _LINK_LINE_MAX
                                                       and " ".join(line.split()) in stripper.links)]
    return _build_document(
        "\n".join(lines),
        str(path),
        title=_html_title(stripper, extracted.title if extracted else None),
        published=extracted.date if extracted else None,
        meta={"format": "html", "encoding": encoding}
        | ({"publisher": extracted.sitename} if extracted and extracted.sitename else {}),
    )


# --- PDF ------------------------------------------------------------------------------

_PDF_TITLE_JUNK_RE = re.compile(r"^Microsoft (?:Word|PowerPoint) - |\.(?:docx?|wps|pptx?)$", re.IGNORECASE)
_SENTENCE_END = tuple("。！？!?；;：:”」』）)")
_CJK_RE = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def _unwrap_lines(page: str) -> str:
    """Re-join lines the PDF layout wrapped: a near-full-width line not ending a sentence."""
    lines = [line.strip() for line in page.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return ""
    full = lengths[int(0.9 * (len(lengths) - 1))]
    out: list[str] = []
    for line in lines:
        prev = out[-1] if out else ""
        if (prev and line and len(prev) >= max(10, 0.85 * full) and not prev.endswith(_SENTENCE_END)
                and not _LIST_MARKER_RE.match(line)):
            glue = "" if _CJK_RE.match(prev[-1]) or _CJK_RE.match(line[0]) else " "
            out[-1] = prev + glue + line
        else:
            out.append(line)
    return "\n".join(out)


def _read_pdf(path: Path) -> Document:
    pypdf = _require("pypdf", "reading PDF", "pypdf")
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("encrypted PDF needs a password; save an unencrypted copy first")
        pages = [_unwrap_lines(page.extract_text() or "") for page in reader.pages]
        info = reader.metadata
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on broken files
        raise DocumentError(f"corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(pages)
    if not _normalize(text).strip():
        raise DocumentError("scanned PDF: no text layer; run OCR first")
    meta = {"format": "pdf", "pages": str(len(pages))}
    title = _PDF_TITLE_JUNK_RE.sub("", (info.title or "").strip()) if info else ""
    created = _parse_date(str(info.creation_date)) if info and info.creation_date else None
    if created:
        meta["created"] = created
    return _build_document(text, str(path), title=title or None, meta=meta)


# --- DOCX -----------------------------------------------------------------------------


def _docx_lines(doc: object) -> Iterator[str]:
    """Paragraphs and table rows (cells joined by spaces) in document order."""
    for block in doc.iter_inner_content():  # type: ignore[attr-defined]
        if hasattr(block, "rows"):
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:  # merged cells repeat: keep one
                    text = " ".join(cell.text.split())
                    if text and (not cells or cells[-1] != text):
                        cells.append(text)
                yield " ".join(cells)
        else:
            yield block.text


def _read_docx(path: Path) -> Document:
    docx = _require("docx", "reading Word files", "python-docx")
    with path.open("rb") as fh:
        if fh.read(4) == b"\xd0\xcf\x11\xe0":
            raise DocumentError("old binary Word (.doc) file named .docx; save it as .docx in Word")
    try:
        doc = docx.Document(str(path))
        text = "\n".join(_docx_lines(doc))
        props = doc.core_properties
        title, created = (props.title or "").strip(), props.created
    except Exception as exc:  # noqa: BLE001 - zip, XML and package errors from python-docx
        raise DocumentError(f"corrupt or unreadable Word file ({type(exc).__name__}: {exc})") from None
    meta = {"format": "docx"}
    if created:
        meta["created"] = created.strftime("%Y-%m-%d")
    return _build_document(text, str(path), title=title or None, meta=meta)


# ---------------------------------------------------------------------------------------

_READERS = {
    ".txt": _read_txt,
    ".md": _read_md,
    ".html": _read_html,
    ".htm": _read_html,
    ".pdf": _read_pdf,
    ".docx": _read_docx,
}


def _require(module: str, purpose: str, package: str) -> ModuleType:
    """Import an optional dependency, or raise a DocumentError saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DocumentError(f"{purpose} needs the '{package}' package: pip install {package}") from None
