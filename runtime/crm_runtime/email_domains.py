"""Email domains, as the platform reads them: the domain of an address, and whether it is a
free-mail provider's.

A lead or contact writing from a company's own domain tells us the company: leads scoring
can reward it, and the sales service's lead conversion adds the contact to the account that
already has that domain. A free-mail domain tells us nothing about the company, so it is
never matched to an account and never becomes an account's domain.

`FREE_MAIL_DOMAINS` is deliberately small: the large consumer providers, their regional
and legacy names, and the privacy-focused ones that sales teams meet most. It is a
heuristic, not a registry; a domain missing from it is treated as a company's, so add one
here (every context reads this one list) rather than in a service. Entries are lower-case
ASCII (IDNA A-labels), as `email_domain_of` returns them.
"""

from __future__ import annotations

FREE_MAIL_DOMAINS: frozenset[str] = frozenset({
    # Google
    "gmail.com", "googlemail.com",
    # Microsoft
    "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr", "live.com",
    "live.co.uk", "msn.com",
    # Yahoo and AOL
    "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.co.jp", "ymail.com", "aol.com",
    # Apple
    "icloud.com", "me.com", "mac.com",
    # Privacy-focused
    "proton.me", "protonmail.com", "pm.me", "tutanota.com", "tuta.io",
    # Other large consumer providers
    "gmx.de", "gmx.net", "gmx.com", "web.de", "t-online.de", "mail.com", "zoho.com",
    "mail.ru", "yandex.ru", "yandex.com", "qq.com", "163.com", "126.com", "naver.com",
})


def email_domain_of(email: str | None) -> str | None:
    """The part after the last "@", trimmed, lower-cased, without a trailing dot; None when
    there is none."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower().removesuffix(".")
    return domain or None


def is_free_mail(domain: str | None) -> bool:
    """True for a free-mail provider's domain (an address there names a person, not a
    company). Case and a trailing dot do not matter; None is not free mail."""
    if not domain:
        return False
    return domain.strip().lower().removesuffix(".") in FREE_MAIL_DOMAINS
