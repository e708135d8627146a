"""Exercises every outcome the helper produces; the tests and the benchmark
drive it. Each input key asks for one behaviour, checked in this order:

- ``log``: writes the text to the job's log (``corral.log.info``) and to
  stdout (``print``);
- ``succeed_on_attempt``: raises ``corral.Retryable`` on earlier attempts;
- ``fatal``: raises ``corral.Fatal`` with the text;
- ``raise``: raises a ``ValueError`` the helper does not know (retryable);
- ``allocate_mb``: keeps allocating 1 MiB blocks until that many are held;

then returns ``{"attempt": <n>, "input": <input>, "context": <context>}``.
"""

import corral


@corral.handler
def probe(input: dict, job: corral.Job) -> dict:
    if "log" in input:
        corral.log.info(input["log"])
        print(f"stdout: {input['log']}")
    if job.attempt < input.get("succeed_on_attempt", 1):
        raise corral.Retryable(
            f"attempt {job.attempt} fails; attempt {input['succeed_on_attempt']} will succeed"
        )
    if "fatal" in input:
        raise corral.Fatal(input["fatal"])
    if "raise" in input:
        raise ValueError(input["raise"])
    hoard = [bytearray(1 << 20) for _ in range(input.get("allocate_mb", 0))]
    return {
        "attempt": job.attempt,
        "held_mb": len(hoard),
        "input": input,
        "context": job.context,
    }
