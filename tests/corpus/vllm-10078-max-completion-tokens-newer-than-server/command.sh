  vllm serve microsoft/Phi-3.5-vision-instruct --dtype auto --trust-remote-code --max_model_len 8192 --limit-mm-per-prompt image=2
