"""Read-only web pages: the repository list at `/` and one repository at `/{namespace}/{name}`
(file tree with sizes, rendered model card with its metadata as a table, history, open PRs).

Cards are untrusted: raw HTML in Markdown is escaped, not rendered, and the pages carry a
Content-Security-Policy that forbids scripts.
"""
from __future__ import annotations

import functools
import html
from urllib.parse import quote
import re
from pathlib import Path
from typing import Any

import markdown
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .api_repos import readme_meta
from .auth import HubContext
from .cards import CardError, split_card
from .errors import ApiError
from .responses import iso

MARKDOWN_LIMIT = 256 << 10
MAX_BRACKETS = 1000
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"
STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:.8em 2em}header a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:1100px;margin:1.5em auto;padding:0 1em}section{background:#fff;border:1px solid #d0d7de;
border-radius:6px;padding:1em 1.5em;margin-bottom:1.2em}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:0}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3em .6em;border-bottom:1px solid #eaeef2}
td.size{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.badge{font-size:.75em;
border:1px solid #8c959f;border-radius:1em;padding:0 .6em;margin-left:.5em;color:#57606a}code{font-size:.9em}
.muted{color:#57606a}table.metadata th{width:14em}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def human_size(n: int) -> str:
    """`1536` → `1.5 kB` (decimal units, like the Hub)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def render_markdown(text: str, files: str = "") -> str:
    """Markdown to HTML; relative links and images point into the repo's files (FILES), as on the Hub.

    >>> render_markdown("![plot](verification.png) [x](javascript:alert(1))", "/a/b/resolve/main")
    '<p><img alt="plot" src="/a/b/resolve/main/verification.png" /> <a href="#">x</a></p>'
    """
    md = markdown.Markdown(extensions=["tables", "fenced_code"])
    # Raw HTML in a card is shown as text: a card must not run scripts in the viewer's browser.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    out = md.convert(text)
    out = re.sub(r'(href|src)="\s*(javascript|vbscript|data):[^"]*"', r'\1="#"', out, flags=re.I)
    if files:  # a relative URL (no scheme, not absolute, not an anchor) names a file of the repo
        out = re.sub(r'(href|src)="(?![a-zA-Z][a-zA-Z0-9+.-]*:|/|#)(?:\./)?([^"]+)"', rf'\1="{files}/\2"', out)
    return out


def render_card(text: str, files: str = "") -> str:
    """The card body as HTML; too long or too bracket-heavy a card is shown as plain text, because
    python-markdown's link parsing is quadratic in the number of `[` (20k of them take minutes)."""
    if len(text) > MARKDOWN_LIMIT or text.count("[") > MAX_BRACKETS:
        return f"<pre class=card-text>{esc(text[:MARKDOWN_LIMIT])}</pre>"
    return render_markdown(text, files)


@functools.lru_cache(maxsize=64)
def _card_html(path: Path, files: str) -> str:
    # Keyed by the README's content-addressed path and the files' URL: rendered once per distinct card.
    text = path.read_text("utf-8", errors="replace")
    try:
        body = split_card(text)[1]
    except CardError:
        body = text
    return f"<div class=card-body>{render_card(body, files)}</div>"


def page(title: str, body: str, status: int = 200) -> Response:
    doc = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
           f"<style>{STYLE}</style></head><body><header><a href='/'>tensorferry local Hub</a></header>"
           f"<main>{body}</main></body></html>")
    return Response(doc.encode(), status_code=status, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})


def meta_table(meta: dict[str, Any]) -> str:
    if not meta:
        return ""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(', '.join(map(str, v)) if isinstance(v, list) else v)}</td></tr>"
                   for k, v in meta.items())
    return f"<table class=metadata><tbody>{rows}</tbody></table>"


