from enum import StrEnum


class CallResult(StrEnum):
    DENIED = "denied"
    ERROR = "error"
    OK = "ok"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    UNFINISHED = "unfinished"

    def __str__(self) -> str:
        return str(self.value)
