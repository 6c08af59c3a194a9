"""rag.documents: formats, encodings, boilerplate removal, metadata and failures.

Every file is written to tmp_path by the test itself; the only repository file read is
the seed article in data/articles.
"""

from __future__ import annotations

import os
import tracemalloc
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.documents import (
    SUPPORTED_SUFFIXES,
    clean_text,
    decode_bytes,
    document_from_text,
    iter_files,
    read_file,
)
from rag.errors import DocumentError

from .conftest import SEED, SEED_SENTENCE
from .helpers import ZERO_WIDTH, cjk_font, image_only_pdf

SEED_TITLE = "山西晋中:统筹推进教育科技人才一体改革"
BODY = "建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站;全市各级各部门与125所省内外高校开展合作。"
# --- the seed article -------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_doc():
    return read_file(SEED)


def test_seed_metadata(seed_doc):
    assert seed_doc.title == SEED_TITLE
    assert seed_doc.published == "2024-10-07 13:21"
    assert seed_doc.meta["publisher"] == "山西头条"
    assert seed_doc.source == str(SEED)


def test_seed_keeps_body_and_headings(seed_doc):
    text = seed_doc.text
    assert "7家省级博士创新站" in text
    assert SEED_SENTENCE in text
    for heading in ("办好人民满意的教育", "科技创新赋能高质量发展", "人才队伍不断壮大"):
        assert heading in text.split("\n")
    assert text.startswith("教育、科技、人才是中国式现代化的基础性、战略性支撑。")
    assert text.endswith("共同书写晋中高质量发展的新篇章。")
    assert "\n\n\n" not in text


@pytest.mark.parametrize(
    "junk",
    ["免责", "登录更多", "下载App", "ICP", "公网安备", "直播备案号", "举报收藏", "评论 (0条)", "登录后评论",
     "下载华人头条", "关于我们", "©", "服务热线", "举报热线", "举报邮箱", "以上就是小编", "阅读量",
     "52hrtt", "本站", "侵权", "华人号"],
)
def test_seed_loses_boilerplate(seed_doc, junk):
    assert junk not in seed_doc.text


def test_seed_drops_placeholders_and_title_lines(seed_doc):
    lines = seed_doc.text.split("\n")
    assert "图片" not in lines
    assert SEED_TITLE not in lines
    assert not any(line.startswith("2024-10-07") for line in lines)


def test_document_from_text_cleans_like_read_file(seed_doc):
    doc = document_from_text(SEED.read_text(encoding="utf-8"), source="seed.txt")
    assert (doc.title, doc.text, doc.published) == (seed_doc.title, seed_doc.text, seed_doc.published)
    assert doc.source == "seed.txt"


# --- metadata from scraped text -------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2024-10-07 13:21 阅读量:8k+", "2024-10-07 13:21"),
        ("2024年10月7日", "2024-10-07"),
        ("2024年10月7日 09:05", "2024-10-07 09:05"),
        ("2024/10/07", "2024-10-07"),
        ("2024.10.07", "2024-10-07"),
        ("发布时间：2024-1-5 来源：晋中日报", "2024-01-05"),
    ],
)
def test_date_formats(line, expected):
    doc = document_from_text(f"某某网\n晋中市召开人才工作会议\n{line}\n{BODY}")
    assert doc.published == expected
    assert doc.title == "晋中市召开人才工作会议"
    assert doc.text == BODY


def test_publisher_from_source_line():
    doc = document_from_text(f"晋中市召开人才工作会议\n来源：晋中日报\n{BODY}")
    assert doc.meta["publisher"] == "晋中日报"
    assert doc.text == BODY


def test_explicit_title_and_date_win():
    doc = document_from_text(f"晋中市召开人才工作会议\n2024年10月7日\n{BODY}", title="别的标题", published="2023/1/2")
    assert doc.title == "别的标题"
    assert doc.published == "2023-01-02"


def test_policy_title_preferred_over_issuer_line():
    text = f"晋中市人民政府办公室\n关于做好人才引进工作的通知\n各县（区）人民政府：\n{BODY}"
    doc = document_from_text(text)
    assert doc.title == "关于做好人才引进工作的通知"
    assert doc.text.startswith("各县（区）人民政府：")


