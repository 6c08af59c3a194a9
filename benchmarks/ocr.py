"""OCR character accuracy and speed on rendered pages, at several rendering resolutions.

    python benchmarks/ocr.py [--pages 3] [--dpi 100,150,200] [--pt 12] [--out results/ocr.json]

Pages of the seed article (data/articles, as read: without its footer boilerplate) are
drawn in the wqy font (Debian's fonts-wqy-microhei) at 12 pt (``--pt``) on A4 as a 300-dpi
scan and saved as image-only PDFs, as a scanner would make them; rag.ingest reads each one
(pypdfium2 renders it at the given dpi, RapidOCR reads it). Accuracy is 1 - edit distance /
length over the page text with whitespace removed and full-width punctuation folded to
half-width on both sides (a scan cannot tell 「，」 from 「,」); lines the detector missed
are counted too.
Speed: pages per second (wall) and CPU seconds per page (this process, all threads: the
figure a loaded machine distorts least), and wall time as a ratio to rendering the same
pages alone, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def fold(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace())


def distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=3)
    parser.add_argument("--dpi", default="100,150,200")
    parser.add_argument("--pt", type=float, default=12.0, help="type size of the scanned pages (五号 is 10.5)")
    parser.add_argument("--out", default=str(HERE / "results" / "ocr.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent / "tests"))
    from fpdf import FPDF

    from rag.ingest import ocr, read_file
    from tests.test_ingest import page_image

    # the seed as rag.ingest keeps it: its footer (「以上就是小编为您分享…」, a disclaimer) is
    # boilerplate that reading drops from a scan as from the text file, not an OCR error
    seed = read_file(HERE.parent / "data" / "articles" / "jinzhong_education_science_talent.txt").text
    paragraphs = [p.strip() for p in seed.split("\n") if len(p.strip()) > 60]
    pages, cur = [], []
    for p in paragraphs:  # about 700 characters a page
        cur.append(p)
        if sum(map(len, cur)) > 700:
            pages.append(cur)
            cur = []
    pages = pages[: args.pages]
    folder = Path(tempfile.mkdtemp(prefix="ocr-bench-"))
    files = []
    for n, lines in enumerate(pages):
        picture, pdf_path = folder / f"p{n}.png", folder / f"p{n}.pdf"
        page_image(lines, dpi=300, pt=args.pt).save(picture)
        pdf = FPDF()
        pdf.add_page()
        pdf.image(str(picture), x=0, y=0, w=210)
        pdf.output(str(pdf_path))
        files.append((pdf_path, "".join(lines)))
    ocr.ocr_engine()  # load once, outside the timings
    results = {"command": "python benchmarks/ocr.py " + " ".join(sys.argv[1:]), "pt": args.pt, "pages": len(files),
               "chars": sum(len(t) for _, t in files), "load_average_at_start": os.getloadavg()[0], "dpi": {}}
    for dpi in (int(d) for d in args.dpi.split(",")):
        ocr.OCR_DPI = dpi
        import pypdfium2

        t0 = time.perf_counter()
        for path, _ in files:
            pdf = pypdfium2.PdfDocument(str(path))
            pdf[0].render(scale=dpi / 72, grayscale=True).to_pil()
            pdf.close()
        render = time.perf_counter() - t0
        errors = total = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for path, truth in files:
            text = read_file(path).text
            errors += distance(fold(text), fold(truth))
            total += len(fold(truth))
        spent, cpu = time.perf_counter() - t0, time.process_time() - c0
        row = {"accuracy": round(100 * (1 - errors / total), 2), "pages_per_s": round(len(files) / spent, 3),
               "s_per_page": round(spent / len(files), 2), "cpu_s_per_page": round(cpu / len(files), 2),
               "render_s_per_page": round(render / len(files), 3), "x_render_alone": round(spent / max(render, 1e-9), 1)}
        results["dpi"][dpi] = row
        print(f"{dpi} dpi: character accuracy {row['accuracy']:.2f}%  {row['pages_per_s']:.3f} pages/s "
              f"({row['s_per_page']} s a page, {row['cpu_s_per_page']} CPU s a page, "
              f"{row['x_render_alone']}x rendering alone)", flush=True)
    results["load_average_at_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
