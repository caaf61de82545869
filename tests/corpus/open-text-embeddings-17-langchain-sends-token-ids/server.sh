```
MODEL=bge-large-zh-v1.5 VERBOSE=1 PORT=6006 NORMALIZE_EMBEDDINGS=0 python -m open.text.embeddings.server
```
