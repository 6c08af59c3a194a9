"""Fine-tune the reader on this machine's CPU, resumably.

``python -m rag.training --data-dir ../shared/data --out runs/reader`` builds the examples
(:mod:`rag.training.data`), trains for ``--steps`` steps and exports the shipped weights.
A checkpoint (trainable weights, optimizer, step, random states) is written atomically every
``--ckpt-every`` steps; rerunning the same command resumes from it. ``log.jsonl`` gets one line
per step (losses, examples/s) and one per held-out evaluation (EM/F1 with the gold window
among its hard negatives, and how often the positive window is ranked first).

Choices for a 2-core CPU: dropout off (train mode is ~3x slower here and the data are
plentiful for one pass), bf16 autocast, word embeddings and the lowest layers frozen,
length-bucketed batches, one positive and few hard negatives per question.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np

from ..answering.model import best_span, build_model, export, trainable_state
from .data import TRAIN_SETS, Example, build_examples

log = logging.getLogger("rag.training")


def tokenize_example(tok, ex: Example) -> list[dict] | None:
    """Token ids and span labels of each window; None when the answer is cut off."""
    out = []
    for w in ex.windows:
        enc = tok.encode(ex.question, w.text)
        start = end = 0
        if w.answer_start >= 0:
            ctx = [i for i, s in enumerate(enc.sequence_ids) if s == 1]
            offs = enc.offsets
            starts = [i for i in ctx if offs[i][0] <= w.answer_start < offs[i][1]]
            ends = [i for i in ctx if offs[i][0] < w.answer_end <= offs[i][1]]
            if not starts or not ends:
                return None
            start, end = starts[0], ends[-1]
        out.append({"ids": enc.ids, "start": start, "end": end})
    return out


def batches(groups: list[list[dict]], per_batch: int, rng: random.Random) -> list[list[int]]:
    """Groups bucketed by length (sorted inside blocks of 50 batches), then shuffled."""
    order = list(range(len(groups)))
    rng.shuffle(order)
    block = per_batch * 50
    out = []
    for i in range(0, len(order), block):
        part = sorted(order[i:i + block], key=lambda g: max(len(w["ids"]) for w in groups[g]))
        out += [part[j:j + per_batch] for j in range(0, len(part), per_batch)]
    rng.shuffle(out)
    return out


def collate(groups: list[list[dict]], pad_id: int):
    import torch

    rows = [w for g in groups for w in g]
    width = max(len(w["ids"]) for w in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, w in enumerate(rows):
        ids[i, :len(w["ids"])] = torch.tensor(w["ids"])
        mask[i, :len(w["ids"])] = 1
    start = torch.tensor([w["start"] for w in rows])
    end = torch.tensor([w["end"] for w in rows])
    sizes = [len(g) for g in groups]
    return ids, mask, start, end, sizes


def losses(model, batch):
    """Span loss (start and end cross-entropy, the first token for "no answer") and a
    listwise relevance loss (the positive, first of each group, against its negatives)."""
    import torch
    import torch.nn.functional as F

    ids, mask, start, end, sizes = batch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rel, s_logits, e_logits = model(ids, mask)
    rel, s_logits, e_logits = rel.float(), s_logits.float(), e_logits.float()
    span = (F.cross_entropy(s_logits, start) + F.cross_entropy(e_logits, end)) / 2
    rel_loss, i = 0.0, 0
    for n in sizes:
        rel_loss = rel_loss + F.cross_entropy(rel[i:i + n][None], torch.zeros(1, dtype=torch.long))
        i += n
    return span, rel_loss / len(sizes)


def evaluate(model, tok, examples: list[Example]) -> dict:
    """Held-out reading: the window the model ranks first, its best span (or no answer)."""
    import torch

    from ..answering.model import encode
    from ..evaluation import exact_match, f1_score

    em = f1 = top = 0.0
    for ex in examples:
        texts = [w.text for w in ex.windows]
        enc = encode(tok, ex.question, texts)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            rel, s, e = model(torch.as_tensor(enc["input_ids"]), torch.as_tensor(enc["attention_mask"]))
        rel, s, e = rel.float().numpy(), s.float().numpy(), e.float().numpy()
        k = int(np.argmax(rel))
        top += k == 0
        allowed = np.asarray(enc["context"][k]) & (np.asarray(enc["char_start"][k]) >= ex.windows[k].prefix)
        a, b, _ = best_span(s[k], e[k], allowed)
        pred = texts[k][enc["char_start"][k][a]:enc["char_end"][k][b]] if a >= 0 else ""
        em += exact_match(pred, ex.answers)
        f1 += f1_score(pred, ex.answers)
    n = max(len(examples), 1)
    return {"em": em / n, "f1": f1 / n, "rel_top1": top / n, "n": len(examples)}


def _save(path: Path, obj) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m rag.training", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--sets", default=",".join(TRAIN_SETS))
    ap.add_argument("--repeat", default="ncp_policy_qa_dev=3", help="NAME=N: show a small set N times per epoch")
    ap.add_argument("--out", type=Path, default=Path("runs/reader"))
    ap.add_argument("--export", type=Path, default=None, help="write the shipped weights here at the end")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8, help="questions per step")
    ap.add_argument("--negatives", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=320)
    ap.add_argument("--freeze-layers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use only N training examples per set (tests)")
    ap.add_argument("--eval-n", type=int, default=150, help="held-out questions per set at each evaluation")
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--ckpt-every", type=int, default=25)
    ap.add_argument("--init", type=Path, default=None,
                    help="start from a trained reader's folder (e.g. rag/models/reader) instead of fresh heads")
    ap.add_argument("--average-with", type=Path, default=None,
                    help="export the mean of the trained weights and this reader's (e.g. the --init one)")
    ap.add_argument("--search-share", type=float, default=0.0,
                    help="share of questions also trained as search-engine queries (data.search_style)")
    ap.add_argument("--base", type=Path, default=None, help="converted e5 folder (default: the bundled model)")
    ap.add_argument("--threads", type=int, default=0)
    return ap.parse_args(argv)


def load_data(args: argparse.Namespace, tok, sets: list[str]) -> tuple[list[list[dict]], dict[str, list[Example]]]:
    """Tokenized training groups and held-out examples per set, cached in ``examples.pt``
    under ``--out`` so that a resumed run trains on exactly the same data."""
    import torch

    cache = args.out / "examples.pt"
    if cache.is_file():
        data = torch.load(cache, weights_only=False)
        return data["train"], data["heldout"]
    repeat = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.repeat.split(",") if "=" in kv}
    data = {"train": [], "heldout": {}}
    for name in sets:
        train = build_examples(args.data_dir, name, heldout=False, negatives=args.negatives, seed=args.seed,
                               search_share=args.search_share)
        held = build_examples(args.data_dir, name, heldout=True, negatives=args.negatives, seed=args.seed,
                              search_share=1.0 if args.search_share else 0.0)
        if args.limit:
            train = train[:args.limit]
        groups = [g for g in (tokenize_example(tok, ex) for ex in train) if g]
        data["train"] += groups * repeat.get(name, 1)
        for label, part in ((name, [e for e in held if not e.qid.endswith("#search")]),
                            (f"{name}/search", [e for e in held if e.qid.endswith("#search")])):
            if part:
                data["heldout"][label] = random.Random(args.seed).sample(part, min(args.eval_n, len(part)))
        log.info("%s: %d training questions (%d kept), %d held-out", name, len(train), len(groups), len(held))
    _save(cache, data)
    return data["train"], data["heldout"]


def average_into(model, folder: Path) -> None:
    """Make each trained weight the mean of itself and ``folder``'s reader's: a weight-space
    average of two fine-tunings of one model ("model soup", Wortsman et al. 2022). For stages
    2 and 3 it kept most of what each read better, not all (model card, stage 3)."""
    import torch
    from safetensors.torch import load_file

    from ..answering.model import WEIGHTS

    other = load_file(str(folder / WEIGHTS))
    mine = trainable_state(model)
    if set(other) != set(mine):
        raise ValueError(f"{folder} holds other weights than this model trains")
    with torch.no_grad():
        # both as shipped (float16), so that the soup is the mean of two shippable readers
        model.load_state_dict({k: (v.half().float() + other[k].float()) / 2 for k, v in mine.items()}, strict=False)


def load_model(args: argparse.Namespace, base: Path):
    """The reader on ``base``: fresh heads, or ``--init``'s trained weights; dropout off."""
    model = build_model(base, freeze_layers=args.freeze_layers)
    if args.init:
        from safetensors.torch import load_file

        from ..answering.model import WEIGHTS

        model.load_state_dict({k: v.float() for k, v in load_file(str(args.init / WEIGHTS)).items()}, strict=False)
        log.info("started from %s", args.init)
    model.train(False)  # dropout off: see the module docstring
    return model


