"""Both backends satisfy the written contract, ``lyftr.backend.Backend``, method for method."""

import inspect

import pytest

from lyftr.store.backend import Backend
from lyftr.store.postgres import PostgresBackend
from lyftr.store.sqlite.backend import SQLiteBackend

CONTRACT = {
    name: inspect.signature(member)
    for name, member in vars(Backend).items()
    if inspect.isfunction(member) and not name.startswith("_")
}


def test_the_contract_is_not_empty():
    assert {"insert_message", "list_messages", "stats", "migration_transaction"} <= set(CONTRACT)


@pytest.mark.parametrize("backend_class", [SQLiteBackend, PostgresBackend])
@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_backend_has_the_contract_method(backend_class, name):
    method = getattr(backend_class, name, None)
    assert callable(method), f"{backend_class.__name__} lacks {name}"
    expected = [(p.name, p.kind) for p in CONTRACT[name].parameters.values()]
    actual = [(p.name, p.kind) for p in inspect.signature(method).parameters.values()]
    assert actual == expected
