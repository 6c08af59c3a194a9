"""The answering components: the trained model (shipped weights, offline), the rules, the
protocols that make them replaceable, the quantity completion, and the training loop."""

from __future__ import annotations

import json
import shutil

import pytest

from rag import KnowledgeBase
from rag.answering import Pipeline, Reader, Reranker, make_reader, make_reranker
from rag.answering.model import CONFIG, SHIPPED_DIR, WEIGHTS, ReaderNetwork, best_span
from rag.answering.rules import RulesReader
from rag.answering.trained import TrainedReader, complete_quantity
from rag.errors import ModelError, RagError
from rag.extraction import change_for_amount, list_only, name_only, respective, slot_only, subject_clause
from rag.types import Passage

from .conftest import SEED_QUESTION, SEED_SENTENCE


@pytest.fixture(scope="module")
def model_reader() -> TrainedReader:
    return TrainedReader()


def test_shipped_model_answers_the_seed_question(seed_index, model_reader):
    kb = KnowledgeBase(seed_index, reader=model_reader, reranker=model_reader)
    a = kb.answer(SEED_QUESTION)
    assert a.text == "7家"
    assert SEED_SENTENCE in a.passages[0].text
    assert a.span.passage == 0 and a.passages[0].text[a.span.start:a.span.end] == "7家"
    assert "7家省级博士创新站" in a.evidence
    assert model_reader.min_confidence <= a.confidence <= 1.0
    # reranked scores are probabilities, comparable across questions
    assert all(0.0 <= p.score <= 1.0 for p in a.passages)
    assert a.passages[0].score == max(p.score for p in a.passages)


@pytest.mark.parametrize("question", ["晋中市长是谁", "火星上有几家省级博士创新站"])
def test_model_refuses_what_the_article_does_not_say(seed_index, model_reader, question):
    a = KnowledgeBase(seed_index, reader=model_reader, reranker=model_reader).answer(question)
    assert a.text is None and a.passages


def _report(province: str, text: str, chunk_id: int) -> Passage:
    return Passage(text, f"2026年{province}政府工作报告", f"{province}.txt", "2026-02-01", 1.0,
                   f"doc-{chunk_id}", 0, len(text), chunk_id)


def test_an_elliptical_first_question_is_answered_with_the_clause_about_its_subject(seed_index, model_reader):
    """「那国家博士后科研站呢？」 with no earlier question stands as asked; the answer is what the
    passage says of 国家博士后科研站, not the whole run of clauses around it."""
    kb = KnowledgeBase(seed_index, reader=model_reader, reranker=model_reader)
    a = kb.answer("那国家博士后科研站呢？")
    assert a.text is not None and "国家博士后科研站" in a.text and "1家" in a.text
    assert "7家" not in a.text and "," not in a.text


@pytest.mark.parametrize(
    ("subject", "text", "span", "kept"),
    [
        ("国家博士后科研站", "获批设立1家国家博士后科研站,7家省级博士创新站;", "1家国家博士后科研站,7家省级博士创新站",
         "1家国家博士后科研站"),
        ("院士工作站", "建立院士工作站3家，获批设立1家国家博士后科研站", "建立院士工作站3家，获批设立1家国家博士后科研站",
         "建立院士工作站3家"),
        ("太原", "新建公园12座，改造绿地5处", "新建公园12座，改造绿地5处", "新建公园12座，改造绿地5处"),  # not named
    ],
)
def test_a_span_keeps_the_clause_about_the_subject(subject, text, span, kept):
    assert shaped(subject_clause, subject, text, span) == kept


