"""How text is folded for search: one definition, so every backend matches alike.

``q`` matches a message when ``q.casefold()`` is a substring of ``text.casefold()`` (full Unicode
case folding). The search indexes hold the folded text. NUL, which neither FTS5 (it reads C
strings) nor PostgreSQL text can hold, is written there as NUL_STANDIN; a term holding either
character cannot be answered from the index alone and is checked against the real text.
"""

NUL_STANDIN = "\uffff"


def indexed_text(text):
    """What a search index holds for ``text``."""
    return text.casefold().replace("\x00", NUL_STANDIN)


def index_answers(folded_term):
    """Whether a match in the index is a match in the text, for a case-folded term."""
    return "\x00" not in folded_term and NUL_STANDIN not in folded_term


def storable(value, *, nul=False):
    """Whether a string can be stored and bound on every backend: valid UTF-8 (JSON escapes can
    spell lone surrogates) and, unless ``nul``, without NUL (no ID of ours holds one)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return nul or "\x00" not in value
