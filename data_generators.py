"""Seeded test data: customers, merchants, cards, currencies, amounts and descriptions.

Faker runs once, at start-up, to build small vocabularies (names per locale, company names,
product words). Record ``i`` is then *derived* from ``(seed, i)`` with a 64-bit mix, so
start-up costs the same for 1,000 or 100,000,000 customers, the same seed always gives the same
customers and cards, and no Faker call happens on a request's hot path."""

from __future__ import annotations

import itertools
import math
import random
import secrets
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from faker import Faker

from config import get_settings

MASK64 = (1 << 64) - 1
# This process's run. Workers of a distributed run each have their own; ids built from it
# (idempotency keys, run-scoped merchants) never collide with another run's.
RUN_ID = secrets.token_hex(6)
RUN_MERCHANT_PREFIXES = ("mer_run", "mer_race_")  # merchants no other run or traffic uses


def is_run_merchant(merchant_id: str | None) -> bool:
    """A merchant created by one run alone (its settlements are that run's exclusively)."""
    return bool(merchant_id) and merchant_id.startswith(RUN_MERCHANT_PREFIXES)


def mix64(*parts: int) -> int:
    """splitmix64 over the parts: a cheap, well-spread deterministic hash of integers."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & MASK64)) * 0xBF58476D1CE4E5B9 & MASK64
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & MASK64
        x ^= x >> 31
    return x


# --- money ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrencyInfo:
    code: str
    minor_units: int  # ISO 4217 exponent: JPY has none
    per_usd: float  # rough rate, only to keep amounts realistic per currency


CURRENCIES = {
    c.code: c
    for c in (
        CurrencyInfo("USD", 2, 1.0),
        CurrencyInfo("EUR", 2, 0.92),
        CurrencyInfo("GBP", 2, 0.79),
        CurrencyInfo("JPY", 0, 150.0),
        CurrencyInfo("INR", 2, 83.0),
        CurrencyInfo("CAD", 2, 1.36),
        CurrencyInfo("AUD", 2, 1.52),
    )
}

# country -> (Faker locale, currency)
COUNTRIES = {
    "US": ("en_US", "USD"),
    "GB": ("en_GB", "GBP"),
    "DE": ("de_DE", "EUR"),
    "FR": ("fr_FR", "EUR"),
    "JP": ("ja_JP", "JPY"),
    "IN": ("en_IN", "INR"),
    "CA": ("en_CA", "CAD"),
    "AU": ("en_AU", "AUD"),
}
# Rough population of card-paying customers per country (weights for the customer base).
COUNTRY_WEIGHTS = {"US": 40, "GB": 12, "DE": 12, "FR": 8, "JP": 8, "IN": 10, "CA": 5, "AU": 5}


@dataclass(frozen=True)
class Category:
    name: str
    mcc: str
    median_usd: float  # typical ticket size
    sigma: float  # log-normal spread


CATEGORIES = (
    Category("grocery", "5411", 45.0, 0.6),
    Category("restaurants", "5812", 35.0, 0.5),
    Category("electronics", "5732", 250.0, 0.9),
    Category("airlines", "4511", 420.0, 0.7),
    Category("digital_goods", "5815", 9.99, 0.6),
    Category("fuel", "5541", 55.0, 0.4),
    Category("clothing", "5651", 80.0, 0.7),
    Category("hotels", "7011", 210.0, 0.6),
    Category("subscriptions", "4899", 15.0, 0.5),
    Category("pharmacy", "5912", 25.0, 0.6),
)

MAX_AMOUNT = 99_999_999


def to_minor_units(amount_usd: float, currency: str) -> int:
    info = CURRENCIES[currency]
    minor = round(amount_usd * info.per_usd * 10**info.minor_units)
    return max(1, min(MAX_AMOUNT, minor))


def amount_for(category: Category, currency: str, rng: random.Random) -> int:
    """A realistic ticket for the category, in the currency's minor units."""
    usd = category.median_usd * math.exp(rng.gauss(0.0, category.sigma))
    return to_minor_units(usd, currency)


# --- cards ---------------------------------------------------------------------------------


def luhn_check_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = ord(ch) - 48
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


# brand -> (prefixes, lengths, cvc length)
NETWORKS = {
    "visa": (("4",), (16, 16, 16, 13, 19), 3),
    "mastercard": (("51", "52", "53", "54", "55", "2221", "2500", "2720"), (16,), 3),
    "amex": (("34", "37"), (15,), 4),
    "discover": (("6011", "65", "644", "649"), (16,), 3),
}
NETWORK_SHARES = (("visa", 55), ("mastercard", 30), ("amex", 10), ("discover", 5))

