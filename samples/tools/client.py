"""Call embeddings the way users do, and let the real exception surface (uncaught).

    python client.py BASE_URL [--key K | --no-key] [--model M] [--input TEXT] [--timeout S] [--requests]
"""

import argparse
import os

p = argparse.ArgumentParser()
p.add_argument("base_url")
p.add_argument("--key")
p.add_argument("--no-key", action="store_true")
p.add_argument("--model", default="Qwen3-Embedding-4B")
p.add_argument("--input", default="query: what is the capital of France?")
p.add_argument("--empty-input", action="store_true")
p.add_argument("--timeout", type=float, default=30)
p.add_argument("--requests", action="store_true", help="use requests instead of the openai SDK")
a = p.parse_args()
inputs = [] if a.empty_input else [a.input]

if a.requests:
    import requests

    r = requests.post(a.base_url + "/embeddings", json={"model": a.model, "input": inputs},
                      headers={"Authorization": f"Bearer {a.key}"}, timeout=a.timeout)
    r.raise_for_status()
else:
    from openai import OpenAI

    if a.no_key:
        os.environ.pop("OPENAI_API_KEY", None)
        client = OpenAI(base_url=a.base_url, timeout=a.timeout, max_retries=1)
    else:
        client = OpenAI(api_key=a.key, base_url=a.base_url, timeout=a.timeout, max_retries=1)
    resp = client.embeddings.create(model=a.model, input=inputs)
    print(len(resp.data[0].embedding))
