"""The suite's Locust user classes, one module each."""

from users.banking_api import BankingAPIUser
from users.failure_simulation import FailureSimulationUser
from users.payment_service import PaymentServiceUser
from users.realistic_traffic import RealisticTrafficUser

__all__ = ["BankingAPIUser", "FailureSimulationUser", "PaymentServiceUser", "RealisticTrafficUser"]
