```shell
llama-server -m ...../Qwen2.5-Coder-32B-Instruct-Q8_0.gguf --host 0 --port 8080 -ngl all --keep -1 --flash-attn on --temp 0 -n 128 --cont-batching -ctk q8_0 --cache-type-v q8_0
```