@pytest.mark.parametrize("title", ["晋中市2024年10月7日召开人才工作会议", "记者走进晋中博士创新站", "来源于基层的创新"])
def test_title_lines_that_look_like_metadata_stay_titles(title):
    doc = document_from_text(f"{title}\n{BODY}")
    assert (doc.title, doc.text, doc.published) == (title, BODY, None)


def test_title_falls_back_to_file_stem(tmp_path):
    path = tmp_path / "jinzhong_notice.txt"
    path.write_text(BODY * 3, encoding="utf-8")
    doc = read_file(path)
    assert doc.title == "jinzhong_notice"
    assert doc.text == BODY * 3
    assert doc.published is None


def test_single_line_text_is_kept():
    doc = document_from_text("晋中市有7家省级博士创新站")
    assert doc.text == "晋中市有7家省级博士创新站"


# --- clean_text -----------------------------------------------------------------------


def test_clean_text_normalizes_without_touching_fullwidth_punctuation():
    raw = "\ufeff第一段，有　全角空格。\r\n\r\n\r\n第二\u200b段：\t 多个   空格！\rcafe\u0301\x07"
    assert clean_text(raw) == "第一段，有 全角空格。\n\n第二段： 多个 空格！\ncafé"


@pytest.mark.parametrize(
    "junk",
    ["登录更多 下载App", "举报收藏", "评论 (0条)", "您需要登录后才能评论,点击此处进行登录。", "登录后评论",
     "下载华人头条", "关于我们", "© 2022 华人头条", "服务热线 : 0591-83771172", "ICP许可证号 闽ICP备10203582号",
     "闽公网安备35010202000536号", "直播备案号 闽ILS备201708250005", "举报热线:0591-83771172",
     "举报邮箱:hrtt@52hrtt.com", "图片", "[图片]", "阅读量:8k+", "首页 > 新闻中心 > 政务要闻",
     "【打印】【关闭窗口】", "责任编辑：张三", "上一篇：晋中召开会议", "第 2 页 共 5 页", "- 3 -",
     "以上就是小编为您分享《标题》的全部内容,更多请多多关注。", "本文来源于网络，如有侵权请联系删除。"],
)
def test_clean_text_drops_boilerplate_lines(junk):
    assert clean_text(f"{BODY}\n{junk}\n{BODY}") == f"{BODY}\n{BODY}"


@pytest.mark.parametrize(
    "keep",
    ["人才队伍不断壮大", "咨询电话：0354-1234567", "关于ICP备案管理的说明", "……", "一、总体要求",
     "市委、市政府市校协同创新发展的决策举措中，图片资料由市档案馆提供。"],
)
def test_clean_text_keeps_body_lines(keep):
    assert clean_text(f"{BODY}\n{keep}\n{BODY}") == f"{BODY}\n{keep}\n{BODY}"


@pytest.mark.parametrize("heading", ["免责申明", "免责声明", "免责声明：", "版权声明"])
def test_disclaimer_block_removed_with_its_clauses(heading):
    text = (f"{BODY}\n{heading}\n\n1、本站为用户提供信息存储空间等服务。\n\n2、刊载的文章不代表本站观点和立场。\n"
            "3、如有侵权烦请联系我们,以便及时删除。\n\n人才工作不断迈上新台阶。")
    assert clean_text(text) == f"{BODY}\n\n人才工作不断迈上新台阶。"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.characters(codec=None), max_size=300))
def test_clean_text_total_on_random_unicode(raw):
    out = clean_text(raw)
    assert isinstance(out, str)
    assert not any(ch in out for ch in ZERO_WIDTH)
    assert not any(unicodedata.category(ch) == "Cc" for ch in out.replace("\n", ""))
    assert "\r" not in out
    assert clean_text(out) == out  # idempotent


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([BODY, "", " ", "图片", "免责声明", "1、本站观点", "登录", "\u200b", "　",
                                 "举报收藏", "2024年10月7日", "《标题》"]), max_size=20))
