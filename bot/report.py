"""`kap12 report`: feedback per document and the share of questions the sources could not answer.

Content owners read this to see where the knowledge base has gaps. Input is `SqliteStore.report()`:
{"documents": [{"document", "up", "down"}, ...], "questions": {"answered", "refused", "refused_share"},
"urgent_replies": int}.
"""

from __future__ import annotations

from bot.i18n import Catalog


def _percent(share: float, lang: str) -> str:
    """0.125 → "12,5" in Norwegian, "12.5" in English."""
    text = f"{share * 100:.1f}".removesuffix(".0")
    return text if lang == "en" else text.replace(".", ",")


def format_report(store_report: dict, lang: str, catalog: Catalog) -> str:
    """Plain-text report for the terminal.

    Args:
        store_report: what the store's `report()` returns.
        lang: nb, nn or en.
        catalog: the UI catalogue.
    """
    lines = [catalog.get("telegram.report.votes_title", lang)]
    documents = store_report.get("documents") or []
    if documents:
        header = catalog.get("telegram.report.document", lang)
        width = max(len(header), *(len(str(d["document"])) for d in documents))
        lines.append(f"  {header:<{width}}  {'👍':>3}  {'👎':>3}")
        for row in documents:
            lines.append(f"  {str(row['document']):<{width}}  {int(row['up']):>4}  {int(row['down']):>4}")
    else:
        lines.append("  " + catalog.get("telegram.report.no_votes", lang))
    lines.append("")
    questions = store_report.get("questions") or {}
    answered, refused = int(questions.get("answered", 0)), int(questions.get("refused", 0))
    if answered + refused:
        share = float(questions.get("refused_share", refused / (answered + refused)))
        lines.append(
            catalog.get("telegram.report.questions", lang, answered=answered, refused=refused,
                        share=_percent(share, lang))
        )
    else:
        lines.append(catalog.get("telegram.report.no_questions", lang))
    lines.append(catalog.get("telegram.report.urgent", lang, count=int(store_report.get("urgent_replies", 0))))
    lines.append(catalog.get("telegram.report.hint", lang))
    return "\n".join(lines)
