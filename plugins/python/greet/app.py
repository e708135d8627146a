"""Greets someone: the plugin the Python guide (docs/plugins/python.md) builds.

Input ``{"name": "Ada"}``; result ``{"greeting": "Hello, Ada!"}``. The
punctuation is the plugin's ``punctuation`` setting, ``!`` when unset.
"""

import corral


@corral.handler
def greet(input: dict, job: corral.Job) -> dict:
    name = input.get("name") if isinstance(input, dict) else None
    if not isinstance(name, str) or not name:
        # Retrying cannot fix bad input: the job goes to the dead-letter state.
        raise corral.Fatal('the input needs a non-empty "name"')
    corral.log.info(f"greeting {name} (attempt {job.attempt})")
    corral.progress(50, "halfway")
    punctuation = corral.config("punctuation") or "!"
    return {"greeting": f"Hello, {name}{punctuation}"}