def test_clean_text_on_line_soup(lines):
    out = clean_text("\n".join(lines))
    assert clean_text(out) == out
    assert out.count(BODY) <= lines.count(BODY)


# --- encodings ------------------------------------------------------------------------

SIMPLIFIED = f"晋中市教育科技人才一体改革。{BODY}"


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8", SIMPLIFIED),
        ("utf-8-sig", SIMPLIFIED),
        ("utf-16", SIMPLIFIED),  # writes a BOM
        ("utf-16-be", None),  # BOM added by hand below
        ("gbk", SIMPLIFIED),
        ("gb18030", SIMPLIFIED + "𠮷字在GBK之外。"),
        ("big5", "臺灣繁體中文：教育科技人才一體改革，建立院士工作站三家。"),
    ],
)
def test_encodings_decode(tmp_path, encoding, text):
    if text is None:
        data = "\ufeff".encode("utf-16-be") + SIMPLIFIED.encode("utf-16-be")
        text = SIMPLIFIED
    else:
        data = text.encode(encoding)
    assert decode_bytes(data) == text
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes(data)
    assert read_file(path).text == text


def test_decode_refuses_binary():
    with pytest.raises(DocumentError, match="binary"):
        decode_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(256))
    with pytest.raises(DocumentError, match="binary"):
        decode_bytes(bytes(range(1, 32)) * 20)


# --- formats --------------------------------------------------------------------------


