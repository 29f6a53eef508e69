"""The console's rejections page: the refused deliveries, newest first, so an operator connecting a
provider sees at once why its deliveries fail (GET /rejections is the same list as JSON)."""

from flask import render_template, request, url_for

from lyftr import store
from lyftr.console.blueprint import bp

PAGE_SIZE = 50
PROVIDERS = ("webhook", "whatsapp", "twilio")


@bp.get("/rejections")
def rejections():
    provider = request.args.get("provider") or None
    before = request.args.get("before", "")
    error = None
    if provider is not None and provider not in PROVIDERS:
        error, provider = f"Unknown provider: choose one of {', '.join(PROVIDERS)}.", None
    if before and not (before.isascii() and before.isdigit() and len(before) <= 18):
        error, before = "This page link is not valid any more.", ""
    rows, more = store.list_rejections(
        limit=PAGE_SIZE, before=int(before) if before else None, provider=provider
    )
    older = None
    if more and rows:
        older = url_for("console.rejections", provider=provider, before=rows[-1].id)
    page = render_template(
        "console/rejections.html",
        rows=rows,
        provider=provider,
        providers=PROVIDERS,
        older=older,
        error=error,
    )
    return page, 400 if error else 200