@pytest.mark.parametrize("reader", ["rules", "model"])
def test_an_answer_from_a_document_about_another_place_is_refused(reader, model_reader):
    """「上海粮食产量是多少」 must not be answered from Shaanxi's report, though it says one."""
    text = "政府工作报告由陕西省省长赵刚在省十四届人大会议上作。2025年全省生产总值增长5.4%，粮食产量达到1300万吨。"
    shaanxi = _report("陕西省", text, 1)
    pipeline = Pipeline(model_reader if reader == "model" else RulesReader())
    evidence = lambda ps: (1.0, [1.0] * len(ps), False)  # every term indexed
    assert pipeline.answer("陕西粮食产量是多少", [shaanxi], evidence).text == "1300万吨"
    refused = pipeline.answer("上海粮食产量是多少", [shaanxi], evidence)
    assert refused.text is None and refused.passages == (shaanxi,)
    shanghai = _report("上海市", "政府工作报告由上海市市长在市十六届人大会议上作。2025年全市生产总值增长5.2%，粮食产量达到90万吨。", 2)
    other = pipeline.answer("上海粮食产量是多少", [shaanxi, shanghai], evidence)  # read from the one that names it
    assert other.text == "90万吨" and other.span.passage == 1 and other.passages == (shaanxi, shanghai)


def test_a_rate_of_change_is_not_read_as_the_amount_asked_for(model_reader):
    """「广东地区生产总值是多少」 wants the amount: a passage that only says its growth rate
    gives no answer, and with the passage that says the amount, that one is read."""
    rate = _report("广东省", "今后五年主要目标是：地区生产总值年均增长5%左右，科技自立自强水平大幅提高。", 1)
    amount = _report("广东省", "过去五年，地区生产总值从11.37万亿元提高到14.58万亿元，人均地区生产总值提高到11万元。", 2)
    question = "广东地区生产总值是多少"
    assert model_reader.read(question, [rate]) is None
    span = model_reader.read(question, [rate, amount])
    assert span is not None and span.text == "14.58万亿元" and span.passage == 1
    assert model_reader.read("广东地区生产总值年均增长多少", [rate]).text.startswith("5%")


@pytest.mark.parametrize(
    ("question", "text", "span", "wrong"),
    [
        ("广东地区生产总值是多少", "地区生产总值年均增长5%左右，", "5%左右", True),
        ("GDP是多少", "GDP增长约5.5%，", "5.5%", True),
        ("粮食产量是多少", "粮食产量下降了2个百分点。", "2个百分点", True),
        ("湖南全社会研发投入强度是多少", "研发投入强度达到2.62%。", "2.62%", False),  # a level, not a change
        ("城镇化率是多少", "城镇化率提高到65%。", "65%", False),  # asks a rate
        ("进出口总额增长目标是多少", "进出口总额增长17.3%。", "17.3%", False),  # asks the change
        ("GDP是多少", "GDP增长5.5%、达到10.3万亿元。", "10.3万亿元", False),  # an amount
        ("谁作了报告", "增长5%", "5%", False),  # not a count question
    ],
)
def test_a_rate_of_change_is_told_from_an_amount(question, text, span, wrong):
    start = text.index(span)
    assert change_for_amount(question, text, start, start + len(span)) is wrong


def test_search_style_rewrites_a_question_as_a_keyword_query():
    import random

    from rag.training.data import search_style

    rng = random.Random(0)
    queries = {search_style("中国国家博物馆于哪一年成立？", rng) for _ in range(20)}
    assert all(q and "于" not in q and "？" not in q for q in queries)  # no preposition, no punctuation
    assert any("哪一年" in q for q in queries) and any("哪" not in q for q in queries)
    assert search_style("是谁？", rng) is None


def test_a_law_question_gets_the_article_it_names_first():
    law = "中华人民共和国安全生产法"
    articles = [Passage(f"第{n}条 生产经营单位应当……", law, "law.txt", None, 1.0, "law", 0, 10, i,
                        heading=f"{law} > 第三章 > 第{n}条") for i, n in enumerate("一二三四五六七八九十")]
    pipeline = Pipeline(RulesReader())
    assert pipeline.pool("安全生产法第九条规定了什么") == 20 and pipeline.pool("安全生产法规定了什么") == 0
    ordered = pipeline.rerank("安全生产法第九条规定了什么", articles)
    assert ordered[0].heading.endswith("第九条") and len(ordered) == len(articles)