def test_txt(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(f"晋中市召开人才工作会议\n\n{BODY}\n", encoding="utf-8")
    doc = read_file(path)
    assert (doc.title, doc.text, doc.meta["format"]) == ("晋中市召开人才工作会议", BODY, "txt")


def test_markdown(tmp_path):
    path = tmp_path / "a.md"
    path.write_text(
        "# 晋中人才工作\n\n## 人才队伍不断壮大\n\n- 建立院士(专家)工作站**3家**,*7家*省级博士创新站;\n"
        "- 详见[市政府网站](http://example.com)。\n\n![配图](x.png)\n\n1. 第一条。\n",
        encoding="utf-8",
    )
    doc = read_file(path)
    assert doc.title == "晋中人才工作"
    assert doc.text == "人才队伍不断壮大\n\n建立院士(专家)工作站3家,7家省级博士创新站;\n详见市政府网站。\n\n1. 第一条。"


def test_markdown_front_matter(tmp_path):
    path = tmp_path / "b.md"
    path.write_text(f"---\ntitle: 晋中人才\ndate: 2024年10月7日\n---\n{BODY}\n", encoding="utf-8")
    doc = read_file(path)
    assert (doc.title, doc.published, doc.text) == ("晋中人才", "2024-10-07", BODY)


PAGE = """<!DOCTYPE html><html><head><meta charset="{charset}">
<title>山西晋中:统筹推进教育科技人才一体改革 - 华人头条</title>
<script>var leaked = "SCRIPT_TEXT";</script><style>.x {{ color: red }}</style></head>
<body><header><a href="/">首页</a> <a href="/login">登录</a></header>
<nav><a href="/n">新闻中心</a> <a href="/z">政务公开</a> <a href="/x">NAVLINK</a></nav>
<article><h1>山西晋中:统筹推进教育科技人才一体改革</h1>
<p>2024-10-07 13:21 来源：山西头条</p>
<p>教育、科技、人才是中国式现代化的基础性、战略性支撑。市委五届八次全会明确指出,要推进教育科技人才一体改革。</p>
<h2>人才队伍不断壮大</h2><p>{body}</p><p>图片</p></article>
<script>document.write("MORE_SCRIPT")</script>
<footer>&copy; 2022 华人头条 闽ICP备10203582号 <a href="/about">关于我们</a></footer></body></html>"""


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_html(tmp_path, charset):
    path = tmp_path / "a.html"
    path.write_bytes(PAGE.format(charset=charset, body=BODY).encode(charset))
    doc = read_file(path)
    assert doc.title == SEED_TITLE
    assert doc.published == "2024-10-07 13:21"
    assert doc.meta["publisher"] == "山西头条"
    assert BODY in doc.text
    assert "人才队伍不断壮大" in doc.text
    for junk in ("SCRIPT", "leaked", "color", "NAVLINK", "新闻中心", "ICP", "©", "关于我们", "图片"):
        assert junk not in doc.text


def test_html_wrong_single_byte_charset_declaration_is_ignored(tmp_path):
    path = tmp_path / "latin.html"
    path.write_bytes(PAGE.format(charset="iso-8859-1", body=BODY).encode("utf-8"))
    assert BODY in read_file(path).text


def test_html_fallback_when_trafilatura_finds_nothing(tmp_path, monkeypatch):
    import trafilatura

    monkeypatch.setattr(trafilatura, "bare_extraction", lambda *a, **k: None)
    path = tmp_path / "a.htm"
    path.write_text(PAGE.format(charset="utf-8", body=BODY), encoding="utf-8")
    doc = read_file(path)
    assert doc.title == SEED_TITLE
    assert BODY in doc.text
    for junk in ("SCRIPT", "leaked", "color", "NAVLINK", "ICP"):
        assert junk not in doc.text


def test_html_navigation_only_is_an_error(tmp_path):
    path = tmp_path / "nav.html"
    path.write_text(
        "<html><head><title>某某网</title><script>var a=1;</script></head><body>"
        "<nav><a href=/>首页</a> <a href=/n>新闻中心</a></nav><header><a>登录</a><a>注册</a></header>"
        "<div><a href=/a>通知公告</a><br><a href=/b>政策解读</a><br><a href=/c>办事服务</a></div>"
        "<footer>© 2024 某某网 版权所有 京ICP备12345678号</footer></body></html>",
        encoding="utf-8",
    )
    with pytest.raises(DocumentError, match=r"nav\.html.*navigation"):
        read_file(path)


def _pdf(path: Path, lines: list[str], font: str | None, title: str | None = None) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    if font:
        pdf.add_font("cjk", fname=font)
        pdf.set_font("cjk", size=12)
    else:
        pdf.set_font("helvetica", size=12)
    if title:
        pdf.set_title(title)
    for line in lines:
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


def test_pdf_english(tmp_path):
    path = tmp_path / "a.pdf"
    sentence = "Jinzhong has 7 provincial doctoral innovation stations and 3 academician workstations. " * 3
    _pdf(path, ["Talent Work in Jinzhong", sentence.strip()], font=None)
    doc = read_file(path)
    assert doc.title == "Talent Work in Jinzhong"
    assert "7 provincial doctoral innovation stations" in doc.text
    assert doc.meta["format"] == "pdf"


@pytest.mark.skipif(cjk_font() is None, reason="no CJK font (apt-get install fonts-wqy-microhei)")
def test_pdf_chinese_with_wrapped_lines(tmp_path):
    path = tmp_path / "zh.pdf"
    long_body = BODY + "实施市校协同创新发展专项行动,选派4名驻地高校干部到市直部门交流挂职。"
    _pdf(path, [SEED_TITLE, long_body, "第二段。"], font=cjk_font())
    doc = read_file(path)
    assert doc.title == SEED_TITLE
    assert doc.text == f"{long_body}\n第二段。"  # layout line breaks inside the paragraph are undone


@pytest.mark.skipif(cjk_font() is None, reason="no CJK font (apt-get install fonts-wqy-microhei)")
def test_pdf_metadata_title(tmp_path):
    path = tmp_path / "meta.pdf"
    _pdf(path, [BODY], font=cjk_font(), title="晋中人才工作")
    doc = read_file(path)
    assert (doc.title, doc.text) == ("晋中人才工作", BODY)


def test_docx_paragraphs_tables_and_properties(tmp_path):
    import docx

    d = docx.Document()
    d.core_properties.title = "晋中人才工作情况"
    d.add_heading("晋中人才工作情况", 1)
    d.add_paragraph(BODY)
    table = d.add_table(rows=2, cols=2)
    for (r, c), value in {(0, 0): "项目", (0, 1): "数量", (1, 0): "省级博士创新站", (1, 1): "7家"}.items():
        table.cell(r, c).text = value
    d.add_paragraph("表后段落。")
    path = tmp_path / "a.docx"
    d.save(path)
    doc = read_file(path)
    assert doc.title == "晋中人才工作情况"
    assert doc.text == f"{BODY}\n项目 数量\n省级博士创新站 7家\n表后段落。"
    assert doc.meta["format"] == "docx"


# --- failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("empty.txt", lambda p: p.write_bytes(b""), "empty"),
        ("binary.txt", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 4), "binary"),
        ("nul.md", lambda p: p.write_bytes("正文".encode() + b"\x00\x00\x01"), "binary"),
        ("corrupt.docx", lambda p: p.write_bytes(b"PK\x03\x04 this is not a zip archive"), "corrupt"),
        ("text.docx", lambda p: p.write_text("纯文本，不是Word文件。", encoding="utf-8"), "corrupt"),
        ("corrupt.pdf", lambda p: p.write_bytes(b"%PDF-1.4\n1 0 obj garbage\n"), "corrupt"),
        ("notpdf.pdf", lambda p: p.write_bytes(b"<html>error page</html>"), "corrupt"),
        pytest.param("scan.pdf", image_only_pdf, "scanned PDF: no text layer, and OCR found no text",
                     marks=pytest.mark.slow),  # the OCR models
        ("boilerplate.txt", lambda p: p.write_text("登录更多 下载App\n举报收藏\n© 2022 华人头条\n", encoding="utf-8"),
         "no article text"),
        ("picture.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff"), "corrupt or unreadable image"),
        ("program.exe", lambda p: p.write_bytes(b"MZ\x90\x00"), "unsupported"),
    ],
)
def test_bad_files_raise_document_error_naming_the_file(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(DocumentError) as info:
        read_file(path)
    assert name in str(info.value)
    assert reason in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DocumentError, match="does not exist"):
        read_file(tmp_path / "gone.txt")