def _optimizer(args: argparse.Namespace, model):
    """AdamW with the encoder and the heads at their own learning rates; linear warm-up,
    then linear decay to 0. Returns the optimizer, the schedule and the trained parameters."""
    import torch

    heads = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
    opt = torch.optim.AdamW([{"params": body, "lr": args.lr}, {"params": heads, "lr": args.head_lr}],
                            weight_decay=0.01)
    warm = max(1, int(args.warmup * args.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (args.steps - s) / max(1, args.steps - warm)))
    return opt, sched, body + heads


def train(args: argparse.Namespace, model, tok, groups: list[list[dict]], heldout: dict[str, list[Example]]) -> None:
    """Train to ``--steps``, resuming from ``checkpoint.pt`` under ``--out`` if there is one;
    a checkpoint every ``--ckpt-every`` steps and a held-out evaluation every
    ``--eval-every`` steps (and both at the last), one ``log.jsonl`` line per step."""
    import torch

    opt, sched, params = _optimizer(args, model)
    step, epoch, cursor = 0, 0, 0
    ckpt = args.out / "checkpoint.pt"
    rng = random.Random(args.seed)
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step, epoch, cursor = state["step"], state["epoch"], state["cursor"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed at step %d", step)
    plan = batches(groups, args.batch, random.Random(args.seed + epoch))
    pad = tok.token_to_id("<pad>")
    t0, seen = time.perf_counter(), 0
    with open(args.out / "log.jsonl", "a", encoding="utf-8") as logf:
        while step < args.steps:
            if cursor >= len(plan):
                epoch, cursor = epoch + 1, 0
                plan = batches(groups, args.batch, random.Random(args.seed + epoch))
            batch = collate([groups[g] for g in plan[cursor]], pad)
            span, rel = losses(model, batch)
            loss = span + rel
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step, cursor, seen = step + 1, cursor + 1, seen + len(batch[4])
            rate = seen / (time.perf_counter() - t0)
            _log(logf, {"step": step, "loss": round(loss.item(), 4), "span": round(span.item(), 4),
                        "rel": round(float(rel.detach()), 4), "q_per_s": round(rate, 3), "epoch": epoch,
                        "lr": sched.get_last_lr()[0], "time": round(time.time())})
            if step % args.ckpt_every == 0 or step == args.steps:
                _save(ckpt, {"model": trainable_state(model), "opt": opt.state_dict(), "sched": sched.state_dict(),
                             "step": step, "epoch": epoch, "cursor": cursor, "rng": rng.getstate(),
                             "torch_rng": torch.get_rng_state(),
                             "args": vars(args) | {"data_dir": str(args.data_dir)}})
            if step % args.eval_every == 0 or step == args.steps:
                for name, exs in heldout.items():
                    res = evaluate(model, tok, exs)
                    _log(logf, {"step": step, "eval": name} | res)
                    log.info("step %d %s: %s", step, name, res)
                log.info("step %d loss %.3f (%.2f questions/s)", step, loss.item(), rate)


def _log(logf, record: dict) -> None:
    """One ``log.jsonl`` line, flushed: a run stopped at any step keeps its log."""
    logf.write(json.dumps(record) + "\n")
    logf.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from ..answering.model import load_tokenizer
    from ..embedding import default_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    base = args.base or default_model_dir()
    tok = load_tokenizer(base, args.max_length)
    args.out.mkdir(parents=True, exist_ok=True)
    sets = [s for s in args.sets.split(",") if s]
    groups, heldout = load_data(args, tok, sets)
    model = load_model(args, base)
    train(args, model, tok, groups, heldout)
    if args.export:
        if args.average_with:
            average_into(model, args.average_with)
        meta = {"freeze_layers": args.freeze_layers, "max_length": args.max_length, "steps": args.steps,
                "batch": args.batch, "negatives": args.negatives, "lr": args.lr, "seed": args.seed,
                "sets": sets, "search_share": args.search_share,
                "init": str(args.init) if args.init else None,
                "average_with": str(args.average_with) if args.average_with else None}
        path = export(model, args.export, meta)
        log.info("exported %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
