-- wrk script: place the same valid order over and over.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"customerId": 1, "lines": [{"itemId": 2, "count": 3}, {"itemId": 4, "count": 1}]}'
