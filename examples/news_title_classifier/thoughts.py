"""Write a thought for each labelled title, by rule or from a reasoning model's distilled replies.

Usage: python thoughts.py TRAIN.csv OUT.csv                  (columns title,label in; title,label,thought out)
       python thoughts.py --distilled DISTILLED.jsonl OUT.csv (lf-reasoning distill output, see README.md)

By rule, the thought is a rationale written from the gold label (training data, not a prediction): it names up to
two cue words found in the title and the topic they point to, e.g.
标题里的“夺冠”“决赛”指向体育赛事和运动员，所以类别是体育。 A title with no cue word gets the topic alone.
Distilled, the teacher's thought is kept only where its answer names the gold label (the reference answer), with
eval's matching rules; the others are counted and left out.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

# label: (topic, cue words). A cue word is looked up only in titles of its own label.
CUES: dict[str, tuple[str, list[str]]] = {
    "体育": (
        "体育赛事和运动员",
        """
        比赛 决赛 半决赛 冠军 夺冠 亚军 联赛 中超 英超 NBA CBA 球队
        主场 客场 进球 破门 奥运 亚运 世界杯 全运会 马拉松 选手 运动员 国足
        女排 乒乓 羽毛球 网球 田径 游泳 跳水 体操 滑雪 赛季 教练 主帅 球员
        金牌 银牌 夺金 晋级 淘汰 绝杀 战胜 击败 逆转 世锦赛 锦标赛 公开赛
        转会 射手 赛事 足球 篮球 排球 冬奥 纪录 拳王 F1 高尔夫 门将 卫冕
        体育 男篮 女篮 热身赛 大满贯 澳网 种子 赛段 金球奖 亚洲杯 小组赛
        世乒赛 国乒 篮板 男单 女单 花样滑冰
    """.split(),
    ),
    "财经": (
        "股市、公司经营和宏观经济",
        """
        A股 股市 沪指 深成指 创业板 港股 美股 指数 涨停 跌停 收涨 收跌 基金
        券商 银行 央行 降准 降息 利率 LPR GDP CPI PPI 通胀 汇率
        人民币 美元 黄金 油价 原油 财报 营收 净利 利润 亏损 上市 IPO 融资
        市值 投资 投资者 股东 分红 债券 国债 保险 理财 信贷 贷款 外贸 出口
        进口 关税 消费 零售 经济 资金 证监会 交易所 北向 财经 企业 电商 物价
        社零 个税 并购 估值 证券 印花税 交易量 评级 期货 业务量 销量 业绩
        收入 PMI 制造业 价格 订单 物流 减持 现金
    """.split(),
    ),
    "科技": (
        "科技产品和科学进展",
        """
        芯片 AI 人工智能 大模型 算法 手机 5G 6G 卫星 火箭 发射 航天
        探测器 量子 机器人 自动驾驶 智驾 新能源 电池 半导体 操作系统 鸿蒙 苹果
        iPhone 华为 小米 软件 App 互联网 网络 数据 云计算 算力 科学家
        研究 实验 发现 技术 科技 研发 专利 屏幕 处理器 开源 元宇宙 无人机
        可穿戴 折叠屏 系统 升级 光刻 望远镜 基因 天文 数字 平台 量产 首发
        发布 智能 医疗器械 语音助手 月背 采样 浏览器 摄像头 显示面板 核聚变
        无人配送 合成生物学 耳机 电路 储能
    """.split(),
    ),
    "娱乐": (
        "影视、综艺和明星",
        """
        电影 影片 票房 电视剧 剧集 综艺 明星 演员 导演 歌手 演唱会 专辑 新歌
        单曲 影帝 影后 金鸡 金马 百花 奥斯卡 戛纳 定档 上映 杀青 开机 官宣
        恋情 绯闻 粉丝 偶像 主演 角色 首映 预告 网剧 短剧 综艺节目 音乐 乐队
        颁奖 红毯 影视 收视 热播 翻拍 番位 出道 舞台 娱乐 春晚 剧组 续集
        动画 顶流 片场 工作室 好莱坞 息影 影迷 民谣 定妆照 主持人 晚会 男主角
        女主角 提档 纪录片 口碑 第三季 老剧
    """.split(),
    ),
    "教育": (
        "学校、考试和教育政策",
        """
        高考 中考 考研 学生 学校 高校 大学 中学 小学 幼儿园 教师 老师 校长
        课程 课堂 教材 教育 招生 录取 分数线 志愿 毕业 毕业生 学位 研究生
        博士 本科 专业 双减 作业 培训 家长 留学 奖学金 学费 开学 期末 考试
        校园 学科 职业教育 学业 考生 教室 课后 升学 保研 校区 学历 辅导 阅卷
        题目 校服 高中 实验课 高职 扩招 研学 贫困生 办学 助学 延时服务 本专科
    """.split(),
    ),
    "游戏": (
        "电子游戏和电竞",
        """
        游戏 手游 端游 网游 电竞 版号 玩家 主机 Switch PS5 Xbox
        Steam 任天堂 索尼 腾讯游戏 网易游戏 米哈游 DLC 副本 英雄联盟
        王者荣耀 原神 LPL KPL 战队 赛季 皮肤 公测 内测 上线 开服 氪金
        抽卡 角色 更新 版本 MOBA 3A 独立游戏 开发商 发行商 新作 续作
        重制 联机 关卡 Boss 防沉迷 道具 服务器 游戏圈 模组 掌机 NPC
        新游 外挂 作弊 CS2 电玩展
    """.split(),
    ),
    "房产": (
        "楼市和住房",
        """
        楼市 房价 房贷 首付 公积金 限购 限贷 房企 开发商 楼盘 新房 二手房
        住宅 商品房 土地 土拍 地块 拍地 租房 租金 房租 保障房 安置房 棚改
        物业 业主 交房 烂尾 保交楼 房地产 房产 买房 购房 置业 学区房 户型
        成交 去化 万科 碧桂园 恒大 售楼 按揭 认房 认贷 小区 房东 租赁 拆迁
        老旧小区 新政 卖旧买新 现房 期房 预售 好房子 层高 共有产权 公寓 长租
        地产 小产权房 城中村 改造 破产重整 在建项目
    """.split(),
    ),
    "时政": (
        "政府政策、外交和法律",
        """
        国务院 中央 总书记 主席 总理 外交部 部长 会议 会谈 会见 访问 外交
        两会 人大 政协 法律 条例 立法 修订 草案 政策 改革 意见 部署 反腐
        纪委 监委 巡视 落马 政府 官员 省委 市委 书记 省长 市长 选举 总统
        首相 议会 峰会 联合国 大使 声明 制裁 双边 合作 国事 白宫 政治 党
        工作报告 依法 治理 特首 施政报告 干部 纪检监察 外长 行政执法 督察 使馆
        政要 国新办 白皮书 海峡论坛 国会 弹劾 宪法 政务 领导人 会晤
    """.split(),
    ),
    "社会": (
        "身边的事件和民生",
        """
        男子 女子 老人 孩子 市民 村民 司机 乘客 民警 警方 派出所 消防 救援
        被困 事故 车祸 追尾 起火 火灾 溺水 暴雨 台风 地震 洪水 内涝 诈骗
        盗窃 抢劫 嫌疑人 刑拘 拘留 判决 法院 纠纷 见义勇为 好心 走失 寻亲
        志愿者 小区 外卖 快递 医院 患者 酒驾 醉驾 高速 交通 热心 网友 捐
        失主 邻居 骗 救 中暑 驴友 路人 摔倒 醉汉 交警 行人 被拐 游客 摊主
        查处 被拘 被判 受伤 重伤
    """.split(),
    ),
    "军事": (
        "军队、武器和国防",
        """
        军 解放军 战区 海军 空军 陆军 火箭军 武警 部队 官兵 士兵 军演 演习
        演练 训练 航母 驱逐舰 护卫舰 潜艇 战机 战斗机 歼- 轰- 运- 导弹
        无人机 坦克 装甲 雷达 武器 装备 国防 国防部 北约 五角大楼 征兵
        退役军人 阅兵 防空 舰 军舰 舰载机 巡航 实弹 射击 打击 战备 兵力 军工
        军费 核 飞行员 战争 前线 反导 拦截 预警机 新兵 班长 大驱 运输机 跑道
        炮兵 交火 特种兵 火箭炮 作战 陆航 直升机 武装 东风 潜航器 侦察
    """.split(),
    ),
}


def thought(title: str, label: str) -> str:
    """The rule-written thought for ``title`` of category ``label`` (a KeyError names an unknown label)."""
    topic, words = CUES[label]
    found = sorted({w for w in words if w in title}, key=lambda w: (title.index(w), -len(w)))
    cues = []
    for word in found:  # the earliest cue words, skipping one contained in a cue already taken
        if not any(word in taken for taken in cues):
            cues.append(word)
    if not cues:
        return f"标题讲的是{topic}，所以类别是{label}。"
    quoted = "".join(f"“{w}”" for w in cues[:2])
    return f"标题里的{quoted}指向{topic}，所以类别是{label}。"


def by_rule(src: Path) -> list[dict[str, str]]:
    """title,label rows of ``src`` with their rule-written thought; a SystemExit names a row with an unknown label."""
    with src.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for line, row in enumerate(rows, 2):
        if not (row.get("title") or "").strip():
            sys.exit(f"{src}:{line}: no title (the file needs the columns title,label)")
        if row.get("label") not in CUES:
            sys.exit(f"{src}:{line}: unknown label {row.get('label')!r}; known: {' '.join(CUES)}")
    rows = [{"title": r["title"], "label": r["label"], "thought": thought(r["title"], r["label"])} for r in rows]
    with_cue = sum(not r["thought"].startswith("标题讲的是") for r in rows)
    print(f"{len(rows)} titles, {with_cue} ({with_cue / max(len(rows), 1):.0%}) with a cue word")
    return rows


def distilled(src: Path) -> list[dict[str, str]]:
    """Rows from ``lf-reasoning distill`` output whose answer names the reference label, with the teacher's thought.

    The label set is the reference answers seen (plus CUES' labels), so your own categories need no cue words."""
    import orjson

    from lf_reasoning.commands.evaluate import match_label, normalize

    records = []
    with src.open("rb") as f:
        for line, raw in enumerate(f, 1):
            try:
                record = orjson.loads(raw)
                records.append(
                    (
                        str(record["input"]),
                        str(record["reference_answer"]),
                        str(record.get("content") or ""),
                        str(record.get("reasoning_content") or "").strip(),
                    )
                )
            except (orjson.JSONDecodeError, KeyError, TypeError) as err:
                sys.exit(f"{src}:{line}: not a distill record with input and reference_answer ({err!r})")
    labels = {normalize(label): label for label in [*CUES, *(gold for _, gold, _, _ in records)]}
    rows, outcomes = [], Counter()
    for title, gold, answer, thought in records:
        predicted = match_label(answer, labels)
        if predicted == gold and thought:
            rows.append({"title": title, "label": gold, "thought": thought})
        outcomes[
            "kept"
            if predicted == gold and thought
            else "no thought"
            if predicted == gold
            else "teacher disagrees"
            if predicted in labels.values()
            else predicted
        ] += 1
    print(f"{len(rows)} titles with a distilled thought; " + ", ".join(f"{k}: {v}" for k, v in outcomes.items()))
    if not rows:
        sys.exit(f"{src}: no reply names its reference label; nothing written")
    return rows


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[0] != "--distilled"):
        print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
        return 2
    src, dst = Path(argv[-2]), Path(argv[-1])
    try:
        rows = distilled(src) if len(argv) == 3 else by_rule(src)
    except OSError as err:
        sys.exit(f"{src}: cannot read: {err.strerror}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=dst.parent, delete=False) as tmp:
        writer = csv.DictWriter(tmp, fieldnames=["title", "label", "thought"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp.name, dst)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