# --- iter_files -----------------------------------------------------------------------


def test_iter_files_recursive_sorted_and_filtered(tmp_path):
    for rel in ("b.txt", "a.md", "sub/c.pdf", "sub/deep/d.docx", "sub/e.html", "x.jpg", ".hidden.txt",
                "~$lock.docx", "UPPER.TXT", "y.exe"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x", encoding="utf-8")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    assert found == ["UPPER.TXT", "a.md", "b.txt", "sub/c.pdf", "sub/deep/d.docx", "sub/e.html", "x.jpg"]
    # a file named twice (directly and through its folder) comes once
    assert list(iter_files([tmp_path / "b.txt", tmp_path])).count(tmp_path / "b.txt") == 1


def test_iter_files_survives_symlink_loops(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "doc.txt").write_text(BODY, encoding="utf-8")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "self.txt").symlink_to(tmp_path / "self.txt")
    assert list(iter_files([tmp_path])) == [tmp_path / "a" / "doc.txt"]


def test_iter_files_errors(tmp_path):
    with pytest.raises(DocumentError, match="does not exist"):
        list(iter_files([tmp_path / "missing"]))
    (tmp_path / "notes.xyz").write_text("x", encoding="utf-8")
    with pytest.raises(DocumentError, match="unsupported"):
        list(iter_files([tmp_path / "notes.xyz"]))
    assert set(SUPPORTED_SUFFIXES) == {".txt", ".md", ".html", ".htm", ".pdf", ".docx", ".doc", ".xlsx", ".csv",
                                       ".pptx", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}


# --- large files ----------------------------------------------------------------------


def test_large_text_file_memory_is_linear(tmp_path):
    seed = SEED.read_bytes()
    path = tmp_path / "big.txt"
    with path.open("wb") as fh:
        while fh.tell() < 8_000_000:
            fh.write(seed)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        doc = read_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert doc.text.count("7家省级博士创新站") == size // len(seed)
    assert "免责" not in doc.text
    assert peak < 6 * size, f"peak {peak / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"
