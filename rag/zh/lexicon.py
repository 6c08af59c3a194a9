"""The Chinese words the rules are made of, in one place.

Question words, measure words, stop words and the characters of names, each list named
for its job: BM25 splits queries at :data:`QUESTION_WORDS`, the follow-up rewriter finds
the slot of a question with :data:`FOLLOWUP_QUESTION_RE`, the extractor types a question
with the ``*_RE`` patterns and reads quantities with :data:`UNIT_FAMILIES`, and the check
of written answers compares numbers carrying :data:`CHECKED_UNITS`. The lists differ where
their jobs do (BM25 also drops particles such as 吗 and 呢; the rewriter must not take them
for question words), and are built from :data:`INTERROGATIVES` where they agree.
"""

from __future__ import annotations

import re


def words(text: str) -> tuple[str, ...]:
    """A tuple of the whitespace-separated words of ``text`` (for long word lists)."""
    return tuple(text.split())


def longest_first(words: tuple[str, ...] | list[str]) -> str:
    """A regex alternation of ``words`` that prefers the longest match at each position."""
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


# --------------------------------------------------------------------------------------
# Question words
# --------------------------------------------------------------------------------------

# Interrogatives every rule agrees on.
INTERROGATIVES = words(
    "是什么 什么 为什么 怎么样 怎么 怎样 如何 哪些 哪里 哪儿 哪个 哪位 哪年 哪天 哪一年 哪 多少 几 "
    "是谁 谁 何时 何地 何处 是否 是不是 有没有"
)
PARTICLES = words("吗 呢 吧 么")
# Question words and particles carry no content; BM25 splits queries at them so that no
# bigram spans one (「晋中有几家」 gives 晋中/中有 and 家, not 有几/几家).
QUESTION_WORDS = ["请问", *INTERROGATIVES, "什么样", "多久", "多长", "多大", *PARTICLES]
QUESTION_WORDS_RE = re.compile(longest_first(QUESTION_WORDS))
# Single-character measure words a question may put after 几 / 多少 (几家, 多少所, 多少个).
QUESTION_MEASURES = "家个名人位所项场次条件项亿万元年月天座台批届期篇户处种类支套笔"
# The slot a question asks about: an interrogative with the measure word after it (哪一年, 几家).
SLOT_RE = re.compile(rf"(?:{longest_first([w for w in INTERROGATIVES if w not in ('是否', '是不是', '有没有')])})"
                     rf"[{QUESTION_MEASURES}]?")
# Function words that begin what a question says after its slot (「哪一年以来」, 「哪天在…」,
# 「谁的儿子」): the answer fills the slot, so a span that ends with them has run past it.
SLOT_FOLLOWERS = "在于是的以为从到了"
# A question that asks for a list (哪些, 哪几个, 哪4个, 哪三项).
LIST_QUESTION_RE = re.compile(r"哪些|哪几|哪[\d一二三四五六七八九十两]")
# The kind of thing a name question asks for: the noun after 哪个/哪家/哪所… (「哪个项目」,
# 「哪支球队」) or before 叫什么 (「货运机场叫什么」).
NAME_KIND_RES = (re.compile(r"哪一?[个家座所项条支部]([\u4e00-\u9fff]{1,6}?)(?=[的是在于为由将能会可被把给与和呢吗？?。，,]|$)"),
                 re.compile(r"([\u4e00-\u9fff]{1,2})(?:的名字|的名称)?(?:叫做?|名叫|称为|名为)什么"))
# The follow-up rewriter's question words: a measure word goes with 几 / 多少.
FOLLOWUP_QUESTION_RE = re.compile(
    rf"(?:几[{QUESTION_MEASURES}]?|多少[{QUESTION_MEASURES}]?|"
    + longest_first([w for w in INTERROGATIVES if w not in ("几", "多少")] + ["什么时候", "为何"])
    + ")"
)

