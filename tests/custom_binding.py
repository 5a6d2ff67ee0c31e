"""A team's own binding, as in the README's "Your own API": an API that is the contract except
that it has no merchant reports and no bank batches. One module, ``BINDING`` at the bottom;
run with ``API_DIALECT=tests.custom_binding``."""

from apis.contract import ContractBinding
from apis.records import Capability


class MyCompanyBinding(ContractBinding):
    name = "mycompany"
    capabilities = ContractBinding.capabilities - {Capability.REPORT, Capability.BANK_BATCH}


BINDING = MyCompanyBinding()
