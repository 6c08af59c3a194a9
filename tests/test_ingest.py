"""Documents as they really come: scanned PDFs and images (OCR), policy metadata from the
text, tables, slides and old Word files, structure-aware chunks with heading paths, and
filters. Every file is made here (fonts from Debian's fonts-wqy-microhei); no ../shared.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag import Document, KnowledgeBase
from rag.chunking import ChunkSettings, chunk_text
from rag.errors import DocumentError, QuestionError
from rag.ingest import document_from_text, page_of, read_file
from rag.store import read_manifest

from .conftest import SEED, SEED_QUESTION, SEED_SENTENCE
from .helpers import cjk_font

needs_font = pytest.mark.skipif(cjk_font() is None, reason="no CJK font (apt-get install fonts-wqy-microhei)")

KEY_PARAGRAPH = (
    "人才队伍不断壮大。引进省级人才计划入选者7人,市“551”计划人才43人,中央和省博士服务团成员19名;"
    + SEED_SENTENCE + ";组建全省首家事业单位性质的省校合作工作服务中心,全市各级各部门与125所省内外高校开展合作。"
)
LAW = textwrap.dedent("""\
    中华人民共和国安全生产法
    2021年6月10日 第十三届全国人民代表大会常务委员会第二十九次会议第三次修正
    第一章 总则
    第一条 为了加强安全生产工作，防止和减少生产安全事故，制定本法。
    第二条 在中华人民共和国领域内从事生产经营活动的单位的安全生产，适用本法。
    第三章 从业人员的安全生产权利义务
    第五十二条 生产经营单位与从业人员订立的劳动合同，应当载明有关保障从业人员劳动安全、防止职业危害的事项。
    第五十三条 生产经营单位的从业人员有权了解其作业场所和工作岗位存在的危险因素、防范措施及事故应急措施。
    """)


def page_image(lines: list[str], dpi: int = 200, pt: int = 12):
    """An A4 page picture of ``lines`` in the wqy font, as a scanner at ``dpi`` would see it."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = int(8.27 * dpi), int(11.69 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    size = int(pt / 72 * dpi)
    font = ImageFont.truetype(cjk_font(), size)
    per_line = int((width - 2 * dpi) / size)
    y = dpi
    for line in lines:
        for part in textwrap.wrap(line, per_line) or [""]:
            draw.text((dpi, y), part, font=font, fill=0)
            y += int(size * 1.6)
    return image


def scanned_pdf(path: Path, text_page: list[str] | None, scanned_lines: list[str]) -> None:
    """A PDF whose optional first page has a text layer and whose last page is only a picture."""
    from fpdf import FPDF

    pdf = FPDF()
    if text_page:
        pdf.add_page()
        pdf.add_font("cjk", fname=cjk_font())
        pdf.set_font("cjk", size=12)
        for line in text_page:
            pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    picture = path.with_suffix(".png")
    page_image(scanned_lines).save(picture)
    pdf.add_page()
    pdf.image(str(picture), x=0, y=0, w=210)
    pdf.output(str(path))
    picture.unlink()


# --- OCR --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    if cjk_font() is None:
        pytest.skip("no CJK font (apt-get install fonts-wqy-microhei)")
    path = tmp_path_factory.mktemp("scan") / "jinzhong_scan.pdf"
    scanned_pdf(path, ["山西晋中:统筹推进教育科技人才一体改革", "教育、科技、人才是中国式现代化的基础性、战略性支撑。"],
                [KEY_PARAGRAPH])
    return path


def test_scanned_page_is_read_by_ocr_and_keeps_its_page_number(scan):
    doc = read_file(scan)
    assert doc.meta["ocr_pages"] == "2"  # page 1 has a text layer: no OCR there
    assert doc.title == "山西晋中:统筹推进教育科技人才一体改革"
    folded = doc.text.replace("，", ",").replace("；", ";").replace("（", "(").replace("）", ")")
    assert "7家省级博士创新站" in folded
    start = doc.text.index("7家省级博士创新站")
    assert page_of(doc.meta, start) == 2
    assert page_of(doc.meta, 0) == 1


