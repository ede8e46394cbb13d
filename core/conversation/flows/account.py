"""Balance, invoices (with the PDF) and pay options."""

from __future__ import annotations

from collections import defaultdict

from core.conversation import repository as repo
from core.conversation.context import Ctx
from core.conversation.documents import invoice_pdf
from core.conversation.payopts import PayOptions, fallback
from core.conversation.schemas import Attachment, Option, Reply
from core.ledger import service as ledger
from core.money import Money

MAX_LISTED = 10


async def balance(ctx: Ctx) -> list[Reply]:
    debtor = ctx.linked
    bal = await ledger.debtor_balance(ctx.session, debtor.id, ctx.today)
    currencies = [
        {
            "open": Money(c.open, c.currency),
            "overdue": Money(c.overdue, c.currency),
            "promised": Money(c.promised, c.currency),
            "credit": Money(c.credit, c.currency),
        }
        for c in bal.currencies.values()
        if c.open or c.credit
    ]
    invoices = await repo.open_invoices(ctx.session, debtor.id, ctx.today, balance=bal)
    if not invoices:
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=currencies)]
    options = [ctx.option("menu:pay", "pay"), ctx.option("menu:invoices", "invoices")]
    options += [ctx.option("menu:promise", "promise"), ctx.option("menu:plan", "plan")]
    return [
        ctx.reply(
            "account.balance",
            options=options,
            currencies=currencies,
            invoices=[i.balance for i in invoices[:MAX_LISTED]],
            more=max(0, len(invoices) - MAX_LISTED),
        )
    ]


async def invoices(ctx: Ctx) -> list[Reply]:
    debtor = ctx.linked
    found = await repo.open_invoices(ctx.session, debtor.id, ctx.today)
    if not found:
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    if len(found) == 1:
        return await document(ctx, found[0].number)
    options = [ctx.option(f"inv:pdf:{i.number}", "invoice_pdf", number=i.number) for i in found[:MAX_LISTED]]
    return [
        ctx.reply(
            "account.invoices",
            options=options,
            invoices=[i.balance for i in found[:MAX_LISTED]],
            more=max(0, len(found) - MAX_LISTED),
        )
    ]


async def document(ctx: Ctx, number: str) -> list[Reply]:
    """The PDF of one of this debtor's invoices; anything else is "not found"."""
    debtor = ctx.linked
    invoice = await repo.invoice_of_debtor(ctx.session, debtor.id, number[:64])
    if invoice is None:
        return [ctx.reply("account.invoice_not_found", options=ctx.menu())]
    pdf = await invoice_pdf(
        ctx.session, invoice, debtor_name=debtor.name, settings=ctx.deps.settings, locale=ctx.locale
    )
    options = [ctx.option(f"pay:inv:{invoice.number}", "pay"), ctx.option("menu:dispute", "dispute")]
    return [ctx.reply("account.invoice_pdf", options=options, attachments=[pdf], number=invoice.number)]


async def pay(ctx: Ctx, number: str | None = None) -> list[Reply]:
    """Pay options per currency for all open invoices, or for one invoice by number."""
    debtor = ctx.linked
    found = await repo.open_invoices(ctx.session, debtor.id, ctx.today)
    if number is not None:
        found = [i for i in found if i.number == number]
    if not found:
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    by_currency: dict[str, list[repo.OpenInvoice]] = defaultdict(list)
    for inv in found:
        by_currency[inv.open.currency].append(inv)
    replies: list[Reply] = []
    for currency, group in by_currency.items():
        ids = [i.id for i in group]
        amount = Money(sum(i.open.minor for i in group), currency)
        numbers = [i.number for i in group]
        opts: PayOptions | None = None
        if ctx.deps.pay_options is not None:
            opts = await ctx.deps.pay_options(ctx.session, debtor.id, ids)
        if opts is None:
            opts = await fallback(
                ctx.session, ctx.deps.settings, debtor_id=debtor.id, invoice_ids=ids, now=ctx.now
            )
        replies.append(_pay_reply(ctx, opts, amount, numbers))
    return replies


def _pay_reply(ctx: Ctx, opts: PayOptions | None, amount: Money, numbers: list[str]) -> Reply:
    settings = ctx.deps.settings
    if opts is None:  # nothing open any more (paid meanwhile): the amount shown, no reference
        opts = PayOptions(amount=amount, reference="", invoices=[])
    attachments: list[Attachment] = []
    if opts.checkout_qr_png:
        caption = ctx.text("account.qr_link_caption")
        attachments.append(Attachment("image", "pay-link-qr.png", opts.checkout_qr_png, "image/png", caption))
    if opts.epc_qr_png:
        caption = ctx.text("account.qr_epc_caption")
        attachments.append(Attachment("image", "sepa-qr.png", opts.epc_qr_png, "image/png", caption))
    url = opts.checkout_url
    links = [(ctx.text("account.pay_link_label"), url)] if url else []
    options: list[Option] = [ctx.option("menu:promise", "promise"), ctx.option("menu:paid", "paid")]
    return ctx.reply(
        "account.pay",
        options=options,
        attachments=attachments,
        links=links,
        amount=opts.amount,
        url=url,
        reference=opts.reference_printable if opts.reference else None,
        iban=settings.creditor_iban,
        creditor_name=settings.creditor_name,
        numbers=numbers,
        epc=bool(opts.epc_qr_png),
    )