def test_the_gate_names_the_places_an_answers_document_lacks():
    shaanxi = _report("陕西省", "全省粮食产量达到1300万吨。", 1)
    other = _report("上海市", "上海港集装箱吞吐量5506.3万标准箱。", 2)
    gate = Pipeline(RulesReader()).gate
    assert gate.names_missing("上海粮食产量是多少", [shaanxi, other], 0) == ["上海"]  # another document's
    assert gate.names_missing("上海市粮食产量是多少", [shaanxi], 0) == ["上海"]
    assert gate.names_missing("陕西省粮食产量是多少", [shaanxi], 0) == []  # the title names it
    assert gate.names_missing("我国粮食产量是多少", [shaanxi], 0) == []  # said in too many ways


def test_both_readers_fit_the_protocol_and_answer_the_seed(seed_index, model_reader):
    rules = RulesReader()
    for reader in (rules, model_reader):
        assert isinstance(reader, Reader)
        kb = KnowledgeBase(seed_index, reader=reader, reranker="none")
        assert kb.answer(SEED_QUESTION).text == "7家", reader.name
    assert isinstance(model_reader, Reranker)
    assert make_reader("rules").name == "rules" and make_reader(None).name == "model"
    assert make_reranker("none", rules) is None
    reader = make_reader("model")
    assert make_reranker("model", reader) is reader  # one forward pass serves both
    with pytest.raises(RagError, match="unknown reader"):
        make_reader("oracle")


def test_a_reranker_of_ones_own_replaces_the_order(seed_index):
    """Any object with ``rerank`` plugs in; the reader reads what it put first."""

    class Reversed:
        name = "reversed"

        def rerank(self, question, passages):
            return list(reversed(passages))

    kb = KnowledgeBase(seed_index, reader="rules", reranker=Reversed())
    depth = kb.pipeline.rerank_depth
    plain = KnowledgeBase(seed_index, reader="rules", reranker="none").search(SEED_QUESTION, top_k=8)
    reranked = kb.search(SEED_QUESTION, top_k=8)
    assert [p.chunk_id for p in reranked] == [p.chunk_id for p in reversed(plain[:depth])] + [
        p.chunk_id for p in plain[depth:]]


def test_rerank_then_read_is_one_forward_pass(seed_index, monkeypatch):
    reader = TrainedReader()
    kb = KnowledgeBase(seed_index, reader=reader, reranker=reader)
    calls = []
    real = reader.network.read
    monkeypatch.setattr(reader.network, "read", lambda q, texts, offsets: calls.append(len(texts)) or real(q, texts, offsets))
    kb.answer(SEED_QUESTION)
    assert len(calls) == 1 and calls[0] == min(kb.pipeline.rerank_depth, 8)


def test_a_passages_reading_does_not_depend_on_the_passages_read_beside_it(model_reader):
    """Readings are cached per (question, passage), so they must not change with the other
    passages of a call (a padded batch changed bf16 sums)."""
    seed = f"山西晋中\n{SEED_SENTENCE}"
    longer = "太原市年度报告\n" + "今年太原市新建公园12座，改造老旧小区300个。" * 12
    alone = model_reader.network.read(SEED_QUESTION, [seed], [5])
    beside = model_reader.network.read(SEED_QUESTION, [longer, seed], [8, 5])
    assert beside[1] == alone[0]
    assert beside[0] == model_reader.network.read(SEED_QUESTION, [longer], [8])[0]


