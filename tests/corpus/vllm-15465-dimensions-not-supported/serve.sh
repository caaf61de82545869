```
vllm serve "/workspace/share_data/base_llms/bce-embedding-base_v1" \
    --served-model-name "bce-embedding-base_v1" \
    --task "embedding" \
    --trust-remote-code \
    --host "0.0.0.0" \
    --port 8000 \
    --dtype auto \
    --gpu-memory-utilization 0.4 \
    --kv-cache-dtype auto \
    --enable-prefix-caching \
    --tensor-parallel-size 1 \
    --max-num-seqs 256
```
vllm version: 0.7.2
