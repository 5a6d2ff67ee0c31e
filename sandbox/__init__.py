"""Bundled sandbox target: a PaymentService and a BankingAPI emulator implementing
``shared/api-contract.md``, so the suite runs on a machine with nothing else installed."""

DEFAULT_TOKEN = "test_token_123456789"
