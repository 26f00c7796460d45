from pydantic import Field

from runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    port: int = 8004
    # Published counts below this are returned as suppressed, never as numbers.
    reporting_suppression_k: int = Field(5, ge=1)
    # The CTDC export is k-anonymous over its quasi-identifiers with this k (CTDC's own is 11)...
    reporting_ctdc_k: int = Field(11, ge=1)
    # ...after generalising as far as leaves at most this share of records to suppress.
    reporting_ctdc_max_suppression: float = Field(0.05, ge=0, le=1)
    # The answer's lag asks the broker for its end offsets at most this often.
    reporting_lag_cache_s: float = Field(2.0, ge=0)