def test_missing_or_mismatched_weights_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="missing.*--reader rules"):
        ReaderNetwork(tmp_path).load()
    folder = tmp_path / "other"
    folder.mkdir()
    shutil.copy(SHIPPED_DIR / WEIGHTS, folder / WEIGHTS)
    config = json.loads((SHIPPED_DIR / CONFIG).read_text(encoding="utf-8"))
    (folder / CONFIG).write_text(json.dumps(config | {"base_sha256_16": "0" * 16}), encoding="utf-8")
    with pytest.raises(ModelError, match="another build of the default model"):
        ReaderNetwork(folder).load()


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_answering_runs_the_trained_network_as_training_built_it(precision):
    """The functional forward pass and the tokenizers-only encoding answer with exactly what
    the transformers model (as training builds it, under autocast) and its tokenizer give."""
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from rag.answering.encoder import Encoder
    from rag.answering.model import build_model, encode, load_tokenizer
    from rag.embedding import default_model_dir

    base = default_model_dir()
    texts = [f"山西晋中\n{SEED_SENTENCE}", "短文", "The fox 跳过了 dog；“引号”（括号）５５０６.３万标准箱" * 30]
    hf = AutoTokenizer.from_pretrained(str(base))(
        [SEED_QUESTION] * 3, texts, truncation="only_second", max_length=128, padding=True, return_offsets_mapping=True)
    enc = encode(load_tokenizer(base, 128), SEED_QUESTION, texts)
    assert enc["input_ids"] == hf["input_ids"] and enc["attention_mask"] == hf["attention_mask"]
    assert enc["char_start"] == [[a for a, _ in row] for row in hf["offset_mapping"]]
    assert enc["context"] == [[s == 1 for s in hf.sequence_ids(i)] for i in range(3)]

    freeze = json.loads((SHIPPED_DIR / CONFIG).read_text(encoding="utf-8"))["freeze_layers"]
    model = build_model(base, freeze_layers=freeze)
    model.load_state_dict({k: v.float() for k, v in load_file(str(SHIPPED_DIR / WEIGHTS)).items()}, strict=False)
    model.eval()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    ids, mask = torch.as_tensor(enc["input_ids"]), torch.as_tensor(enc["attention_mask"])
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=precision == "bf16"):
        want = [t.float() for t in model(ids, mask)]
    with torch.inference_mode():
        got = [t.float() for t in Encoder.load(base, SHIPPED_DIR / WEIGHTS, freeze, dtype).forward(ids, mask)]
    for w, g in zip(want, got):
        assert torch.allclose(w, g, atol=1e-3 if precision == "fp32" else 0.0, rtol=0.0)
    for i in range(3):
        allowed = np.asarray(enc["context"][i])
        assert best_span(want[1][i].numpy(), want[2][i].numpy(), allowed)[:2] == \
            best_span(got[1][i].numpy(), got[2][i].numpy(), allowed)[:2]


def test_pipeline_gate_uses_the_readers_threshold():
    gate_default = Pipeline(RulesReader()).gate
    assert gate_default.threshold(RulesReader()) == RulesReader.min_confidence
    assert gate_default.threshold(TrainedReader(network=ReaderNetwork(SHIPPED_DIR))) == TrainedReader.min_confidence


def test_best_span_respects_order_length_and_mask():
    import numpy as np

    start = np.array([0.0, 5.0, 1.0, 0.0, 9.0])
    end = np.array([0.0, 1.0, 6.0, 0.0, 0.0])
    allowed = np.array([False, True, True, True, True])
    assert best_span(start, end, allowed) == (1, 2, 11.0)  # not (4, 2): an end before its start
    assert best_span(start, end, allowed, max_tokens=1)[:2] == (4, 4)
    assert best_span(start, end, np.zeros(5, bool))[0] == -1


def shaped(rule, question: str, text: str, span: str) -> str:
    """What a span-shaping ``rule`` makes of ``span`` (its first occurrence in ``text``)."""
    start = text.index(span)
    a, b = rule(question, text, start, start + len(span))
    return text[a:b]


