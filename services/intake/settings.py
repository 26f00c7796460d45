from runtime.settings import PiiSettings, ServiceSettings


class IntakeSettings(ServiceSettings, PiiSettings):
    port: int = 8001