# What the extractor's question types are recognised by (QUESTION_TYPES below).
WHEN_RE = re.compile(
    r"什么时候|什么时间|什么时期|什么年代|什么日子|何时|何年|何月|何日|哪一?个?年代|哪个时期|哪个朝代"
    r"|哪一?年|哪一?天|哪一?日|哪个月|几月几[日号]|几月份?|几[日号]|几点|几时"
)
WHO_RE = re.compile(r"谁|哪一?位|何人|什么人")
WHY_HOW_RE = re.compile(r"为什么|为何|为啥|怎么|怎样|如何|什么原因|何故")
KIND_RE = re.compile(r"哪一?[种类样]|什么[种类样]")
COUNT_RE = re.compile(
    r"百分之几|百分之多少|多少倍|多少钱|多少|第几|(?<!哪)几(?!乎|何|经|率)"
    r"|(?<![很许诸更较众最过太])多(?:[高长重深远久宽厚快粗少]|大(?!学|型|量|部分|多数))"
)
WHERE_RE = re.compile(
    r"在哪里|在哪儿|哪里|哪儿|哪些|哪几[个条种家所座位部项类]?|在哪|何处|何地|何方|什么地方|什么位置|什么地点|什么地区|哪一?[个家所座条省市县区国州城镇乡村洲支部间]?"
)
WHAT_RE = re.compile(r"什么|甚么|啥|(?<![任如为几奈])何")
# Questions without a question word, recognised by how they end.
COUNT_TAIL_RE = re.compile(
    r"(?:数量|数目|人数|总数|个数|总额|金额|规模|比例|比重|面积|总量|增幅|增速|多少)$"
)
WHEN_TAIL_RE = re.compile(r"(?:时间|日期|年份|时候)$")
WHERE_TAIL_RE = re.compile(r"(?:地点|位置|地址|所在地|地方)$")
# The extractor's question types, the first pattern that matches wins: question words,
# then (for questions without one) how the question ends.
QUESTION_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("when", WHEN_RE), ("who", WHO_RE), ("other", WHY_HOW_RE), ("what", KIND_RE), ("count", COUNT_RE),
    ("where", WHERE_RE), ("what", WHAT_RE),
    ("count", COUNT_TAIL_RE), ("when", WHEN_TAIL_RE), ("where", WHERE_TAIL_RE),
)

# --------------------------------------------------------------------------------------
# Measure words
# --------------------------------------------------------------------------------------

# Measure words / units, longest first. Families let 「多少钱」 prefer 元 and 「多高」 米.
UNIT_FAMILIES: dict[str, tuple[str, ...]] = {
    "area": words("平方呎 平方英呎 km2 km² m2 m² 平方公里 平方千米 平方米 平方英里 平方英尺 公顷 亩"),
    "money": words(
        "亿美元 万美元 美元 亿元 万元 千元 元 欧元 英镑 日元 港元 港币 人民币 澳元 加元 韩元 新台币 台币 卢布 块钱 块 角"
    ),
    "length": words(
        "km cm mm m ft mi 光年 公里 呎 吋 千米 公尺 厘米 公分 毫米 英里 英尺 英寸 海里 米 尺 寸 里"
    ),
    "weight": words("kg 千克 公斤 吨 克 斤 磅"),
    "time": words("个小时 小时 分钟 个月 星期 年 月 天 日 周 秒"),
    "age": words("周岁 岁"),
    "percent": words("% ％ ‰ 个百分点 成"),
    "power": words("匹马力 马力 万千瓦 千瓦 兆瓦 瓦 千伏 伏"),
    "temperature": words("°c ℃ 度"),
    "speed": words("km/h 公里/小时 千米/小时 米/秒 m/s mph"),
    "generic": words(
        "人次 万人 个 家 人 名 位 所 场 项 次 件 条 座 台 辆 架 艘 套 种 类 批 届 期 支 队 部 本 篇 "
        "首 张 幅 集 层 栋 户 处 间 票 分 倍 头 只 株 棵 枚 颗 份 门 节 轮 季 例 起 亿 万 千 百 世纪 "
        "代 级 股 册 卷 章 回 组 对 双 片 块 幢 话 任 品 部分 首歌 号 路 线 辑 站 关 局 盘 球 席 道 "
        "页 把 招 瓶 杯 箱 袋 盒 粒 口"
    ),
}
UNIT_FAMILY: dict[str, str] = {}
for _family, _members in UNIT_FAMILIES.items():
    for _unit in _members:
        UNIT_FAMILY.setdefault(_unit, _family)
