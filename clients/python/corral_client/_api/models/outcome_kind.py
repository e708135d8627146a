from enum import StrEnum


class OutcomeKind(StrEnum):
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    FATAL = "fatal"
    FUEL_EXHAUSTED = "fuel_exhausted"
    INVALID_RESULT = "invalid_result"
    LEASE_EXPIRED = "lease_expired"
    MEMORY_EXCEEDED = "memory_exceeded"
    OUTPUT_TOO_LARGE = "output_too_large"
    TIMEOUT = "timeout"
    TRAPPED = "trapped"

    def __str__(self) -> str:
        return str(self.value)