APPROVED_TEST_CARDS = {
    "4242424242424242": "visa",
    "5555555555554444": "mastercard",
    "378282246310005": "amex",
    "6011111111111117": "discover",
}
DECLINE_CARDS = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
}
PROCESSING_ERROR_CARD = "4000000000000119"
# Any other Luhn-valid number is approved by the contract; keep generated ones clear of the
# special test numbers so a "random" card never declines by accident.
_SPECIAL = {*APPROVED_TEST_CARDS, *DECLINE_CARDS, PROCESSING_ERROR_CARD}


SPREAD_LAST4 = 9_999  # last-four values 0001..9999 of spread_card()
RESERVED_LAST4 = "0000"  # no spread card ends so: kept for a probe that trips a per-card limit on purpose


@dataclass(frozen=True)
class Card:
    number: str
    exp_month: int
    exp_year: int
    cvc: str
    holder_name: str
    brand: str

    def as_json(self) -> dict:
        return {
            "number": self.number,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "cvc": self.cvc,
            "holder_name": self.holder_name,
        }


def card_from_hash(h: int, holder: str, this_year: int, brand: str | None = None) -> Card:
    if brand is None:
        pick, acc = h % 100, 0
        for name, share in NETWORK_SHARES:
            acc += share
            if pick < acc:
                brand = name
                break
    prefixes, lengths, cvc_len = NETWORKS[brand]
    prefix = prefixes[(h >> 8) % len(prefixes)]
    length = lengths[(h >> 12) % len(lengths)]
    body = prefix + "".join(str(mix64(h, k) % 10) for k in range(length - len(prefix) - 1))
    number = body + luhn_check_digit(body)
    if number in _SPECIAL:
        return card_from_hash(mix64(h, 99), holder, this_year, brand)
    cvc = str(mix64(h, 7) % 10**cvc_len).zfill(cvc_len)
    return Card(number, 1 + (h >> 20) % 12, this_year + 1 + (h >> 24) % 5, cvc, holder, brand)


# --- people and businesses -------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str
    country: str
    currency: str
    card: Card

    def as_json(self) -> dict:
        return {"id": self.id, "email": self.email, "name": self.name}


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    category: Category
    country: str
    currency: str


