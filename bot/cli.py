"""The `kap12` command line (also `python -m bot`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from bot.config import Settings, load_settings
from bot.errors import IndexMissingError, Kap12Error
from bot.roles import ROLES

log = logging.getLogger("kap12")


def _index(settings: Settings, args) -> int:
    from tqdm import tqdm

    from bot.embed import make_embedder
    from bot.index import build_index

    embedder = make_embedder(settings)
    summary = build_index(
        settings.knowledge_dir,
        settings.index_dir,
        embedder,
        settings.embed_batch_size,
        progress=lambda total: tqdm(
            total=total, desc="Embedding", unit="text", file=sys.stderr, disable=args.quiet
        ),
        municipality=settings.municipality,
    )
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:  # embed and cache the safety exemplars now, so the first message after a build does not wait for it
        from bot.answer import load_safety

        load_safety(settings, embedder)
    except Kap12Error as exc:
        print(f"warning: {exc}", file=sys.stderr)
    print(
        f"Index built in {summary.path}: {summary.documents} documents, {summary.passages} passages, "
        f"{summary.embedded} embedded, {summary.reused} reused, {summary.seconds:.1f} s"
    )
    if summary.gate:
        gate = summary.gate
        print(
            f"Scope gate: trained on {gate['train']} texts; threshold {gate['threshold']} chosen by cross-validation "
            f"on {gate['real_voice']} real-voice questions: false refusals {gate['cv_false_refusals']}, "
            f"off-topic refused {gate['cv_out_of_scope_refused']}"
        )
    return 0


def _sources(settings: Settings, args) -> int:
    from bot.chunk import chunk_document
    from bot.index import document_row
    from bot.ingest import load_documents

    rows = [
        document_row(doc, len(chunk_document(doc)), settings.knowledge_dir)
        for doc in load_documents(settings.knowledge_dir)
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['title']}\n  {r['kind']} · {r['audience']} · {r['language']} · updated {r['updated'] or '-'} · "
            f"{r['passages']} passages · {r['answered_sections']}/{r['sections']} sections with answers · "
            f"{r['file']}" + (f" · local: {r['municipality']}" if r["municipality"] else "")
        )
    return 0


def _answerer(settings: Settings, use_model: bool = True):
    from bot.answer import Answerer

    return Answerer.from_settings(settings, use_model=use_model)


def _print_answer(answer, as_json: bool, catalog, lang: str) -> None:
    from bot.console import format_citation

    if as_json:
        print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        return
    print(answer.answer)
    for c in answer.citations:
        print(f"\n{format_citation(c)}\n    {catalog.get('answer.updated', lang, date=c.updated or '–')}")
    if answer.suggested_flow:
        print("\n" + catalog.get("answer.suggested_flow", lang, flow=answer.suggested_flow))
    if answer.see_also:
        print()
    for other in answer.see_also:
        print(catalog.get("answer.see_also", lang, title=other.title))


def _ask(settings: Settings, args) -> int:
    answerer = _answerer(settings)
    if args.batch:
        # Bytes that are not UTF-8 become U+FFFD: one bad line never stops the batch.
        stream = sys.stdin if args.batch == "-" else open(args.batch, encoding="utf-8", errors="replace")
        with stream:
            for line in stream:
                if line.strip():
                    _print_answer(
                        answerer.ask(line.rstrip("\n"), args.role, args.lang), args.json, answerer.catalog, args.lang
                    )
        return 0
    if args.question is None:
        raise Kap12Error("Give a question, or --batch FILE (one question per line, '-' for stdin).")
    question = args.question.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # argv bytes
    _print_answer(answerer.ask(question, args.role, args.lang), args.json, answerer.catalog, args.lang)
    return 0


def _eval(settings: Settings, args) -> int:
    from bot.evaluate import evaluate, format_report, load_questions, near_duplicates, select

    answerer = _answerer(settings)
    reports = {}
    for file in args.files:
        items, variants = load_questions(Path(file))
        items = select(items, args.split)
        near = near_duplicates(answerer, items, args.unlike) if args.unlike else {}
        reports[file] = evaluate(answerer, [i for i in items if str(i.get("id")) not in near], variants, k=args.k)
        if args.unlike:
            reports[file]["left_out_near_duplicates"] = near
    if args.json:
        print(json.dumps(reports if len(reports) > 1 else reports[args.files[0]], ensure_ascii=False, indent=2))
        return 0
    for file, report in reports.items():
        if len(reports) > 1:
            print(f"== {file}" + (f" ({args.split})" if args.split else ""))
        print(format_report(report))
        if args.unlike:
            near = report["left_out_near_duplicates"]
            print(f"left out, nearly the same as a knowledge-base question (≥ {args.unlike}): "
                  f"{', '.join(near) or 'none'}")
    return 0


def _calibrate(settings: Settings, args) -> int:
    from bot.evaluate import calibration_examples, load_questions, select
    from bot.ranking import fit_model, ranking_path

    answerer = _answerer(settings, use_model=False)  # features come from fusion, not from an older model
    examples, sources = [], []
    for file in args.files:
        items, variants = load_questions(Path(file))
        examples += calibration_examples(answerer, select(items, args.split), variants)
        sources.append(f"{file} ({args.split})" if any("split" in item for item in items) else file)
    try:
        model = fit_model(examples, answerer.retriever.embedder.identity(), sources)
    except ValueError as exc:
        raise Kap12Error(str(exc)) from None
    out = Path(args.out) if args.out else ranking_path(settings.knowledge_dir)
    model.save(out)
    r = model.report
    print(f"Ranking fitted on {r['usable']} of {r['questions']} questions ({', '.join(sources)}) and saved to {out}.")
    print(f"Five-fold cross-validation: Hit@1 {r['cv_hit@1']}, Hit@3 {r['cv_hit@3']} "
          f"(rank fusion alone: Hit@1 {r['fusion_hit@1']}, Hit@3 {r['fusion_hit@3']}).")
    return 0


def _safety_eval(settings: Settings, args) -> int:
    from bot.answer import load_safety
    from bot.embed import make_embedder
    from bot.safety_eval import evaluate_safety, format_safety_report, load_safety_set

    check = load_safety(settings, make_embedder(settings))
    if check is None:
        raise Kap12Error(f"No safety data in {settings.knowledge_dir / 'safety'}.")
    report = evaluate_safety(check, load_safety_set(Path(args.file)))
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else format_safety_report(report))
    return 0


def _flows(settings: Settings, args) -> int:
    from bot.flows import check_flows, flow_to_mermaid, load_flows

    flows = load_flows(settings.knowledge_dir / "flows")
    if args.action == "check":
        answerer = _answerer(settings)
        problems = check_flows(flows, lambda key: bool(answerer.resolve_passage_key(key)))
        for problem in problems:
            print(problem)
        print(
            f"{len(flows)} flows, {sum(len(f.steps) for f in flows.values())} steps: "
            + ("OK" if not problems else f"{len(problems)} problems")
        )
        return 1 if problems else 0
    if args.mermaid:
        for flow in flows.values():
            if args.mermaid == "all" or args.mermaid == flow.id:
                print(flow_to_mermaid(flow, args.lang))
        return 0
    rows = [
        {"id": f.id, "roles": list(f.roles), "title": f.title.get(args.lang), "steps": len(f.steps)}
        for f in flows.values()
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for r in rows:
            print(f"{r['id']:<20} {','.join(r['roles']):<22} {r['steps']:>3} steps  {r['title']}")
    return 0


def refresh_index(settings: Settings) -> None:
    """Bring the index up to date with knowledge/ before serving (incremental: only changes are embedded).

    On a fresh clone this builds it. If the knowledge has an unreadable file, an existing index keeps
    serving and the problem is printed on one line; without any index the error stops start-up. (A broken
    content file, such as a flow or the catalogue, does not stop the build: it keeps its last good copy.)
    """
    from bot.embed import make_embedder
    from bot.index import build_index, load_index

    try:
        load_index(settings.index_dir)
        print("Updating the index from the knowledge folder …", file=sys.stderr)
    except IndexMissingError:
        print("Building the index (first start, about a minute) …", file=sys.stderr)
        build_index(settings.knowledge_dir, settings.index_dir, make_embedder(settings), settings.embed_batch_size,
                    progress=_progress_line, municipality=settings.municipality)
        return
    try:
        build_index(settings.knowledge_dir, settings.index_dir, make_embedder(settings), settings.embed_batch_size,
                    progress=_progress_line, municipality=settings.municipality)
    except Kap12Error as exc:  # one line, even for a YAML parser's message over several lines
        print(f"kap12: {_one_line(exc)} (the previous index keeps serving)", file=sys.stderr)
    except Exception as exc:  # e.g. a broken YAML file: never worth taking a working bot down for
        log.debug("index update failed", exc_info=True)
        print(f"kap12: updating the index failed ({exc.__class__.__name__}: {_one_line(exc)[:300]}). "
              "The previous index keeps serving.", file=sys.stderr)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _progress_line(total: int):
    """A progress bar on stderr while `kap12 run` embeds changed passages (a long build shows how long)."""
    from tqdm import tqdm

    return tqdm(total=total, desc="Embedding", unit="text", file=sys.stderr, mininterval=5)


def _chat(settings: Settings, args) -> int:
    from bot.console import run_chat
    from bot.dialog import build_dialog

    # build_dialog serves the last good copy of a broken content file (bot/content.py); what cannot start is
    # one line on stderr.
    return run_chat(settings, build_dialog(settings))


def _web(settings: Settings, args) -> int:
    if args.port is not None and not 1 <= args.port <= 65535:
        raise Kap12Error(f"--port {args.port}: use a port between 1 and 65535.")
    refresh_index(settings)
    from bot.web import run_web

    return run_web(settings, args.host or settings.web_host, args.port or settings.web_port or 8000,
                   trust_proxy=args.trust_proxy or None)


def _run(settings: Settings, args) -> int:
    refresh_index(settings)
    if settings.web_port is not None:  # KAP12_WEB_PORT: the web chat, beside Telegram when a token is set
        from bot.web import run_web

        return run_web(settings, with_telegram=settings.telegram_token is not None)
    if settings.telegram_token is None:
        print("No KAP12_TELEGRAM_TOKEN set: starting the terminal chat.", file=sys.stderr)
        return _chat(settings, args)
    from bot.telegram_bot import run_telegram

    run_telegram(settings)
    return 0


def _report(settings: Settings, args) -> int:
    from bot.content import Content, load_catalog
    from bot.dialog import STATE_FILE
    from bot.report import format_report
    from bot.store import SqliteStore

    report = SqliteStore(settings.data_dir / STATE_FILE).report()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_report(report, args.lang, Content.in_service(settings).load(load_catalog)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kap12", description="kap12-bot: opplæringslova kapittel 12 with sources.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (never message text)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="ingest knowledge/ and build the index")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_index)

    p = sub.add_parser("sources", help="list the knowledge documents")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_sources)

    p = sub.add_parser("ask", help="answer a question with citations")
    p.add_argument("question", nargs="?")
    p.add_argument("--role", choices=ROLES, default="parent")
    p.add_argument("--lang", choices=("nb", "nn", "en"), default="nb", help="language of fixed texts")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch", metavar="FILE", help="one question per line; '-' reads stdin")
    p.set_defaults(func=_ask)

    p = sub.add_parser("eval", help="measure retrieval and refusal on question sets")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--split", choices=("calibrate", "measure"), help="only the items of this split")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--unlike", type=float, metavar="COSINE",
                   help="leave out questions this similar (e.g. 0.95) to one of the knowledge base's own questions")
    p.set_defaults(func=_eval)

    p = sub.add_parser("calibrate", help="fit the ranking weights on the calibration split of question sets")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--split", choices=("calibrate", "measure"), default="calibrate",
                   help="the items to fit on (sets without splits are used whole)")
    p.add_argument("--out", metavar="PATH", help="where to save the model (default knowledge/retrieval/ranking.json)")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("safety-eval", help="measure the safety layer: crisis recall with a right number, false alarms")
    p.add_argument("file", nargs="?", default="eval/safety.yaml")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_safety_eval)

    p = sub.add_parser("flows", help="list, check or draw the walkthroughs")
    p.add_argument("action", nargs="?", choices=("list", "check"), default="list")
    p.add_argument("--json", action="store_true")
    p.add_argument("--mermaid", nargs="?", const="all", metavar="FLOW_ID", help="print Mermaid diagrams")
    p.add_argument("--lang", choices=("nb", "nn", "en"), default="nb")
    p.set_defaults(func=_flows)

    p = sub.add_parser("chat", help="chat in the terminal")
    p.set_defaults(func=_chat)

    p = sub.add_parser("run", help="Telegram with a token, else the terminal chat; builds the index if missing")
    p.set_defaults(func=_run)

    p = sub.add_parser("web", help="serve the web chat page and its JSON API (builds the index if missing)")
    p.add_argument("--host", help="address to listen on (default KAP12_WEB_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (default KAP12_WEB_PORT, else 8000)")
    p.add_argument("--trust-proxy", action="store_true",
                   help="take client address and scheme from X-Forwarded-For/-Proto (only behind a reverse proxy)")
    p.set_defaults(func=_web)

    p = sub.add_parser("report", help="feedback votes per document and the share of refused questions")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lang", choices=("nb", "nn", "en"), default="nb")
    p.set_defaults(func=_report)
    return parser


def _tolerant_streams() -> None:
    """Invalid UTF-8 on stdin becomes U+FFFD and unprintable output is replaced, whatever the locale."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):  # not a text stream (tests, pipes replaced by objects)
            pass


def _sigterm_interrupts() -> None:
    """SIGTERM stops like Ctrl-C, so a long index build saves its embedding cache before it ends."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (tests)
        pass


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    args = build_parser().parse_args(argv)
    if args.command == "index":
        _sigterm_interrupts()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # bm25s logs every index build at DEBUG and sets its logger to DEBUG when imported (after this line):
    # a filter holds whatever level it sets.
    logging.getLogger("bm25s").addFilter(lambda record: record.levelno >= logging.WARNING)
    try:
        return args.func(load_settings(), args)
    except Kap12Error as exc:
        print(f"kap12: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `kap12 ask --batch - | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
