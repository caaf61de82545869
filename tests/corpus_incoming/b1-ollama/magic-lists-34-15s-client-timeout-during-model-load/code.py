```
# Test Ollama connectivity with a minimal request
        try:
            async with httpx.AsyncClient(timeout=15.0) as client:  # Longer timeout for Ollama
```
