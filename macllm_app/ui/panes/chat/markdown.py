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
CODE_BORDER = "#e1e3e8"
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
    return (
        f'<table width="100%" cellspacing="0" cellpadding="8" '
        f'style="background-color:{CODE_BACKGROUND}; border: 1px solid {CODE_BORDER};'
        f' margin-top: 4px; margin-bottom: 8px;">'
        f'<tr><td style="color:#6b7280; font-size: small;">{label}</td>'
        f'<td align="right" style="font-size: small;">'
        f'<a href="copy:{index}" style="color:{LINK_COLOR}; text-decoration:none;">'
        f"Copy</a></td></tr>"
        f'<tr><td colspan="2"><pre style="font-family:{MONO}; white-space: pre-wrap;'
        f' margin: 0;">{_highlight(code, language)}</pre></td></tr></table>\n'
    )


def _code_inline(_renderer: Any, tokens: list[Token], idx: int, _options: Any, _env: Any) -> str:
    code = html.escape(tokens[idx].content)
    return f'<code style="font-family:{MONO}; background-color:{CODE_BACKGROUND};">{code}</code>'


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