def test_seed_question_is_answered_from_the_scanned_page(scan, tmp_path):
    kb = KnowledgeBase(tmp_path / "index")
    report = kb.add([scan])
    assert report.added and not report.failed
    answer = kb.answer(SEED_QUESTION)
    assert answer.text == "7家"
    assert answer.page == 2  # the answer's own page; its passage starts on page 1
    assert answer.to_dict()["answer_span"]["page"] == 2
    top = answer.passages[answer.span.passage]
    assert top.page == 1 and "第1页" in top.citation()


@needs_font
@pytest.mark.slow  # the OCR models
def test_image_file_is_read_by_ocr(tmp_path):
    path = tmp_path / "notice.png"
    page_image(["晋中市建立院士工作站3家，7家省级博士创新站。"]).crop((0, 0, 1654, 400)).save(path)
    doc = read_file(path)
    assert "7家省级博士创新站" in doc.text
    assert doc.meta["format"] == "png"
    assert page_of(doc.meta, 0) == 1


# --- metadata from the text ---------------------------------------------------------------

HTML_DATED = """<html><head><meta charset="utf-8"><title>关于进一步优化营商环境的若干措施_某某市人民政府</title></head>
<body><div><a href="/">首页</a> <a href="/zw">政务公开</a></div>
<div class="article"><h1>关于进一步优化营商环境的若干措施</h1>
<div class="info">2025年3月18日 来源：某某市发展和改革委员会</div>
<p>为深入贯彻落实党中央、国务院关于优化营商环境的决策部署，进一步激发市场主体活力，结合我市实际，制定以下措施。</p>
<p>一、持续深化“放管服”改革。全面推行证明事项告知承诺制，企业开办时间压缩至1个工作日以内。</p>
</div><div class="footer">版权所有 某某市人民政府 2025</div></body></html>"""


