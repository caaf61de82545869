```shell
Command for llama-server: `llama-server -m /models/gguf_models/devstral/bartowski/mistralai_Devstral-Small-2505-Q6_K_L.gguf  --alias devstral-small-2505 --host 0.0.0.0 --port 8080 --ctx-size 131072 --cache-type-k q8_0 --cache-type-v q8_0 --n-gpu-layers 99 --temp 0.15 --repeat-penalty 1.0 --min-p 0.01 --top-k 64 --top-p 0.95 --flash-attn --pooling cls -lv 1 --jinja`
```
