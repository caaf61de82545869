```Shell
openai.BadRequestError: Error code: 400 - {'error': {'code': 400, 'message': 'Illegal param: prefill 744 tokens exceed n_ctx_per_seq, try increasing total context size, adjusting RoPE, enabling context shifting, reducing parallel or reducing prefill tokens', 'type': 'invalid_request_error'}, 'detail': 'Illegal param: prefill 744 tokens exceed n_ctx_per_seq, try increasing total context size, adjusting RoPE, enabling context shifting, reducing parallel or reducing prefill tokens'}
```