class DataPool:
    """All test data of a run, from one seed. Cheap to build; records derive on access."""

    VOCAB_PER_LOCALE = 60

    def __init__(
        self,
        seed: int = 42,
        customer_count: int = 1000,
        merchant_count: int = 10,
        this_year: int | None = None,
        run_tag: str | None = None,
    ):
        self.seed, self.customer_count, self.merchant_count = seed, customer_count, merchant_count
        # With a run tag, merchant ids are this run's own (``mer_run<tag>_00003``): where the target
        # creates merchants on first use, nothing else moves money on them, so their settlements
        # can be checked exactly while other runs or real traffic use the same service.
        self._merchant_prefix = f"mer_run{run_tag}" if run_tag else f"mer_{seed:x}"
        # Expiry years count from the current year, so generated cards stay valid as time passes.
        self.this_year = this_year or date.today().year
        faker = Faker(list({loc for loc, _ in COUNTRIES.values()}))
        faker.seed_instance(seed)
        self._names = {}
        for country, (locale, _) in COUNTRIES.items():
            f = faker[locale]
            romanized = locale == "ja_JP"  # ASCII names keep emails and holder names plain
            firsts = [f.first_romanized_name() if romanized else f.first_name() for _ in range(self.VOCAB_PER_LOCALE)]
            lasts = [f.last_romanized_name() if romanized else f.last_name() for _ in range(self.VOCAB_PER_LOCALE)]
            self._names[country] = (firsts, lasts)
        en = faker["en_US"]
        self._companies = [en.company() for _ in range(200)]
        self._email_domains = sorted({en.free_email_domain() for _ in range(30)})
        self._products = {c.name: [en.catch_phrase() for _ in range(12)] for c in CATEGORIES}
        self._countries = [c for c, w in COUNTRY_WEIGHTS.items() for _ in range(w)]
        self.customer = lru_cache(maxsize=4096)(self._customer)
        self.merchant = lru_cache(maxsize=4096)(self._merchant)
        # The round robin is cyclic: a cache smaller than it would miss on every payment.
        self._spread_card = lru_cache(maxsize=SPREAD_LAST4)(self._spread)
        self._spread_next = itertools.count(int(RUN_ID, 16) % SPREAD_LAST4)

    # records by index (pure functions of seed and index)

    def _customer(self, i: int) -> Customer:
        if not 0 <= i < self.customer_count:
            raise IndexError(i)
        h = mix64(self.seed, 1, i)
        country = self._countries[h % len(self._countries)]
        firsts, lasts = self._names[country]
        first, last = firsts[(h >> 8) % len(firsts)], lasts[(h >> 20) % len(lasts)]
        local = "".join(ch for ch in f"{first}.{last}".lower() if ch.isascii() and (ch.isalnum() or ch == "."))
        email = f"{local}{i}@{self._email_domains[(h >> 32) % len(self._email_domains)]}"
        name = f"{first} {last}"
        card = card_from_hash(mix64(self.seed, 2, i), name, self.this_year)
        return Customer(f"cus_{self.seed:x}_{i:08d}", name, email, country, COUNTRIES[country][1], card)

    def _merchant(self, j: int) -> Merchant:
        if not 0 <= j < self.merchant_count:
            raise IndexError(j)
        h = mix64(self.seed, 3, j)
        category = CATEGORIES[j % len(CATEGORIES)] if j < len(CATEGORIES) else CATEGORIES[h % len(CATEGORIES)]
        country = self._countries[(h >> 8) % len(self._countries)]
        name = self._companies[(h >> 16) % len(self._companies)]
        return Merchant(f"{self._merchant_prefix}_{j:05d}", name, category, country, COUNTRIES[country][1])

    # random draws (the caller's rng decides; data stays the seed's)

    def random_customer(self, rng: random.Random) -> Customer:
        return self.customer(rng.randrange(self.customer_count))

    def random_merchant(self, rng: random.Random) -> Merchant:
        return self.merchant(rng.randrange(self.merchant_count))

    def description(self, merchant: Merchant, rng: random.Random) -> str:
        product = rng.choice(self._products[merchant.category.name])
        return f"{merchant.name}: {product}"[:200]

    def payment(
        self,
        rng: random.Random,
        merchant: Merchant | None = None,
        customer: Customer | None = None,
        card: Card | None = None,
    ) -> dict:
        """A valid payment request body."""
        merchant = merchant or self.random_merchant(rng)
        customer = customer or self.random_customer(rng)
        # Most customers pay in the merchant's currency; cross-border ones in their own.
        currency = merchant.currency if rng.random() < 0.8 else customer.currency
        return {
            "amount": amount_for(merchant.category, currency, rng),
            "currency": currency,
            "merchant_id": merchant.id,
            "description": self.description(merchant, rng),
            "customer": customer.as_json(),
            "card": (card or customer.card).as_json(),
        }

    def spread_card(self, rng: random.Random | None = None) -> Card:
        """The next card of a round robin over every last-four value but RESERVED_LAST4 (9,999
        cards, one per value), from an offset of this run: for services that limit payments per
        card by its last four digits per hour, each value is used once per 9,999 payments."""
        return self._spread_card(next(self._spread_next) % SPREAD_LAST4 + 1)

    def _spread(self, last4: int) -> Card:
        tail = f"{last4:04d}"
        for salt in range(8):
            h = mix64(self.seed, 4, last4, salt)
            head = "4" + "".join(str(mix64(h, k) % 10) for k in range(10))
            # One digit before the last three is free: exactly one of its ten values makes the
            # Luhn check digit the fourth digit wanted (doubled or not, a digit maps 1:1 mod 10).
            number = next(
                body + tail[3] for x in range(10) if luhn_check_digit(body := f"{head}{x}{tail[:3]}") == tail[3]
            )
            if number not in _SPECIAL:
                holder = self.customer(last4 % self.customer_count).name
                cvc = str(mix64(h, 7) % 1000).zfill(3)
                return Card(number, 1 + (h >> 20) % 12, self.this_year + 1 + (h >> 24) % 5, cvc, holder, "visa")
        raise AssertionError("unreachable: eight draws all special test numbers")

    # special cards

    def decline_card(self, rng: random.Random) -> tuple[Card, str]:
        """A card the bank declines, and the decline_code it must come back with."""
        number, code = rng.choice(list(DECLINE_CARDS.items()))
        return Card(number, 12, self.this_year + 2, "123", "Decline Test", "visa"), code

    def luhn_invalid_card(self, rng: random.Random) -> Card:
        good = self.random_customer(rng).card
        bad_digit = str((int(good.number[-1]) + 1 + rng.randrange(9)) % 10)
        return Card(good.number[:-1] + bad_digit, good.exp_month, good.exp_year, good.cvc, good.holder_name, good.brand)

    def expired_card(self, rng: random.Random) -> Card:
        good = self.random_customer(rng).card
        return Card(
            good.number,
            1 + rng.randrange(12),
            self.this_year - 1 - rng.randrange(3),
            good.cvc,
            good.holder_name,
            good.brand,
        )

    def wrong_cvc_length_card(self, rng: random.Random) -> Card:
        good = self.random_customer(rng).card
        cvc = "12" if rng.random() < 0.5 else "12345"
        return Card(good.number, good.exp_month, good.exp_year, cvc, good.holder_name, good.brand)


@lru_cache(maxsize=2)
def data_pool(run_scoped: bool = False) -> DataPool:
    """The run's pool (one per process, from the settings), built on first use: not at import,
    so the web UI starts instantly. ``run_scoped``: merchants of this run alone (RUN_ID)."""
    settings = get_settings()
    return DataPool(
        settings.data_seed, settings.customer_count, settings.merchant_count, run_tag=RUN_ID if run_scoped else None
    )
