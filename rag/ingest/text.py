"""Bytes to clean text: encoding detection, normalization and web-boilerplate removal.

Every reader ends in :func:`clean_text`'s pieces (newlines, invisible characters, spaces,
NFC, boilerplate lines), so all formats come out alike.
"""

from __future__ import annotations

import codecs
import importlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from types import ModuleType

from rag.errors import DocumentError

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
    charset_normalizer = require("charset_normalizer", "detecting text encodings", "charset-normalizer")
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


def require(module: str, purpose: str, package: str) -> ModuleType:
    """Import an optional dependency, or raise a DocumentError saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DocumentError(f"{purpose} needs the '{package}' package: pip install {package}") from None


_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "main",
                         "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "dd", "dt", "hr", "td"})

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