@pytest.mark.parametrize(
    "question, text, span, whole",
    [
        ("集装箱吞吐量达到多少万标准箱", "港口集装箱吞吐量达到5506.3万标准箱，增长", "5506.3", "5506.3万标准箱"),
        ("增长多少", "同比增长7%以上。", "7%", "7%以上"),
        ("晋中有几家省级博士创新站", "7家省级博士创新站", "7", "7家"),
        ("晋中有几家省级博士创新站", "7家省级博士创新站", "7家", "7家"),
        ("有多少人参加", "共有120余人参加", "120", "120余人"),
        ("晋中有几家省级博士创新站", "获批7家省级博士创新站；", "7家省级博士创新站", "7家"),
        ("山西智能化煤矿达到多少座", "智能化煤矿达到400座，", "400座", "400座"),
        ("晋中有几家省级博士创新站", "7家省级博士创新站", "省级博士创新站", "省级博士创新站"),  # no quantity: kept
        ("博士创新站是什么", "7家省级博士创新站", "7", "7"),  # not a count question
        # one quantity from a span over several clauses or a change
        ("上海港集装箱吞吐量是多少", "上海港集装箱吞吐量5506.3万标准箱、连续16年排名世界第一，旅客达到1.35亿人次。",
         "5506.3万标准箱、连续16年排名世界第一，旅客达到1.35亿人次", "5506.3万标准箱"),
        ("安徽去年新增高新技术企业多少家", "新增科技型中小企业7227家、高新技术企业3200家、专精特新企业1565家",
         "7227家、高新技术企业3200家、专精特新企业1565家", "3200家"),
        ("2025年山西人均GDP是多少", "人均GDP从2020年的5.2万元提高到2025年的7.4万元，增长",
         "人均GDP从2020年的5.2万元提高到2025年的7.4万元", "7.4万元"),
        ("广东地区生产总值是多少", "地区生产总值从11.37万亿元提高到14.58万亿元，人均地区生产总值从9万元提高到11万元。",
         "从11.37万亿元提高到14.58万亿元，人均地区生产总值从9万元提高到11万元", "14.58万亿元"),
        ("细颗粒物年均浓度要控制在多少", "细颗粒物年均浓度控制在29微克/立方米左右。", "29微克", "29微克/立方米左右"),
        ("长春获得了第几届世界大冬会的举办权", "长春市成功获得第33届世界大冬会举办权，成为全国第二个举办该赛事的城市。",
         "长春市成功获得第33届世界大冬会举办权，成为全国第二个举办该赛事的城市", "第33届"),
        ("计划投资多少", "计划投资100亿元用于建设", "100亿元", "100亿元"),  # a verb after it is not a unit
        ("长春获得了第几届大会的举办权", "长春获得第33届大会举办权", "33届", "第33届"),
        ("疗程是多久", "疗程为3至5年，", "3至5年", "3至5年"),  # a range, not a change
        ("三次产业结构调整为多少", "三次产业结构调整为8.3∶41.4∶50.3。", "8.3∶41.4∶50.3", "8.3∶41.4∶50.3"),
        ("研发投入强度目标是多少", "研发投入强度达到3.2％左右", "3.2％", "3.2％左右"),
        # 「A、B分别达到X和Y」: the quantity of the item the question names
        ("数字化研发设计工具普及率达到多少", "关键工序数控化率、数字化研发设计工具普及率分别达到69.3%和85.8%，均高于全国。",
         "69.3%", "85.8%"),
        ("专精特新小巨人企业有多少家", "单项冠军、专精特新“小巨人”分别达到43家、322家。", "43家", "322家"),
        ("进口增长多少", "出口和进口分别增长5%、7%。", "5%", "7%"),
        ("海南零关税商品税目比例提升到了多少", "商品税目比例由21%提升至74%。", "21%", "74%"),  # where it ended
        ("税目比例由多少提升至74%", "商品税目比例由21%提升至74%。", "21%", "21%"),  # where it began, asked
        ("出口和进口分别增长多少", "出口和进口分别增长5%、7%。", "5%", "5%"),  # both named: the span stays
        ("上海港集装箱吞吐量是多少", "集装箱吞吐量达到5506.3万标准箱、排名第一，旅客和货邮吞吐量分别达到1.35亿人次、453.8万吨。",
         "5506.3万标准箱、排名第一，旅客和货邮吞吐量分别达到1.35亿人次", "5506.3万标准箱"),  # a span from before
        # the clause that says the question's verb before its number
        ("地区生产总值达到多少", "地区生产总值增长5.5%、达到10.3万亿元，成为全国第三个", "5.5%、达到10.3万亿元", "10.3万亿元"),
        ("地区生产总值增长多少", "地区生产总值增长5.5%、达到10.3万亿元，成为全国第三个", "5.5%、达到10.3万亿元", "5.5%"),
        ("地区生产总值达到多少", "地区生产总值增长5.5%、达到10.3万亿元，成为全国第三个", "5.5%", "10.3万亿元"),
        ("地区生产总值增长多少", "地区生产总值增长5.5%、达到10.3万亿元，成为全国第三个", "5.5%", "5.5%"),
        # a qualifier before the number is kept, the end of a word is not
        ("年旅客吞吐量是多少", "年旅客吞吐量近5000万人次。", "5000万人次", "近5000万人次"),
        ("新能源汽车保有量有多少", "新能源汽车保有量超130万辆", "130万辆", "超130万辆"),
        ("节约多少资金", "共节约100万元", "100万元", "100万元"),
        ("体长可达到多少", "体长可达75公分", "75公分", "75公分"),
    ],
)
def test_count_answers_are_whole_quantities(question, text, span, whole):
    assert shaped(complete_quantity, question, text, span) == whole


