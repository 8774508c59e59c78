"""Optional demo data for `make run DEMO_LEADS=N`: leads captured through the public API."""

from __future__ import annotations

import random

import httpx

from crm_runtime.auth import TokenCodec

CHANNELS = ["web", "email", "phone", "referral", "event", "social", "partner"]
FIRST = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Edsger", "Frances", "Ken", "Radia"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Dijkstra", "Allen", "Thompson", "Perlman"]


def seed_leads(leads_url: str, secret: str, count: int, seed: int = 7) -> int:
    """Captures `count` leads (idempotently: a second run with the same count adds none)."""
    rng = random.Random(seed)
    token = TokenCodec(secret).issue("demo-seeder", ["sales_rep"], ttl_seconds=600)
    created = 0
    with httpx.Client(base_url=leads_url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            response = client.post("/v1/leads", headers={"Idempotency-Key": f"demo-{i}"}, json={
                "name": f"{first} {last}",
                "email": f"{first}.{last}.{i}@example.com".lower(),
                "phone": f"+1 202 555 {i % 10000:04d}",
                "company": f"{last} Labs",
                "channel": rng.choice(CHANNELS),
            })
            response.raise_for_status()
            created += response.status_code == 201
    return created
