"""Response headers that tell browsers what our pages may do.

Every response: ``X-Content-Type-Options: nosniff`` (a JSON answer or an upload is never
guessed into HTML or script), ``Referrer-Policy: no-referrer`` (page and link addresses
carry conversation ids and signed-link signatures), and, when the public URL is https,
``Strict-Transport-Security``. A response that sets its own header (an attachment's
sandboxing CSP, the invoice page's) keeps it.

The console and admin pages get a Content-Security-Policy with no inline script at all
(``script-src 'self'``: a script that found its way into the page as text cannot run), no
framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``: no clickjacking), and
connections only to this gateway. Styles: the console takes its stylesheet only; the
admin page also allows inline styles, because the invoice it opens as a blob document
inherits its policy (Chromium does, as the CSP spec says) and carries its own ``<style>``
— styles cannot run script. The widget demo imitates a customer's page (inline styles,
the widget's own styles) and gets the same script and framing rules.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relaydesk.settings import Settings

HSTS_MAX_AGE_S = 365 * 24 * 3600

_COMMON = (
    "default-src 'none'",
    "script-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
)
PAGE_STYLES = {
    "/console": "style-src 'self'",
    "/admin": "style-src 'self' 'unsafe-inline'",
    "/demo": "style-src 'self' 'unsafe-inline'",
}


def page_policy(path: str, host: str) -> str | None:
    """The CSP of the HTML page at ``path`` (None for anything else)."""
    style = PAGE_STYLES.get(path.rstrip("/") or "/")
    if style is None:
        return None
    # 'self' covers ws:/wss: in current browsers; named as well for older ones.
    connect = f"connect-src 'self' ws://{host} wss://{host}" if host else "connect-src 'self'"
    return "; ".join((*_COMMON, style, connect))


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._hsts = settings.gateway_url().lower().startswith("https://")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        # A Host header cannot widen what the page may reach: only this same host is named.
        policy = page_policy(scope["path"], host if _plain_host(host) else "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if self._hsts:
                    added.append((b"strict-transport-security", b"max-age=%d" % HSTS_MAX_AGE_S))
                if policy is not None:
                    added += [
                        (b"content-security-policy", policy.encode()),
                        (b"x-frame-options", b"DENY"),
                    ]
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        *((name, value) for name, value in added if name not in present),
                    ],
                }
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _plain_host(host: str) -> bool:
    """A host[:port] without anything that could end the directive or add a source."""
    return bool(host) and all(ch.isalnum() or ch in ".-:[]" for ch in host)