UNITS = sorted(UNIT_FAMILY, key=len, reverse=True)
UNIT_ALT = "|".join(re.escape(u) for u in UNITS)
# Adjective after 多 in 「多高」 etc. -> expected unit family.
ADJ_FAMILY = {**dict.fromkeys("高长深远宽厚粗", "length"), "重": "weight", "久": "time", "大": ""}
# The measure words whose numbers the check of written answers compares
# (rag.answering.grounding): 8家 is not backed by 「五届八次」.
CHECKED_UNITS = sorted(
    words(
        "个百分点 个小时 个月 人次 万人 亿元 万元 千元 元 % ‰ 家 个 人 名 位 所 场 项 次 件 条 座 台 辆 种 类 "
        "批 届 期 支 户 处 间 份 倍 年 月 日 号 天 岁 周 小时 分钟 平方公里 公里 千米 米 公顷 亩 吨 千克 公斤 万 亿"
    ),
    key=len,
    reverse=True,
)

# --------------------------------------------------------------------------------------
# Stop words and names
# --------------------------------------------------------------------------------------

STOP_WORDS = frozenset(
    words(
        """
        的 了 是 有 在 和 与 及 也 都 就 被 把 对 从 到 于 为 以 而 或 吗 呢 吧 啊 呀 嘛 个 这 那 其 该 此 之 等 中 上 下 内 一 共 一共 总共 大约
        约 分别 请问 请 告诉 我 你 他 她 它 们 我们 你们 他们 什么 哪 几 多少 谁 何 具体 目前 现在 主要 哪些 如何 怎么 能 会 要 可以 可 需要 已经 曾 曾经
        还 又 再 很 最 叫 叫做 称 称为 得 地 着 过 给 让 使 将 所 并 且 但 如果 因为 所以 由 向 跟 同 当 时 年 第 多 少 大 是否 有没有 吗? 么 甚么
        啥 怎样 为什么 为何 哪里 哪儿 哪个 哪位 哪一 哪家 什么样 多大 多久 多长 多高 一下 知道 想 问 是不是 其中 之中
        """
    )
)

SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜"
    "崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊"
    "葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉"
    "骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏"
    "宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
COMPOUND_SURNAMES = words("欧阳 司马 上官 诸葛 东方 皇甫 令狐 慕容 尉迟 长孙 宇文 司徒 夏侯")
# Characters of transliterated foreign names (Xinhua style), for 「阿尔伯特·斯佩尔」.
TRANSLIT = (
    "阿埃艾爱安昂奥澳巴拔白拜班邦保鲍贝本比彼毕宾波伯勃博布查柴楚达戴丹道德登邓迪蒂丁东杜多厄恩尔法凡范菲费芬丰冯"
    "弗佛福夫伏盖甘冈戈哥格根古瓜圭哈海汉豪赫黑亨洪胡华怀惠霍基吉加嘉贾坚杰金京居卡开凯坎康考柯科可克肯孔库奎拉莱"
    "赖兰朗劳勒雷蕾里莉利丽连廉林琳伦罗洛卢鲁路吕马玛迈麦曼芒梅门蒙米密明缪摩莫墨默姆穆纳娜奈南内尼妮涅宁纽努诺欧"
    "帕潘庞佩彭皮珀坡普奇齐恰乔切钦琼丘屈让热瑞若萨塞赛桑瑟森沙莎尚舍申圣施史舒斯丝松苏索塔泰坦汤唐陶特提汀通图托"
    "瓦旺威韦维温文翁沃乌伍武西希锡席夏谢辛休修雅亚扬耶叶伊依因英尤于宇约扎泽詹兹朱卓佐茨娅黛琪薇露姬翰荷茱莉萝"
    "芙蒂琳莎娃妲蕾琼凯柏贝尚谷纳奎韦魏沃温肖"
)
# Titles that stand before a person's name (「局长王华说」).
PERSON_TITLES = (
    r"(?:局长|主任|书记|市长|省长|县长|区长|镇长|村长|部长|厅长|主席|总理|校长|院长|董事长|总经理|经理"
    r"|教授|研究员|专家|会长|社长|主编|导演|作者|所长|处长|科长|站长|队长|组长|委员|代表|负责人|工程师)"
)
