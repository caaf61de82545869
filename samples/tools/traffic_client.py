"""Send the requests of one capture case with the real openai client; errors are printed, not raised,
so one case can hold several calls.

    python traffic_client.py BASE_URL STEPS_JSON

STEPS_JSON is a list of steps: {"call": "embed", "model": ..., "input": ..., "key": ...,
"extra_body": {...}, "dimensions": N} or {"call": "models", "key": ...}.
"""

import json
import sys

from openai import OpenAI

base_url, steps = sys.argv[1], json.loads(sys.argv[2])
for step in steps:
    client = OpenAI(api_key=step.get("key", "EMPTY"), base_url=step.get("base_url", base_url), max_retries=0, timeout=10)
    try:
        if step["call"] == "models":
            print("models:", [m.id for m in client.models.list()])
        else:
            kw = {}
            if "extra_body" in step:
                kw["extra_body"] = step["extra_body"]
            if "dimensions" in step:
                kw["dimensions"] = step["dimensions"]
            r = client.embeddings.create(model=step["model"], input=step["input"], **kw)
            print("embed:", len(r.data), "x", len(r.data[0].embedding))
    except Exception as e:  # keep going: the capture is the point
        print(f"{type(e).__module__}.{type(e).__name__}: {e}")