@pytest.mark.parametrize(
    ("question", "text", "span", "kept"),
    [
        ("广东粮食总产量创了哪一年以来的新高", "粮食总产量创2006年以来新高。", "2006年以来", "2006年"),
        ("河南政府工作报告是哪天在人代会上作的", "2026年1月26日在河南省第十四届人民代表大会上", "2026年1月26日在", "2026年1月26日"),
        ("尼科美德二世是谁的儿子？", "他是普鲁西阿斯二世的儿子。", "普鲁西阿斯二世的儿子", "普鲁西阿斯二世"),
        ("纳希德毕业于哪所大学？", "毕业于英国利物浦约翰摩尔斯大学。", "英国利物浦约翰摩尔斯大学", "英国利物浦约翰摩尔斯大学"),
        ("已满几周岁的人应当负刑事责任", "已满十四周岁的人", "十四周岁", "十四周岁"),  # a head noun stays
        ("哪一年以来", "以来", "以来", "以来"),  # never emptied
    ],
)
def test_a_span_stops_at_the_questions_slot(question, text, span, kept):
    assert shaped(slot_only, question, text, span) == kept


@pytest.mark.parametrize(
    ("question", "text", "span", "kept"),
    [
        ("考核内容包括哪4个方面", "包括产品生产能力、市场流通能力、调控保障能力等3个方面。",
         "产品生产能力、市场流通能力、调控保障能力等3个方面", "产品生产能力、市场流通能力、调控保障能力"),
        ("哪几个产业入围了名单", "绍兴黄酒、金华火腿、西湖龙井茶3个产业入围", "绍兴黄酒、金华火腿、西湖龙井茶3个", "绍兴黄酒、金华火腿、西湖龙井茶"),
        ("重点支持了哪些企业", "支持医疗、物资等领域的174家企业。", "医疗、物资等领域的174家企业", "医疗、物资等领域的174家企业"),
        ("新增了多少家企业", "医疗、物资等3家", "医疗、物资等3家", "医疗、物资等3家"),  # not a list question
    ],
)
def test_a_list_answer_drops_its_count(question, text, span, kept):
    assert shaped(list_only, question, text, span) == kept


@pytest.mark.parametrize(
    ("question", "text", "span", "kept"),
    [
        ("湖北亚洲最大的专业货运机场叫什么", "亚洲最大专业货运机场花湖国际机场成为内陆“空中出海口”。",
         "花湖国际机场成为内陆“空中出海口”", "花湖国际机场"),
        ("甘肃刷新投资纪录的是哪个项目", "总投资410亿元的巨化硅氟新材料项目刷新我省单体工业项目投资纪录。",
         "巨化硅氟新材料项目刷新我省单体工业项目投资纪录", "巨化硅氟新材料项目"),
        ("奥巴西加盟了哪支球队", "加盟德乙球队霍芬海姆。", "德乙球队霍芬海姆", "德乙球队霍芬海姆"),  # a name follows: kept
        ("哪个项目刷新了纪录", "巨化硅氟新材料项目", "巨化硅氟新材料项目", "巨化硅氟新材料项目"),  # ends there
        ("哪些项目刷新了纪录", "甲项目刷新纪录", "甲项目刷新纪录", "甲项目刷新纪录"),  # a list question
    ],
)
def test_a_name_answer_stops_after_the_kind_asked_for(question, text, span, kept):
    assert shaped(name_only, question, text, span) == kept


