"""Finding catalog items by a title a person typed: normalised keys, then fuzzy matching.

A catalog title (`"Matrix, The (1999)"`) and a query (`"the matrix"`, `"the matrix 1999"`) are
reduced to the same key (`title_key`): names `("matrix",)`, year 1999 or None.

1. Unicode is folded to ASCII (`é` -> `e`), case is dropped, `&` becomes `and`.
2. A trailing `(YYYY)` is the year; other parenthesised parts are alternative titles
   (`a.k.a.` dropped), each a name of its own.
3. Articles (leading, or trailing behind a comma: `", The"`, `", La"`) are removed;
   punctuation becomes space; Roman numerals II..IX become digits.

A query is matched against every item by the first rule that finds an item:

- exact: the query's name equals one of the item's names (and the years agree when the query
  gives one);
- containment: every word of the query is a word of the item's name;
- fuzzy: a blend of the `difflib.SequenceMatcher` ratio and the token overlap. The best item
  is taken when it scores at least `ACCEPT` and `MARGIN` above the runner-up; below
  `CANDIDATE` nothing is found.

Several exact or containing items (remakes: "Hamlet" 1948, 1990, 1996), or several close fuzzy
ones, make the match ambiguous. A bare trailing year ("matrix 1999") is tried as `(1999)` first.
Examples of the forms handled: docs/notes/data-evaluation.md.

Example:

>>> index = TitleIndex([(1, "Matrix, The (1999)"), (2, "Matrix Reloaded, The (2003)")])
>>> index.match("the matrix").index
1
>>> index.match("Matrix Relaoded").index  # a typo
2
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

ACCEPT = 0.75
"""A fuzzy best match needs at least this score..."""
MARGIN = 0.08
"""...and this lead over the second-best item."""
CANDIDATE = 0.55
"""Items scoring at least this are listed as candidates of an ambiguous or failed match."""
MAX_CANDIDATES = 8

_ARTICLES = (
    "the", "a", "an", "le", "la", "les", "l", "il", "lo", "gli", "i", "el", "los", "las",
    "der", "die", "das", "den", "det", "de", "het", "een", "o", "os", "as", "un", "une",
)  # fmt: skip
_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")
_PARENS = re.compile(r"\(([^()]*)\)")
_TRAILING_ARTICLE = re.compile(r",\s*(" + "|".join(_ARTICLES) + r")\s*$")
_LEADING_ARTICLE = re.compile(r"^(" + "|".join(_ARTICLES) + r")\s+")
_AKA = re.compile(r"^\s*a\.?\s*k\.?\s*a\.?\s*", re.IGNORECASE)
_NON_WORD = re.compile(r"[^a-z0-9]+")
_BARE_YEAR = re.compile(r"^(.*\S)\s+((?:18|19|20)\d\d)\s*$")
_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}


def _fold(text: str) -> str:
    """Lower case ASCII, `&` -> `and`, `'` dropped (so "Schindler's" -> "schindlers")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return ascii_text.lower().replace("&", " and ").replace("'", "")


def _name_key(part: str) -> str:
    """One title part -> its comparison key: articles dropped, punctuation -> single spaces."""
    part = _AKA.sub("", _fold(part)).strip()
    part = _TRAILING_ARTICLE.sub("", part)
    part = _NON_WORD.sub(" ", part).strip()
    part = _LEADING_ARTICLE.sub("", part).strip()
    return " ".join(_ROMAN.get(token, token) for token in part.split())


@dataclass(frozen=True)
class TitleKey:
    """The normalised form of a title.

    Attributes:
        names: Comparison keys: the main title first, then each parenthesised alternative.
        year: The trailing `(YYYY)`, if any.
    """

    names: tuple[str, ...]
    year: int | None


def title_key(title: str) -> TitleKey:
    """Normalises a catalog title or a query (see the module docstring).

    Example:
        >>> title_key("City of Lost Children, The (Cité des enfants perdus, La) (1995)")
        TitleKey(names=('city of lost children', 'cite des enfants perdus'), year=1995)
    """
    year = None
    found = _YEAR.search(title)
    if found:
        year = int(found.group(1))
        title = title[: found.start()]
    alternatives = _PARENS.findall(title)
    main = _PARENS.sub(" ", title)
    names = [_name_key(main), *(_name_key(a) for a in alternatives)]
    unique = tuple(dict.fromkeys(n for n in names if n))
    return TitleKey(names=unique, year=year)


def _similarity(query: str, name: str) -> float:
    """Blend of character similarity (typos) and token overlap (word order, missing words)."""
    ratio = difflib.SequenceMatcher(None, query, name, autojunk=False).ratio()
    query_tokens, name_tokens = set(query.split()), set(name.split())
    overlap = len(query_tokens & name_tokens) / max(len(query_tokens | name_tokens), 1)
    return 0.7 * ratio + 0.3 * overlap


