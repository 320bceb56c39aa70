"""Search pages in signup order: a bounded walk of the signup-order index, then the
organization's trigram bitmap for the rest (`listing._bounded_search`): the same pages as the
plain filter, and a bounded walk whatever the table's statistics say of the term."""

from __future__ import annotations

import random

import pytest
from tortoise.connection import get_connection

from app.customers import listing
from app.customers.models import Customer
from app.db import transaction
from tests.graphql_shape.test_dataloaders import counting_statements
from tests.support.factories import Tenant

WORDS = ["ana", "bo", "garcia", "lind", "park", "moe", "quinn", "ray", "sol", "tu"]


async def _pages(tenant: Tenant, term: str, first: int) -> list[str]:
    """Every customer the search lists, page after page of `first`."""
    where = listing.conditions(
        tenant.id, user_type=None, acquisition_channel=None, workflow_status=None, search=term
    )
    seen: list[str] = []
    after = None
    while True:
        page = await listing.page(where, first=first, after=after)
        seen += [c.email for c in page.items]
        assert len(page.items) <= first
        if not page.has_next_page:
            return seen
        assert len(page.items) == first
        after = page.end_cursor


@pytest.mark.parametrize("walks", [(3, 5), (1, 2), (1_000, 30_000)])
async def test_search_pages_equal_the_filter_on_random_data(
    tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch, walks: tuple[int, int]
) -> None:
    rng = random.Random(8)
    for i in range(36):
        name = " ".join(rng.choice(WORDS).title() for _ in range(2))
        await tenant.customer(name=name, email=f"{rng.choice(WORDS)}{i}@bound.test")
    for i in range(6):
        await other_tenant.customer(name="Quinn Garcia", email=f"o{i}@bound.test")
    monkeypatch.setattr(listing, "SEARCH_WALK", walks[0])
    monkeypatch.setattr(listing, "SEARCH_WALK_MORE", walks[1])
    everyone = await Customer.filter(organization_id=tenant.id).order_by("created_at", "id")
    for term in ["garcia", "a", "lind", "QUINN", "ar", "zz", "bound", "o1", "park moe"]:
        expected = [
            c.email for c in everyone if term.lower() in f"{c.name.lower()}\x1f{c.email.lower()}"
        ]
        for first in (1, 2, 5, 100):
            assert await _pages(tenant, term, first) == expected, (term, first)


async def test_a_term_common_elsewhere_walks_a_bounded_range(
    tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`quokka` is in a tenth of the table (another organization) and in the last of this
    one's customers: the planner's estimate took the signup-order walk, which then went
    through the whole organization. Now the page walks SEARCH_WALK entries (a LIMIT under the
    search's test) and finds the rest by trigrams, in statements of their own. (Which plan
    the planner takes on a table this small is its whim, so the test reads the statements;
    the bench's `page, search elsewhere` shows the figures.)"""
    for i in range(40):
        await tenant.customer(name=f"Ana Lind {i}", email=f"a{i}@bound.test")
    mine = await tenant.customer(name="Bo Quokka", email="bo@bound.test")
    for i in range(120):  # a tenth with the term: common for the table's statistics
        name = f"Quokka {i}" if i % 10 == 0 else f"Bo Park {i}"
        await other_tenant.customer(name=name, email=f"q{i}@bound.test")
    await get_connection("default").execute_script("ANALYZE customer")
    monkeypatch.setattr(listing, "SEARCH_WALK", 4, raising=False)
    monkeypatch.setattr(listing, "SEARCH_WALK_MORE", 8, raising=False)
    where = listing.conditions(
        tenant.id, user_type=None, acquisition_channel=None, workflow_status=None, search="quokka"
    )
    with counting_statements() as statements:
        page = await listing.page(where, first=20, after=None)
    assert [c.id for c in page.items] == [mine.id]
    searched = [sql for sql in statements if "search_text LIKE" in sql]
    # each statement that tests the term either stops within 4 entries in signup order...
    walks = [sql for sql in searched if "LIMIT 4)" in sql]
    assert len(walks) == 1, searched
    # ... or is the rest by trigrams (TRIGRAMS: index walks off), after the walk's last entry
    rest = [sql for sql in searched if sql not in walks]
    assert len(rest) == 1 and "ORDER BY created_at, id LIMIT 21" in rest[0], searched


@pytest.mark.parametrize("nested", [False, True])
async def test_list_statements_start_no_parallel_workers(db: str, nested: bool) -> None:
    """Starting parallel workers costs a list statement more than it runs: 6-9 ms against
    0.2 ms for the trigram bitmap of a term common in another organization, at 1,000,000
    customers, where the table's statistics made the planner expect 100,000 matches and plan
    a parallel bitmap scan (the bench's `page, search elsewhere`). A table small enough for a
    test never gets such a plan, so this reads the setting the statements run with."""

    async def setting() -> str:
        async with listing._reading(listing.TRIGRAMS) as run:
            [row] = await run("SHOW max_parallel_workers_per_gather", [])
            return str(row[0])

    if nested:
        async with transaction():
            assert await setting() == "0"
    else:
        assert await setting() == "0"
