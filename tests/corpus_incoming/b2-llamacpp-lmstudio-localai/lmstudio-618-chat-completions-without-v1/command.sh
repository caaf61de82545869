```shell
curl --verbose http://localhost:1234/chat/completions \
    -H "Content-Type: application/json" \
    -d '{
        "model": "any-model-name",
[... trimmed ...]