async def index(ctx: HubContext, request: Request) -> Response:
    repos = ctx.store.list_repos("model", [])
    rows = []
    for r in repos:
        cid = ctx.store.ref(r, "refs/heads/main")
        commit = ctx.store.commit_row(cid) if cid else None
        rows.append(f"<tr><td><a href='/{esc(r.namespace)}/{esc(r.name)}'>{esc(r.repo_id)}</a></td>"
                    f"<td class=muted>{esc(iso(commit['created_at'])[:19].replace('T', ' ')) if commit else ''}</td></tr>")
    table = (f"<table id=repos><thead><tr><th>Model</th><th>Updated (UTC)</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>") if rows else "<p class=muted>No public repositories yet.</p>"
    return page("Local Hub", f"<h1>Models</h1><section>{table}</section>")


def file_rows(files: dict[str, list[Any]]) -> str:
    rows, seen = [], set()
    for path in sorted(files):
        parts = path.split("/")
        for depth in range(len(parts) - 1):  # a directory row before its first file
            d = "/".join(parts[:depth + 1])
            if d not in seen:
                seen.add(d)
                rows.append(f"<tr class=dir><td style='padding-left:{depth * 1.4 + .6}em'>{esc(parts[depth])}/</td>"
                            f"<td class=size></td></tr>")
        _, size, lfs = files[path]
        badge = "<span class=badge>LFS</span>" if lfs else ""
        rows.append(f"<tr class=file><td style='padding-left:{(len(parts) - 1) * 1.4 + .6}em'>"
                    f"{esc(parts[-1])}{badge}</td><td class=size>{human_size(size)}</td></tr>")
    return "".join(rows)


async def repo_page(ctx: HubContext, request: Request, ns: str, name: str) -> Response:
    try:
        repo, _ = ctx.repo(request, "model", ns, name)
        rev = request.query_params.get("rev", "main")
        cid = ctx.store.resolve(repo, rev)
    except ApiError as e:
        return page("Not found", f"<h1>Not found</h1><p>{esc(e.message)}</p>", status=404)
    files = ctx.store.tree_files(cid)
    meta = readme_meta(ctx, files)
    card = "<p class=muted>No model card.</p>"
    if (entry := files.get("README.md")) and not entry[2] and entry[1] <= 1 << 20:
        card = await run_in_threadpool(_card_html, ctx.store.blobs.regular_path(entry[0]),
                                       f"/{quote(repo.repo_id)}/resolve/{cid}")
    history = ctx.store.history(cid)[:30]
    commits = "".join(f"<tr><td><code>{esc(c['id'][:7])}</code></td><td>{esc(c['title'])}</td>"
                      f"<td>{esc(c['author'])}</td><td class=muted>{esc(iso(c['created_at'])[:19].replace('T', ' '))}</td></tr>"
                      for c in history)
    prs = [d for d in ctx.store.discussions(repo) if d["is_pr"] and d["status"] in ("open", "draft")]
    pr_html = ("<ul id=prs>" + "".join(f"<li>#{d['num']} {esc(d['title'])} <span class=muted>by {esc(d['author'])}</span></li>"
                                       for d in prs) + "</ul>") if prs else "<p class=muted>No open pull requests.</p>"
    total = sum(v[1] for v in files.values())
    badge = "<span class=badge>private</span>" if repo.private else ""
    body = (f"<h1>{esc(repo.repo_id)}{badge}</h1><p class=muted>Revision <code>{esc(rev)}</code> at "
            f"<code>{esc(cid[:12])}</code> · {len(files)} files · {human_size(total)}</p>"
            f"<section id=card><h2>Model card</h2>{meta_table(meta)}{card}</section>"
            f"<section id=files><h2>Files</h2><table><thead><tr><th>Name</th><th class=size>Size</th></tr></thead>"
            f"<tbody>{file_rows(files)}</tbody></table></section>"
            f"<section id=history><h2>Commit history</h2><table><tbody>{commits}</tbody></table></section>"
            f"<section id=pulls><h2>Open pull requests</h2>{pr_html}</section>")
    return page(repo.repo_id, body)