def test_html_visible_date_wins_over_the_markup_guess(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(HTML_DATED, encoding="utf-8")
    doc = read_file(path)
    assert doc.published == "2025-03-18"  # trafilatura alone guesses 2025-01-01 from the footer
    assert doc.title == "关于进一步优化营商环境的若干措施"
    assert doc.meta["publisher"] == "某某市发展和改革委员会"


@pytest.mark.parametrize(("line", "date"), [
    ("——2026年2月2日在山西省第十四届人民代表大会第五次会议上", "2026-02-02"),
    ("——二〇二六年一月二十七日在甘肃省十四届人民代表大会第四次会议上", "2026-01-27"),
    ("（2026年1月27日在贵州省第十四届人民代表大会第四次会议上）", "2026-01-27"),
])
def test_report_date_on_its_second_line(line, date):
    doc = document_from_text(f"2026年山西省政府工作报告\n{line}\n\n各位代表：\n现在，我代表省人民政府，向大会报告工作，请予审议。")
    assert (doc.title, doc.published, doc.meta["doc_type"]) == ("2026年山西省政府工作报告", date, "报告")
    assert line in doc.text  # the dated subtitle is text, kept


def test_official_document_fields():
    text = ("山西省人民政府文件\n晋政发〔2024〕12号\n山西省人民政府关于进一步做好人才引进工作的通知\n"
            "各市、县人民政府，省人民政府各委、厅：\n现将有关事项通知如下。依据《国务院关于人才工作的意见》（国发〔2020〕5号），"
            "各地要于2024年4月1日前完成摸底。\n一、加强组织领导。\n\n山西省人民政府\n2024年3月5日\n（此件公开发布）")
    doc = document_from_text(text)
    assert doc.title == "山西省人民政府关于进一步做好人才引进工作的通知"
    assert doc.published == "2024-03-05"  # the signature date, not the deadline in a sentence
    assert doc.meta["doc_number"] == "晋政发〔2024〕12号"  # not the cited 国发〔2020〕5号
    assert doc.meta["authority"] == "山西省人民政府"
    assert doc.meta["doc_type"] == "通知"


def test_issuing_notice_signs_before_the_document_it_issues():
    text = ("陕西省人民政府办公厅关于印发支持中小微企业稳定健康发展若干措施的通知 各设区市人民政府，省人民政府各工作部门："
            "《陕西省支持中小微企业稳定健康发展的若干措施》已经省政府同意，现印发给你们，请认真贯彻执行。 "
            "陕西省人民政府办公厅 2020年2月16日 陕西省支持中小微企业稳定健康发展的若干措施 一、减轻企业负担。"
            "对承租国有资产类经营用房的中小微企业，免收2020年2月、3月房租。" + "二、加大金融支持。各银行机构要落实贷款政策。" * 12
            + "以上政策自印发之日起实施，有效期至2020年12月31日。")
    doc = document_from_text(text)
    assert doc.published == "2020-02-16"  # the cover's signature, not the deadlines in the measures
    assert doc.meta["authority"] == "陕西省人民政府办公厅"
    in_sentence = document_from_text("关于做好复工的通知 为做好复工工作，现通知如下。国家税务总局 2020年2月1日起 实行延期申报。"
                                      + "各地要认真落实。" * 60)
    assert in_sentence.published is None  # 「2020年2月1日起」 is a start date, not a signature


@pytest.mark.parametrize(("first_line", "title"), [
    ("集结湖北！ 国家卫生健康委建立省际对口支援湖北省除武汉以外地市新型冠状病毒肺炎防治工作机制 为坚决落实党中央决策部署，",
     "集结湖北！ 国家卫生健康委建立省际对口支援湖北省除武汉以外地市新型冠状病毒肺炎防治工作机制"),  # a kicker, then the headline
    ("国家税务总局深圳市税务局关于进一步延长纳税申报期限有关事项的通告 2020年第2号 根据《国家税务总局关于进一步延长纳税申报期限的通知》，",
     "国家税务总局深圳市税务局关于进一步延长纳税申报期限有关事项的通告"),  # its serial number is no subtitle
])
def test_one_line_notice_title_shapes(first_line, title):
    doc = document_from_text(first_line + "现将有关事项通告如下：一、对按月申报的纳税人，申报期限延长。" * 3)
    assert doc.title == title


def test_one_line_notice_title_and_labeled_date():
    text = ("国家税务总局关于优化纳税缴费服务配合做好疫情防控工作的通知 【发文单位】 国家税务总局 【发布文号】 税总函〔2020〕19号 "
            "【发文日期】 2020-01-30 国家税务总局各省、自治区、直辖市和计划单列市税务局：为贯彻落实党中央、国务院决策部署，"
            "现就有关事项通知如下。一、积极拓展非接触式办税缴费服务。")
    doc = document_from_text(text, source="/data/b10836e346c23dd8aa24551a84217663.txt")
    assert doc.title == "国家税务总局关于优化纳税缴费服务配合做好疫情防控工作的通知"  # not the file name
    assert doc.published == "2020-01-30"
    assert doc.meta["doc_number"] == "税总函〔2020〕19号"


@needs_font
def test_pdf_junk_title_gives_way_to_the_heading(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.add_font("cjk", fname=cjk_font())
    pdf.set_font("cjk", size=12)
    pdf.set_title("about:blank")
    for line in ("晋中市人才工作情况通报", "2024年10月7日", KEY_PARAGRAPH):
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    path = tmp_path / "printed.pdf"
    pdf.output(str(path))
    doc = read_file(path)
    assert (doc.title, doc.published) == ("晋中市人才工作情况通报", "2024-10-07")
    assert page_of(doc.meta, len(doc.text) - 1) == 1


# --- tables, slides, old Word -------------------------------------------------------------


def test_xlsx_rows_carry_sheet_row_and_header(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "平台统计"
    for row in (["项目", "数量", "单位"], ["院士(专家)工作站", 3, "家"], ["省级博士创新站", 7, "家"]):
        sheet.append(row)
    book.create_sheet("高校合作").append(["合作高校"])
    book["高校合作"].append(["125所"])
    path = tmp_path / "晋中人才平台.xlsx"
    book.save(path)
    doc = read_file(path)
    assert doc.title == "晋中人才平台"
    lines = doc.text.split("\n")
    assert "平台统计 第3行：项目：省级博士创新站；数量：7；单位：家" in lines
    assert "高校合作 第2行：合作高校：125所" in lines
    assert len(lines) == 3  # header rows are not rows of data


def test_csv_in_gbk_with_semicolons(tmp_path):
    path = tmp_path / "stations.csv"
    path.write_bytes("项目;数量\n省级博士创新站;7家\n国家博士后科研站;1家\n".encode("gbk"))
    doc = read_file(path)
    assert doc.text == "第2行：项目：省级博士创新站；数量：7家\n第3行：项目：国家博士后科研站；数量：1家"
    assert doc.meta["encoding"] == "gb18030"


def test_pptx_slides_are_pages(tmp_path):
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    for title, body in (("晋中人才工作汇报", "统筹推进教育科技人才一体改革"), ("平台建设", SEED_SENTENCE)):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    table = deck.slides.add_slide(deck.slide_layouts[5]).shapes.add_table(2, 2, Inches(1), Inches(2), Inches(6), Inches(1))
    for (r, c), value in {(0, 0): "项目", (0, 1): "数量", (1, 0): "合作高校", (1, 1): "125所"}.items():
        table.table.cell(r, c).text = value
    path = tmp_path / "deck.pptx"
    deck.save(path)
    doc = read_file(path)
    assert doc.title == "晋中人才工作汇报"
    assert page_of(doc.meta, doc.text.index(SEED_SENTENCE)) == 2
    assert page_of(doc.meta, doc.text.index("数量：125所")) == 3


def test_doc_without_a_converter_names_the_package(tmp_path, monkeypatch):
    path = tmp_path / "old.doc"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DocumentError, match=r"old\.doc.*antiword"):
        read_file(path)


def test_doc_that_is_not_word_is_refused(tmp_path):
    path = tmp_path / "fake.doc"
    path.write_text("纯文本，不是Word文件。", encoding="utf-8")
    with pytest.raises(DocumentError, match="corrupt or unreadable Word"):
        read_file(path)


# --- structure-aware chunks -----------------------------------------------------------------


def test_law_chunks_are_articles_with_their_heading_path():
    doc = document_from_text(LAW)
    assert (doc.title, doc.published, doc.meta["doc_type"]) == ("中华人民共和国安全生产法", "2021-06-10", "法律")
    chunks = chunk_text(doc.text, "law", ChunkSettings(500, 200))
    by_heading = {c.heading: c for c in chunks}
    first = by_heading["第一章 总则 > 第一条"]
    assert first.text.startswith("第一章 总则\n第一条")  # the chapter heading goes with its first article
    article = by_heading["第三章 从业人员的安全生产权利义务 > 第五十三条"]
    assert article.text.startswith("第五十三条") and "第五十二条" not in article.text
    assert all(c.text == doc.text[c.start:c.end] for c in chunks)


def test_long_article_pieces_all_carry_the_article():
    body = "；".join(f"生产经营单位应当履行第{i}项安全生产职责并如实记录" for i in range(60)) + "。"
    text = f"第二章 生产经营单位的安全生产保障\n第二十一条 {body}\n第二十二条 其他规定。"
    chunks = chunk_text(text, "d", ChunkSettings(300, 60))
    pieces = [c for c in chunks if c.heading.endswith("第二十一条")]
    assert len(pieces) > 3 and pieces[0].text.startswith("第二章")
    assert all(len(c.text) <= 300 and c.text == text[c.start:c.end] for c in chunks)
    assert chunks[-1].heading.endswith("第二十二条") and chunks[-1].text.startswith("第二十二条")


def test_document_headings_and_items_inside_articles():
    text = ("总体要求如下。\n一、总体要求\n（一）指导思想。坚持稳中求进。\n（二）工作目标。到2026年建成70个博士创新站。\n"
            "二、重点任务\n1．加强平台建设。\n附件：统计表\n第一条 申报条件如下：\n（一）具有博士学位；\n（二）在职在岗。")
    chunks = chunk_text(text, "d", ChunkSettings(40, 10))
    headings = [c.heading for c in chunks]
    assert "一、总体要求 > （一）指导思想" in headings
    assert "二、重点任务 > 1．加强平台建设" in headings or "二、重点任务" in headings
    article = next(c for c in chunks if c.heading.endswith("第一条"))
    assert article.heading == "附件：统计表 > 第一条"
    assert "（二）在职在岗。" in article.text  # items of an article stay in it


def test_text_without_headings_is_chunked_as_before():
    text = read_file(SEED).text
    on = chunk_text(text, "d", ChunkSettings(500, 200))
    off = chunk_text(text, "d", ChunkSettings(500, 200, structure=False))
    assert [(c.start, c.end) for c in on] == [(c.start, c.end) for c in off]
    assert all(c.heading == "" for c in on)


# --- the knowledge base: headings stored, old indexes, filters --------------------------------


@pytest.fixture(scope="module")
def policy_kb(tmp_path_factory) -> KnowledgeBase:
    kb = KnowledgeBase(tmp_path_factory.mktemp("policy") / "index")
    kb.add_documents([
        document_from_text(LAW, source="law.txt"),
        document_from_text("2026年山西省政府工作报告\n——2026年2月2日在山西省第十四届人民代表大会第五次会议上\n"
                           "今年要新建70个博士创新站，引进高层次人才1000人。", source="report.txt"),
        Document(title="晋中市关于博士创新站建设的通知", text="晋中市已有7家省级博士创新站，今年再建3个博士创新站。",
                 source="notice.txt", published="2024-10-07", meta={"doc_type": "通知"}),
    ])
    return kb


def test_heading_path_reaches_passages_and_citations(policy_kb):
    [top] = policy_kb.search("安全生产法第五十三条规定了什么", top_k=1)
    assert top.heading == "第三章 从业人员的安全生产权利义务 > 第五十三条"
    assert top.citation().startswith("中华人民共和国安全生产法  2021-06-10  第三章")
    assert top.to_dict()["heading"] == top.heading


def test_filters_by_date_type_and_document(policy_kb):
    question = "博士创新站"
    assert {p.source for p in policy_kb.search(question, top_k=5)} >= {"report.txt", "notice.txt"}
    assert {p.source for p in policy_kb.search(question, filters={"since": "2026-01-01"})} == {"report.txt"}
    until = {p.source for p in policy_kb.search(question, filters={"until": "2024"})}
    assert "notice.txt" in until and "report.txt" not in until
    assert {p.source for p in policy_kb.search(question, filters={"doc_type": "报告"})} == {"report.txt"}
    notice = next(d["doc_id"] for d in policy_kb.documents() if d["source"] == "notice.txt")
    assert {p.source for p in policy_kb.search(question, filters={"doc_ids": [notice]})} == {"notice.txt"}
    answer = policy_kb.answer("山西今年要新建多少个博士创新站", filters={"doc_type": "报告"})
    assert all(p.source == "report.txt" for p in answer.passages)
    with pytest.raises(QuestionError, match="unknown filter"):
        policy_kb.search(question, filters={"year": 2026})
    with pytest.raises(QuestionError, match="since"):
        policy_kb.search(question, filters={"since": "yesterday"})


def test_cli_ask_with_filters(policy_kb):
    result = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", "博士创新站", "--index-dir", str(policy_kb.folder), "--json",
         "--since", "2026-01-01", "--doc-type", "报告"], check=False, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    passages = json.loads(result.stdout)["passages"]
    assert passages and {p["source"] for p in passages} == {"report.txt"}


def test_index_written_before_headings_stays_readable(policy_kb, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(policy_kb.folder, folder)
    rows = folder / read_manifest(folder)["generation"] / "rows.sqlite"
    with sqlite3.connect(rows) as con:  # what an index of the previous version looks like
        con.execute("ALTER TABLE chunks DROP COLUMN heading")
    kb = KnowledgeBase(folder)
    assert kb.search("安全生产法第五十三条", top_k=1)[0].heading == ""
    kb.add_documents([document_from_text(LAW.replace("安全生产", "矿山安全"), source="mine.txt")])
    [top] = kb.search("矿山安全法第五十三条规定了什么", top_k=1)
    assert top.source == "mine.txt" and top.heading.endswith("第五十三条")


def test_warm_up_loads_in_the_background(policy_kb):
    thread = policy_kb.warm_up(background=True)
    thread.join(timeout=600)
    assert not thread.is_alive()
    assert policy_kb.answer(SEED_QUESTION).passages  # still answers after warming up
