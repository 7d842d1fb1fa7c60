-- wrk: the same small chat completion for every request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_MASTER_KEY")
wrk.body = '{"model": "bench-model", "messages": [{"role": "user", "content": "Hello!"}]}'
