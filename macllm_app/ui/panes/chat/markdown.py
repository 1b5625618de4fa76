"""Markdown to Qt rich text: markdown-it-py for structure, Pygments for code.

Qt's rich text engine understands a subset of HTML 4 and CSS, so code blocks
are tables with inline colours. Each code block gets a `copy:N` link; the
caller looks the code up in `Rendered.code_blocks[N]`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

CODE_BACKGROUND = "#f4f5f7"
CODE_HEADER = "#e9ebef"
LINK_COLOR = "#0a63d1"
MONO = "Menlo, 'SF Mono', 'DejaVu Sans Mono', monospace"

_formatter = HtmlFormatter(noclasses=True, nowrap=True, style="friendly")


@dataclass
class Rendered:
    html: str
    code_blocks: list[str] = field(default_factory=list)


def _highlight(code: str, language: str) -> str:
    try:
        lexer = get_lexer_by_name(language) if language else TextLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return str(highlight(code, lexer, _formatter)).rstrip("\n")


class _Renderer:
    def __init__(self) -> None:
        self.md = MarkdownIt("commonmark", {"html": False, "linkify": False})
        self.md.enable(["table", "strikethrough"])
        # markdown-it binds rules as renderer methods; state travels in `env`.
        self.md.add_render_rule("fence", _fence)
        self.md.add_render_rule("code_block", _fence)
        self.md.add_render_rule("code_inline", _code_inline)
        self.md.add_render_rule("image", _image)

    def render(self, text: str) -> Rendered:
        blocks: list[str] = []
        body = self.md.render(text, {"code_blocks": blocks})
        return Rendered(body, blocks)


def _fence(_renderer: Any, tokens: list[Token], idx: int, _options: Any, env: Any) -> str:
    token = tokens[idx]
    language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    code = token.content
    blocks: list[str] = env["code_blocks"]
    index = len(blocks)
    blocks.append(code.rstrip("\n"))
    label = html.escape(language) if language else "code"
    head = f"background-color:{CODE_HEADER}; padding: 5px 10px; font-size: small;"
    return (
        f'<table width="100%" cellspacing="0" cellpadding="0" border="0" '
        f'style="background-color:{CODE_BACKGROUND}; margin-top: 6px; margin-bottom: 10px;">'
        f'<tr><td style="{head} color:#6b7280;">{label}</td>'
        f'<td align="right" style="{head}">'
        f'<a href="copy:{index}" style="color:{LINK_COLOR}; text-decoration:none;">'
        f"Copy</a></td></tr>"
        f'<tr><td colspan="2" style="padding: 8px 10px;"><pre style="font-family:{MONO};'
        f' white-space: pre-wrap; margin: 0;">{_highlight(code, language)}</pre></td></tr>'
        f"</table>\n"
    )


def _code_inline(_renderer: Any, tokens: list[Token], idx: int, _options: Any, _env: Any) -> str:
    code = html.escape(tokens[idx].content)
    return f'<code style="font-family:{MONO}; background-color:{CODE_BACKGROUND};">{code}</code>'


def _image(_renderer: Any, tokens: list[Token], idx: int, _options: Any, _env: Any) -> str:
    """Images become links: model output never makes the app load files or URLs."""
    token = tokens[idx]
    src = html.escape(str(token.attrGet("src") or ""), quote=True)
    alt = html.escape(token.content or "image")
    return f'<a href="{src}" style="color:{LINK_COLOR};">[{alt}]</a>'


_renderer: _Renderer | None = None


def render_markdown(text: str) -> Rendered:
    """Rich text for `text`; safe for model output (raw HTML is escaped)."""
    global _renderer  # noqa: PLW0603 - one parser, built on first use
    if _renderer is None:
        _renderer = _Renderer()
    return _renderer.render(text)


def plain_html(text: str) -> str:
    """Text shown as typed (user messages): escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")
