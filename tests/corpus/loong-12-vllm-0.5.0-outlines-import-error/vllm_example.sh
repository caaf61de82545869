```
python -m vllm.entrypoints.openai.api_server \
--served-model-name Llama-3.1-8B-Instruct \
--model "meta-llama/Llama-3.1-8B-Instruct/" \
--tensor-parallel-size=4 \
--trust-remote-code 
```
