// The peer row of the efficiency bench: k6 posting the same payment the suite posts, with the same
// headers (bearer token, JSON, a fresh Idempotency-Key per request), checking status and body.
import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";

const HOST = __ENV.TARGET;
const HEADERS = {
  Authorization: "Bearer test_token_123456789",
  Accept: "application/json",
  "Content-Type": "application/json",
};
const CARD = { number: "4242424242424242", exp_month: 12, exp_year: 2031, cvc: "123", holder_name: "Ada Bench" };

export default function () {
  const amount = 100 + (exec.scenario.iterationInTest % 90000);
  const body = JSON.stringify({
    amount: amount,
    currency: "USD",
    merchant_id: "mer_bench",
    description: "bench order",
    customer: { id: "cus_bench", email: "ada@example.com", name: "Ada Bench" },
    card: CARD,
  });
  const headers = Object.assign({ "Idempotency-Key": `k6-${exec.vu.idInTest}-${exec.vu.iterationInInstance}` }, HEADERS);
  const res = http.post(`${HOST}/payments`, body, { headers: headers });
  check(res, {
    "201 with the payment": (r) => {
      if (r.status !== 201) return false;
      const p = r.json();
      return p.amount === amount && p.currency === "USD" && p.card.last4 === "4242" && p.status === "succeeded";
    },
  });
}
