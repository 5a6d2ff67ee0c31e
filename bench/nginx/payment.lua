-- wrk script: POST /payments with contract-valid bodies (approved test cards, varying amounts).
local cards = {"4242424242424242", "5555555555554444", "6011111111111117", "4111111111111111"}
local counter = 0

request = function()
  counter = counter + 1
  local body = string.format(
    '{"amount":%d,"currency":"USD","merchant_id":"mer_bench_%d","description":"bench",' ..
    '"customer":{"id":"cus_bench"},"card":{"number":"%s","exp_month":12,"exp_year":2031,"cvc":"123"}}',
    100 + counter % 9000, counter % 20, cards[counter % 4 + 1])
  return wrk.format("POST", "/payments", {["Content-Type"] = "application/json",
                                          ["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "test_token_123456789")}, body)
end

-- THINK_MS > 0 (the half-rate latency run): each connection waits an exponentially distributed
-- think time of that mean between requests, so connections never fall into lock-step bursts.
local think = tonumber(os.getenv("THINK_MS") or "0") or 0
if think > 0 then
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  delay = function()
    return math.floor(-think * math.log(1 - math.random()))
  end
end
