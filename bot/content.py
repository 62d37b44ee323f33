"""The content files the bot reads at start-up, and their last good copy.

Besides the documents (whose last good state is the index in service), the bot reads small content files
from knowledge/ when a channel starts: the UI catalogue, flows, routing, scope, glossary, explanations, safety
data and help lines, drafts and contacts. A typo in one of them must not take the bot down, so:

- every index build keeps a copy of these files in `<build>/content/` (`snapshot`), but only files that load
  cleanly; a broken file keeps the copy the build in service had, its last good copy;
- at start-up every loader runs through `Content.load`: when a file fails to load, the operator gets one
  warning line naming the file and the problem, the file's last good copy takes its place, and the loader
  runs again. Only a broken file without a good copy stops start-up, with one line naming it.

A broken file in knowledge/ is never overwritten: the replacement lives in a private folder that holds a copy
of knowledge/'s content files (`Content.root`), used only when something had to be replaced.
"""

from __future__ import annotations

import atexit
import copy
import filecmp
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bot.errors import DocumentError, FlowError, Kap12Error

log = logging.getLogger(__name__)

CONTENT_DIR = "content"  # in a build folder: the last good copy of the content files

T = TypeVar("T")


# -------------------------------------------------------------------------------------------- the parts


def load_catalog(root: Path):
    """The UI catalogue under `root/ui`; a key the code reads by name that no language defines is an error
    naming the file that should hold it (so a catalogue missing one falls back like a broken one)."""
    from bot.i18n import Catalog

    catalog = Catalog.load(root / "ui")
    catalog.require(required_ui_keys(), root / "ui")
    return catalog


# Keys the answerer reads by name; unlike the core and the tools it declares no KEYS list of its own.
ANSWER_KEYS = (
    "answer.not_found", "answer.contact.parent", "answer.contact.staff", "answer.empty", "answer.decline",
    "answer.where.other", "answer.general_rules", "answer.truncated", "chat.greeting",
)


@functools.cache
def required_ui_keys() -> frozenset[str]:
    """Every catalogue key without which a channel refuses to start, or a question or a crisis gets no reply."""
    from bot import contacts, dialog, drafts, safety, web

    keys = {f"dialog.{key}" for key in dialog.KEYS} | set(contacts.KEYS) | set(drafts.KEYS) | set(ANSWER_KEYS)
    keys |= {f"web.{key}" for key in (*web.PAGE_KEYS, *web.API_KEYS)}
    writers = safety.WRITERS
    keys |= {f"safety.lead.{category}.{writer}" for category in safety.CATEGORIES for writer in writers}
    keys |= {f"safety.support.{writer}.{group}" for writer in writers for group in safety.REPLY_GROUPS}
    keys |= {f"safety.{kind}.{writer}" for kind in ("after", "general") for writer in writers}
    keys |= {"safety.general.tell_more", "safety.numbers_intro", "safety.number_line", "safety.note.open_until",
             "safety.note.free_always", "safety.note.always_paid"}
    return frozenset(keys)


def _check_flows(root: Path) -> None:
    from bot.flows import load_flows

    load_flows(root / "flows")


def _check_glossary(root: Path) -> None:
    from bot.lexical import Glossary

    Glossary.load(root / "glossary.yaml")


def _check_explain(root: Path) -> None:
    from bot.explain import Terms

    Terms.load(root / "explain.yaml")


def _check_routing(root: Path) -> None:
    from bot.answer import Router

    Router.load(root)


def _check_scope(root: Path) -> None:
    from bot.answer import Scope

    Scope.read_phrases(root / "scope.yaml")


def _check_scope_data(root: Path) -> None:
    from bot.gate import ScopeData
    from bot.questions import Distress

    ScopeData.load(root)
    Distress.load(root)


def _check_safety(root: Path) -> None:
    from bot.safety import read_data

    if (root / "safety").is_dir():  # optional, as in bot.answer.load_safety (a bare test knowledge base)
        read_data(root)


def _check_drafts(root: Path) -> None:
    from bot.drafts import Drafts, NoteTemplate

    Drafts.load(root)
    NoteTemplate.load(root)


