from runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    port: int = 8004
