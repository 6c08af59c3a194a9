"""The look: Gradio's default theme with system fonts, light and dark, and the app's own CSS.

The stock theme loads Google Fonts; this one names fonts installed on the machine, so the
page fetches nothing from outside. The app's colours live in ``static/app.css`` as CSS
variables with a light set and a dark set that follows Gradio's ``.dark`` class.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import gradio as gr

STATIC = Path(__file__).with_name("static")
FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC",
         "Microsoft YaHei", "Hiragino Sans GB", "Helvetica Neue", "Arial", "sans-serif")
MONO_FONTS = ("Noto Sans Mono CJK SC", "WenQuanYi Micro Hei Mono", "DejaVu Sans Mono", "Menlo", "Consolas",
              "monospace")


def theme() -> gr.themes.Base:
    return gr.themes.Default(
        primary_hue=gr.themes.colors.blue,
        secondary_hue=gr.themes.colors.sky,
        neutral_hue=gr.themes.colors.slate,
        font=list(FONTS),
        font_mono=list(MONO_FONTS),
        radius_size=gr.themes.sizes.radius_md,
    ).set(
        body_background_fill="#f5f7fb",
        body_background_fill_dark="#0b1220",
        block_shadow="0 1px 2px rgba(15, 23, 42, 0.06)",
        button_primary_background_fill="#1d4ed8",
        button_primary_background_fill_hover="#1e40af",
        button_primary_text_color="#ffffff",
        button_primary_background_fill_dark="#93c5fd",
        button_primary_background_fill_hover_dark="#bfdbfe",
        button_primary_text_color_dark="#0b1220",
        # the stop button (取消上传): white on Gradio's red-500 is 3.8:1; red-700 is 6.5:1
        button_cancel_background_fill="#b91c1c",
        button_cancel_background_fill_hover="#991b1b",
        button_cancel_background_fill_dark="#b91c1c",
        button_cancel_background_fill_hover_dark="#991b1b",
    )


@cache
def static_text(name: str) -> str:
    """A file of ``static/`` (CSS, or the JavaScript of a widget)."""
    return (STATIC / name).read_text(encoding="utf-8")


def css() -> str:
    return static_text("app.css")