def _check_contacts(root: Path) -> None:
    from bot.contacts import Contacts

    Contacts.load(root)


@dataclass(frozen=True)
class Part:
    """Content files that load together, and how to load them without the embedder (to check them)."""

    files: tuple[str, ...]  # glob patterns relative to knowledge/
    check: Callable[[Path], object]  # raises DocumentError or FlowError naming the file that fails
    keep: tuple[str, ...] = ()  # paths that never silently disappear: a missing one is served from its good copy

    def paths(self, root: Path | None) -> list[str]:
        """This part's files under `root`, as sorted relative paths."""
        if root is None or not root.is_dir():
            return []
        found = {path.relative_to(root).as_posix() for pattern in self.files for path in root.glob(pattern)
                 if path.is_file()}
        return sorted(found)


# Help numbers must never vanish: a deleted safety folder or help-line file is served from its good copy.
SAFETY_FILES = ("safety", "help/helplines.yaml")
PARTS = (
    Part(("ui/*.yaml",), load_catalog),
    Part(("flows/*.yaml",), _check_flows),
    Part(("glossary.yaml",), _check_glossary),
    Part(("explain.yaml",), _check_explain),
    Part(("routing.yaml",), _check_routing),
    Part(("scope.yaml",), _check_scope),
    Part(("scope/*.yaml",), _check_scope_data),
    Part(("safety/*.yaml", "help/helplines.yaml"), _check_safety, keep=SAFETY_FILES),
    Part(("drafts/*.yaml",), _check_drafts),
    Part(("help/contacts.yaml",), _check_contacts),
)


# ------------------------------------------------------------------------------------------ the content


def good_copy(index_dir: Path) -> Path | None:
    """The content copy kept with the index in service; None without an index or with one built before copies
    were kept."""
    folder = Path(index_dir) / "current" / CONTENT_DIR
    try:
        # The build folder itself, so a build swapped in meanwhile does not change the folder under us.
        return folder.resolve(strict=True) if folder.is_dir() else None
    except OSError:
        return None