@pytest.mark.parametrize(
    ("question", "text", "span", "kept"),
    [
        ("山东潍宿高铁哪一年建成", "2027年、2028年分别建成津潍、潍宿高铁。", "2027年、2028年", "2028年"),
        ("津潍高铁哪一年建成", "2027年、2028年分别建成津潍、潍宿高铁。", "2028年", "2027年"),
    ],
)
def test_quantities_before_respectively_pair_with_the_items_after_it(question, text, span, kept):
    assert shaped(respective, question, text, span) == kept


@pytest.mark.slow
def test_training_runs_and_its_loss_falls(tmp_path):
    """A few steps on a tiny set made here: the loss falls and the export loads as a reader."""
    from rag.training.data import is_heldout
    from rag.training.train import main

    facts = [("太原市", "新建公园", "12座"), ("大同市", "建成智能化工作面", "85个"),
             ("长治市", "新增高新技术企业", "56家"), ("阳泉市", "新建5G基站", "1200个"),
             ("临汾市", "新增就业岗位", "3.4万个"), ("运城市", "改造老旧小区", "210个")]
    ids = [f"p{i}" for i in range(200) if not is_heldout(f"p{i}")][:len(facts)]
    held = next(f"p{i}" for i in range(200) if is_heldout(f"p{i}"))
    data = tmp_path / "data" / "tiny"
    data.mkdir(parents=True)
    passages, questions = [], []
    for pid, (city, what, number) in zip(ids + [held], facts + [facts[0]]):
        text = f"{city}人民政府发布年度报告。今年{city}{what}{number}，成效明显。下一步将继续推进。"
        passages.append({"id": pid, "title": f"{city}年度报告", "text": text, "split": "train"})
        questions.append({"id": f"q{pid}", "question": f"{city}{what}多少", "answers": [number],
                          "passage_id": pid, "answer_starts": [text.index(number)], "split": "train"})
    (data / "passages.jsonl").write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in passages))
    (data / "questions.jsonl").write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in questions))
    out = tmp_path / "run"
    args = ["--data-dir", str(tmp_path / "data"), "--sets", "tiny", "--repeat", "", "--out", str(out),
            "--steps", "12", "--batch", "3", "--negatives", "1", "--max-length", "96", "--freeze-layers", "10",
            "--lr", "3e-4", "--head-lr", "3e-3", "--eval-every", "12", "--eval-n", "1", "--ckpt-every", "4",
            "--export", str(out / "export")]
    assert main(args) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert any(r.get("eval") == "tiny" for r in log)
    # resumable: a second run with more steps continues from the checkpoint
    assert main(args[:-2] + ["--steps", "14"]) == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r][-2:] == [13, 14]
    # a soup: the mean of this run's (float16) weights and another reader's
    assert main(args[:-2] + ["--steps", "14", "--export", str(out / "last")]) == 0
    assert main(args[:-2] + ["--steps", "14", "--average-with", str(out / "export"), "--export", str(out / "soup")]) == 0
    from safetensors.torch import load_file

    first, last, soup = (load_file(str(out / d / WEIGHTS)) for d in ("export", "last", "soup"))
    assert set(soup) == set(first) and any(not (first[k] == last[k]).all() for k in first)
    assert all((soup[k] == ((first[k].float() + last[k].float()) / 2).half()).all() for k in soup)
    from safetensors import safe_open

    with safe_open(str(out / "export" / WEIGHTS), "pt") as f:
        names = list(f.keys())
    assert not any("embeddings" in n for n in names)  # frozen: taken from the default model
    assert not any(f"layer.{i}." in n for n in names for i in range(10))
    assert {"rel.weight", "span.weight"} <= set(names)
    scored = ReaderNetwork(out / "export").read("太原市新建公园多少", ["太原市年度报告\n今年太原市新建公园12座。"], [8])
    assert len(scored) == 1 and 0 <= scored[0].start < scored[0].end <= len("今年太原市新建公园12座。")
