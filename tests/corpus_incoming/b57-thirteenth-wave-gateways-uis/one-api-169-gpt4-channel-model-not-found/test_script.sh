while true
do
time curl https://ONEAPIURL/v1/chat/completions -H "Content-Type: application/json" -H "Authorization: Bearer ONEAPIKEY" -d '{"model": "gpt-4","messages": [{"role": "user", "content": "say test"}]}'
done