class Content:
    """Where start-up reads the content files: knowledge/ itself until a file fails to load; from then on a
    private copy of knowledge/'s content files in which each failed file is replaced by its last good copy.

    Build it with `Content.in_service(settings)` and load everything through `load`, so a replacement made for
    one loader is seen by the next.
    """

    def __init__(self, knowledge_dir: Path, good_dir: Path | None, *, announce: bool = True):
        """
        Args:
            good_dir: the last good copy of the content files (`good_copy(index_dir)`), or None.
            announce: log a warning for each file replaced (start-up); off while a build takes its copy.
        """
        self.knowledge_dir = Path(knowledge_dir)
        self.good_dir = good_dir
        self.root = self.knowledge_dir  # where loaders read
        self.replaced: dict[str, str] = {}  # relative path → "<file in knowledge/>: <its problem>"
        self._announce = announce
        self._private: Path | None = None

    @classmethod
    def in_service(cls, settings) -> Content:
        return cls(settings.knowledge_dir, good_copy(settings.index_dir))

    def load(self, loader: Callable[[Path], T], *, keep: Iterable[str] = ()) -> T:
        """`loader(root)`; when it fails on a file that has a good copy, use that copy and run it again.

        Args:
            keep: paths (relative to knowledge/) that are served from their good copy when they are missing.

        Raises:
            DocumentError, FlowError: a file failed and has no good copy; one line naming the file in knowledge/.
        """
        for rel in keep:
            if not (self.root / rel).exists() and self._has_good_copy(rel):
                self._use_good_copy(rel, f"{self.knowledge_dir / rel}: is missing")
        while True:
            try:
                return loader(self.root)
            except (DocumentError, FlowError) as exc:
                rel = self._relative(exc.path)
                named = self._named(exc, rel)
                if rel in self.replaced:  # its good copy fails too (e.g. the code now checks more)
                    raise Kap12Error(f"{self.replaced[rel]}; its last good copy does not load either") from None
                if rel is None or not self._has_good_copy(rel):
                    raise named from None
                self._use_good_copy(rel, str(named))

    def settings_for(self, settings):
        """`settings` with knowledge_dir pointing at the content in service (for code that reads it itself)."""
        if self.root == Path(settings.knowledge_dir):
            return settings
        if hasattr(settings, "model_copy"):  # pydantic settings
            return settings.model_copy(update={"knowledge_dir": self.root})
        clone = copy.copy(settings)
        clone.knowledge_dir = self.root
        return clone

    def close(self) -> None:
        """Remove the private copy (only when nothing loaded from it is still to be read)."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

    # -- helpers

    def _has_good_copy(self, rel: str) -> bool:
        return self.good_dir is not None and (self.good_dir / rel).exists()

    def _relative(self, path) -> str | None:
        """`path` relative to the root loaders read (None outside it, or the root itself)."""
        try:
            rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(self.root))
        except ValueError:
            return None
        return rel.as_posix() if rel.parts else None

    def _named(self, exc: DocumentError | FlowError, rel: str | None) -> DocumentError | FlowError:
        """The same error on one line, naming the file in knowledge/ (not in the private copy)."""
        where = self.knowledge_dir / rel if rel else exc.path
        problem = " ".join(str(exc.problem).split())
        if isinstance(exc, FlowError):
            return FlowError(where, exc.step, problem)
        return DocumentError(where, problem)

    def _use_good_copy(self, rel: str, problem: str) -> None:
        """Serve the good copy of `rel` (a file or folder) from the private copy; `problem` is the warning."""
        private = self._private_copy()
        target, source = private / rel, self.good_dir / rel
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                shutil.copyfile(source, target)
        except OSError as exc:  # e.g. the build holding the copy was replaced meanwhile
            raise Kap12Error(f"{problem}; its last good copy cannot be read ({exc.strerror or exc})") from None
        self.replaced[rel] = problem
        if self._announce:
            log.warning("%s – serving its last good copy from the index", problem)

    def _private_copy(self) -> Path:
        if self._private is None:
            private = Path(tempfile.mkdtemp(prefix="kap12-content-"))
            atexit.register(shutil.rmtree, private, True)
            for part in PARTS:
                for rel in part.paths(self.knowledge_dir):
                    (private / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(self.knowledge_dir / rel, private / rel)
            self._private = self.root = private
        return self._private


# -------------------------------------------------------------------------------------- the build's copy


def snapshot(knowledge_dir: Path, index_dir: Path, target: Path) -> list[str]:
    """Copy the content files that load cleanly into `target` (a new build's folder).

    A file that fails keeps the good copy the build in service has; a part that cannot be loaded at all keeps
    all its good copies. Never raises for content problems: returns one line per problem (build warnings).
    """
    content = Content(knowledge_dir, good_copy(index_dir), announce=False)
    unresolved: list[str] = []
    target.mkdir(parents=True, exist_ok=True)
    try:
        for part in PARTS:
            files, kept = part.paths(content.root), part.paths(content.good_dir)
            if not files and not (part.keep and kept):
                continue  # a part nobody uses here (or removed on purpose): nothing to keep
            if files == kept and all(filecmp.cmp(content.root / rel, content.good_dir / rel, shallow=False)
                                     for rel in files):
                source = content.root  # unchanged since it last loaded cleanly
            else:
                try:
                    content.load(part.check, keep=part.keep)
                    source, files = content.root, part.paths(content.root)
                except Exception as exc:  # a loader's bug on odd input must not fail the build either
                    problem = str(exc) if isinstance(exc, Kap12Error) else " ".join(
                        f"{', '.join(part.files)}: cannot be checked ({exc.__class__.__name__}: {exc})".split())
                    unresolved.append(f"{problem}; the index keeps the last good copies of these files" if kept
                                      else f"{problem}; there is no good copy to serve instead, so fix it before "
                                      "a restart")
                    source, files = content.good_dir, kept
            for rel in files:
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / rel, target / rel)
    finally:
        content.close()
    return [f"{problem}; the index keeps its last good copy" for problem in content.replaced.values()] + unresolved
