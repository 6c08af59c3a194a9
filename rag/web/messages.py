"""Chinese for the web app: the package's English error messages, and Gradio's own strings.

The library, the CLI and the logs keep their English messages; the page shows Chinese. An
error this table does not know gets a general Chinese sentence for its kind, and its
English detail goes to the log, not to the page.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..errors import (
    DocumentError,
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    ModelError,
    QuestionError,
    RagError,
)

log = logging.getLogger(__name__)

SUPPORTED_LIST = "txt、md、html、htm、pdf、docx"

# (pattern of the English message, Chinese text; groups are filled in with \1 ...)
_DOCUMENT = [
    (r"empty file \(0 bytes\)", "文件是空的（0 字节）"),
    (r"unsupported file type '?([^';]*)'?", r"不支持的文件类型 \1；支持 " + SUPPORTED_LIST),
    (r"encrypted PDF", "PDF 已加密，需要密码；请先另存一份未加密的副本"),
    (r"corrupt or unreadable PDF", "PDF 已损坏或无法读取"),
    (r"scanned PDF", "扫描版 PDF 没有文字层，请先做文字识别（OCR）"),
    (r"old binary Word", "这是旧版 Word（.doc）文件，请在 Word 中另存为 .docx"),
    (r"corrupt or unreadable Word", "Word 文件已损坏或无法读取"),
    (r"binary file", "这是二进制文件，不是文本"),
    (r"unreadable encoding", "无法识别文件的文字编码（不是 UTF-8、GB18030 或 Big5）"),
    (r"invalid \S+ text after its byte-order mark", "文件开头标明了编码，但内容不符合该编码"),
    (r"no article text left", "去掉导航和版权等内容后没有剩下正文"),
    (r"needs the '([^']+)' package", r"读取这种文件需要安装 \1 软件包"),
    (r"does not exist", "文件不存在"),
    (r"not a regular file", "不是普通文件"),
    (r"cannot read file", "无法读取文件"),
]
_QUESTION = [
    (r"question is empty", "问题是空的。请输入一个问题，例如「晋中有几家省级博士创新站」"),
    (r"question is ([\d,]+) characters long; the limit is ([\d,]+)", r"问题有 \1 个字，超过了 \2 字的上限，请缩短后再问"),
    (r"question must be text", "问题必须是文字"),
    (r"top_k must be", "显示的段落数必须是 1 到 100 之间的整数"),
]
_GENERAL = {
    QuestionError: "这个问题无法处理，请换个问法",
    DocumentError: "无法读取这个文件",
    IndexCorruptError: "索引文件已损坏，请让管理员用 rag index 重建索引",
    IndexMismatchError: "索引与当前的嵌入模型不一致，请让管理员重建索引",
    IndexLockedError: "另一个程序正在写入知识库，请稍后再试",
    ModelError: "嵌入模型无法加载，请让管理员检查安装",
}


def _translate(message: str, table: list[tuple[str, str]]) -> str | None:
    for pattern, chinese in table:
        m = re.search(pattern, message)
        if m:
            return m.expand(chinese)
    return None


def error_text(exc: BaseException) -> str:
    """The Chinese message for an error raised by the package (or anything else)."""
    message = str(exc)
    table = _QUESTION if isinstance(exc, QuestionError) else _DOCUMENT if isinstance(exc, DocumentError) else []
    found = _translate(message, table)
    if found:
        return found
    log.warning("shown to the user as a general message: %s", message)
    for kind, chinese in _GENERAL.items():
        if isinstance(exc, kind):
            return chinese
    return "知识库出错了，请稍后再试" if isinstance(exc, RagError) else "出错了，请稍后再试；问题已记录在服务器日志中"


def file_reason(message: str, path: Path | None = None) -> str:
    """A reason from :attr:`AddReport.failed` (English, often starting with the path) in Chinese."""
    if path is not None:
        for prefix in (str(path.resolve()), str(path)):
            message = message.replace(f"{prefix}: ", "").replace(prefix, path.name)
    return _translate(message, _DOCUMENT) or error_text(DocumentError(message))


# Gradio's own interface strings, in Chinese for every browser language. Gradio picks its
# strings by the browser's language; a Chinese user on an English system would otherwise see
# "Drop File Here". Our keys are given for "en", the language Gradio falls back to.
GRADIO_STRINGS = {
    "upload_text.click_to_upload": "点击上传",
    "upload_text.drop_file": "将文件拖放到此处",
    "upload_text.paste_clipboard": "从剪贴板粘贴",
    "common.or": "或",
    "common.clear": "清除",
    "common.remove": "移除",
    "common.download": "下载",
    "common.error": "错误",
    "common.loading": "加载中",
    "common.undo": "撤销",
    "common.submit": "提交",
    "common.empty": "空",
    "common.settings": "设置",
    "common.built_with_gradio": "使用 Gradio 构建",
    "common.built_with": "构建于",
    "common.language": "语言",
    "common.display_theme": "显示主题",
    "file.uploading": "正在上传...",
    "errors.use_via_api": "通过 API 使用",
    "errors.use_via_api_or_mcp": "通过 API 或 MCP 使用",
    "blocks.lost_connection": "连接已断开，正在重新连接…",
    "blocks.waiting_for_inputs": "等待文件上传完成，请稍后重试。",
    "login.login": "登录",
    "login.username": "用户名",
    "login.password": "密码",
    "login.incorrect_credentials": "用户名或密码不正确",
}


def gradio_i18n():
    import gradio as gr

    return gr.I18n(en=dict(GRADIO_STRINGS))
