"""Which precision the default model's passages run in: bfloat16 where this CPU runs it
faster and it agrees with float32 on a probe, else float32; the decision is remembered per
machine in the model folder."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from ..ingest.hashing import sha256_hex
from .base import _normalize_rows

log = logging.getLogger(__name__)


_PRECISIONS = ("auto", "fp32", "bf16", "int8")


_PROBE_TEXTS = (
    "passage: 建立院士(专家)工作站3家,获批设立1家国家博士后科研站,7家省级博士创新站。",
    "passage: 各地要统筹做好疫情防控和经济社会发展工作,保障重点物资运输车辆正常通行,不得层层加码。",
    "query: 晋中有几家省级博士创新站",
    "passage: The committee approved the annual budget after a long debate on public health spending.",
)


def _probe(model) -> np.ndarray:
    import torch

    with torch.inference_mode():
        vectors = model.encode(
            list(_PROBE_TEXTS), convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
    return _normalize_rows(np.asarray(vectors, dtype=np.float32))


def _bf16_speedup() -> float:
    """How much faster a bfloat16 linear layer runs than float32 here (best of a few runs)."""

    import torch

    x, w = torch.randn(512, 384), torch.randn(1536, 384)

    def best(dtype) -> float:
        a, b = x.to(dtype), w.to(dtype)
        torch.nn.functional.linear(a, b)
        t = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            torch.nn.functional.linear(a, b)
            t = min(t, time.perf_counter() - start)
        return t

    try:
        return best(torch.float32) / best(torch.bfloat16)
    except Exception:  # noqa: BLE001 - no bfloat16 kernels on this platform
        return 0.0


def _machine_key(requested: str) -> str:
    """What the precision decision depends on: the request, torch's version and the CPU."""
    import platform

    import torch

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = "".join(sorted({line for line in f if line.startswith(("model name", "flags"))}))
    except OSError:
        cpu = platform.processor()
    digest = sha256_hex(cpu, 16)
    return f"{requested}|torch {torch.__version__}|{platform.machine()}|{os.cpu_count()}|{digest}"


def _cached_precision(folder: Path, model, requested: str, min_cosine: float) -> str:
    """:func:`_set_precision`, with its decision remembered in the model folder for this
    machine: the speed check and the two probes cost ~1-3 s of every first load, and
    their answer does not change while torch and the CPU stay the same."""
    import torch

    record = Path(folder) / "precision.json"
    key = _machine_key(requested)
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    chosen = known.get(key) if isinstance(known, dict) else None
    if chosen in ("fp32", "bf16"):
        if chosen == "bf16":
            model[0].auto_model.to(torch.bfloat16)
        return chosen
    chosen = _set_precision(model, requested, min_cosine)
    if chosen in ("fp32", "bf16"):
        try:
            tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**(known if isinstance(known, dict) else {}), key: chosen}), encoding="utf-8")
            os.replace(tmp, record)
        except OSError as exc:  # a read-only cache: decide again next time
            log.debug("cannot record the precision decision in %s: %s", record, exc)
    return chosen


def _set_precision(model, requested: str, min_cosine: float) -> str:
    """Put the transformer into ``requested`` precision ("auto" picks bf16 when it is at least
    1.3x faster than fp32 on this CPU) and check it against fp32 on a probe; fall back to
    fp32 when it disagrees (cosine < ``min_cosine``), except for an explicit request."""
    import torch

    if requested == "fp32":
        return "fp32"
    transformer = model[0].auto_model
    explicit = requested != "auto"
    if not explicit:
        speedup = _bf16_speedup()
        if speedup < 1.3:
            log.info("bfloat16 is not faster here (%.2fx); embedding in float32", speedup)
            return "fp32"
        requested = "bf16"
    reference = _probe(model)
    original_encoder = transformer.encoder

    def back_to_fp32() -> str:
        transformer.encoder = original_encoder
        transformer.to(torch.float32)
        return "fp32"

    try:
        if requested == "bf16":
            transformer.to(torch.bfloat16)
        else:  # int8: dynamic quantization; the FFN output layers (most sensitive) stay fp32
            import copy
            import warnings

            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            spec = {
                name: per_channel_dynamic_qconfig
                for name, module in original_encoder.named_modules()
                if isinstance(module, torch.nn.Linear)
                and not re.fullmatch(r"layer\.\d+\.output\.dense", name)
            }
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                transformer.encoder = quantize_dynamic(
                    copy.deepcopy(original_encoder), spec, dtype=torch.qint8
                )
        cosine = float(np.min(np.sum(reference * _probe(model), axis=1)))
    except Exception as exc:  # noqa: BLE001 - kernels missing on this platform: stay in fp32
        log.warning("%s embedding does not run here (%s); using float32", requested, exc)
        return back_to_fp32()
    if cosine < min_cosine:
        if explicit:
            log.warning(
                "%s embeddings agree with float32 only at cosine %.4f (asked for explicitly)",
                requested,
                cosine,
            )
            return requested
        log.info("%s disagrees with float32 (cosine %.4f); using float32", requested, cosine)
        return back_to_fp32()
    return requested