@dataclass(frozen=True)
class Candidate:
    """A catalog item considered for a query."""

    index: int
    title: str
    score: float


@dataclass(frozen=True)
class Match:
    """The outcome of matching one query.

    Attributes:
        query: What was typed.
        index: The chosen item's index, or None when the match is ambiguous or failed.
        title: The chosen item's title ("" when none).
        exact: True when the normalised names are equal.
        candidates: The closest items, best first (the alternatives of an ambiguous match).
    """

    query: str
    index: int | None
    title: str = ""
    exact: bool = False
    candidates: tuple[Candidate, ...] = field(default=())

    @property
    def ambiguous(self) -> bool:
        return self.index is None and len(self.candidates) > 1


class TitleIndex:
    """Matches typed titles against a catalog.

    Args:
        items: `(index, title)` pairs, e.g. from items.json.
    """

    def __init__(self, items: Iterable[tuple[int, str]]) -> None:
        self.items = [(int(index), str(title)) for index, title in items]
        self.keys = [title_key(title) for _, title in self.items]

    def match(self, query: str) -> Match:
        """The item a query names, or the candidates when it is ambiguous or unknown."""
        bare = _BARE_YEAR.match(query)
        if bare:  # "matrix 1999": try it as "matrix (1999)" first ("Blade Runner 2049" falls back)
            dated = self.match(f"{bare.group(1)} ({bare.group(2)})")
            if dated.index is not None:
                return Match(query, dated.index, dated.title, dated.exact, dated.candidates)
        wanted = title_key(query)
        if not wanted.names:
            return Match(query=query, index=None)
        name = " ".join(wanted.names)  # "Seven (Se7en)" as a query: compare the whole text
        if len(wanted.names) == 1:
            name = wanted.names[0]
        year_ok = [wanted.year is None or key.year == wanted.year for key in self.keys]
        exact = [
            i
            for i, key in enumerate(self.keys)
            if year_ok[i] and (name in key.names or set(wanted.names) <= set(key.names))
        ]
        if len(exact) == 1:
            index, title = self.items[exact[0]]
            return Match(
                query, index, title, exact=True, candidates=(Candidate(index, title, 1.0),)
            )
        if len(exact) > 1:
            return Match(query, None, candidates=self._candidates(exact, [1.0] * len(exact)))
        words = set(name.split())
        containing = [
            i
            for i, key in enumerate(self.keys)
            if year_ok[i] and any(words <= set(n.split()) for n in key.names)
        ]
        if len(containing) == 1:
            index, title = self.items[containing[0]]
            return Match(query, index, title, candidates=(Candidate(index, title, 1.0),))
        if len(containing) > 1:
            by_length = sorted(containing, key=lambda i: len(self.keys[i].names[0]))
            return Match(
                query, None, candidates=self._candidates(by_length, [1.0] * len(by_length))
            )
        scores = [
            max(_similarity(name, n) for n in key.names) if year_ok[i] and key.names else 0.0
            for i, key in enumerate(self.keys)
        ]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        close = [i for i in order[:MAX_CANDIDATES] if scores[i] >= CANDIDATE]
        if not close:
            return Match(query, None)
        best = close[0]
        runner_up = scores[close[1]] if len(close) > 1 else 0.0
        if scores[best] >= ACCEPT and scores[best] - runner_up >= MARGIN:
            index, title = self.items[best]
            return Match(query, index, title, candidates=(Candidate(index, title, scores[best]),))
        return Match(query, None, candidates=self._candidates(close, [scores[i] for i in close]))

    def _candidates(
        self, positions: Sequence[int], scores: Sequence[float]
    ) -> tuple[Candidate, ...]:
        return tuple(
            Candidate(self.items[p][0], self.items[p][1], round(float(s), 3))
            for p, s in list(zip(positions, scores, strict=True))[:MAX_CANDIDATES]
        )


def describe_failure(match: Match, label: Callable[[int], str] | None = None) -> str:
    """A one-line message for a match without a single item, naming the candidates.

    Args:
        match: A `Match` whose `index` is None.
        label: Item index -> extra text shown after each candidate title (e.g. its raw id).
    """
    if not match.candidates:
        return f"no title matches {match.query!r}"
    listed = "; ".join(
        f"{c.title!r}" + (f" ({label(c.index)})" if label else "") for c in match.candidates
    )
    if len(match.candidates) == 1:
        return f"no title matches {match.query!r} well enough; closest: {listed}"
    return f"{match.query!r} is ambiguous: {listed}; add the year or more words"
