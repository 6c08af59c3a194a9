"""Helpers shared by several test modules (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rag import KnowledgeBase

from .conftest import REPO, RULES

CITIES = ["太原", "大同", "长治", "晋城", "朔州", "忻州", "吕梁", "临汾", "运城", "阳泉", "晋中", "沈阳",
          "大连", "鞍山", "抚顺", "本溪", "丹东", "锦州", "营口", "阜新"]
# torch with its default thread count crawls on a busy 2-core machine; the tests time nothing
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", **RULES}


def article(city: str, n: int, thing: str = "公园", unit: str = "座") -> str:
    return (f"{city}市2024年城市建设工作情况\n\n{city}市今年新建{thing}{n}{unit}，城市面貌明显改善。"
            f"{city}市将继续推进城市更新行动。\n")


def write_city_articles(folder: Path, cities: list[str], start: int = 10, thing: str = "公园") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, city in enumerate(cities):
        (folder / f"{city}.txt").write_text(article(city, start + i, thing), encoding="utf-8")
    return folder


def rag(*args, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m rag.cli ARGS`` from the repository root."""
    return subprocess.run([sys.executable, "-m", "rag.cli", *map(str, args)], check=False, cwd=REPO, env={**ENV, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stderr without the model loader's progress bar."""
    return [line for line in result.stderr.splitlines() if line.strip() and "Loading weights" not in line]


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, one ``error:`` line naming the problem, no traceback."""
    lines = stderr_lines(result)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_consistent(kb: KnowledgeBase) -> None:
    """Every vector and BM25 row maps to a chunk row and back."""
    snap = kb.store.current()
    with snap.connect() as con:
        rows = {r[0] for r in con.execute("SELECT id FROM chunks")}
        docs = {r[0]: r[1] for r in con.execute("SELECT id, chunk_count FROM documents")}
        per_doc = dict(con.execute("SELECT doc_id, COUNT(*) FROM chunks GROUP BY doc_id").fetchall())
    vector_ids = set()
    if snap.vectors.ntotal:
        import faiss

        vector_ids = set(faiss.vector_to_array(snap.vectors.id_map).tolist())
    assert vector_ids == rows
    assert set(snap.bm25.live_ids().tolist()) == rows
    assert {d: n for d, n in docs.items() if n} == per_doc


CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)
ZERO_WIDTH = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad"


def cjk_font() -> str | None:
    return next((f for f in CJK_FONTS if Path(f).exists()), None)


def image_only_pdf(path: Path) -> None:
    """A PDF holding one picture and no text layer, as a scanner makes."""
    from fpdf import FPDF
    from PIL import Image

    image = path.with_suffix(".png")
    Image.new("RGB", (64, 32), "white").save(image)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(image), x=10, y=10, w=100)
    pdf.output(str(path))
    image.unlink()
