// k6 doing the suite's payment task: the third row of the efficiency bench (bench/generator.py).
// The same work as PaymentServiceUser.process_payment (--tags payments, SIMULATE_FAILURES=false)
// and bench/same_work_locustfile.py: the suite's own bodies (BODIES, a JSON file drawn from its
// data pool), one payment in ten to the /pay alias, the same headers (bearer token, Accept, JSON,
// a fresh Idempotency-Key) and the contract binding's checks on the answer.
import http from "k6/http";
import { check } from "k6";
import exec from "k6/execution";

const HOST = __ENV.TARGET;
const BODIES = JSON.parse(open(__ENV.BODIES));
const ALIAS_EVERY = 10;
const FIELDS = ["id", "status", "amount", "currency", "card", "refunded_amount"];
const AUTH = __ENV.AUTH || "Bearer test_token_123456789";

function verdict(r, sent) {
  if (r.status !== 201) return false;
  let p;
  try {
    p = r.json();
  } catch (e) {
    return false;
  }
  if (p === null || typeof p !== "object" || FIELDS.some((f) => !(f in p))) return false;
  const number = sent.card.number;
  if (r.body.includes(number)) return false;
  if (p.status !== "succeeded") return false;
  if (p.amount !== sent.amount || p.currency !== sent.currency) return false;
  return p.card !== null && typeof p.card === "object" && p.card.last4 === number.slice(-4);
}

export default function () {
  const vu = exec.vu.idInTest;
  const n = exec.vu.iterationInInstance + 1;
  const sent = BODIES[(vu * 7919 + n) % BODIES.length];
  const path = n % ALIAS_EVERY === 0 ? "/pay" : "/payments";
  const headers = {
    Authorization: AUTH,
    Accept: "application/json",
    "Content-Type": "application/json",
    "Idempotency-Key": `k6-${vu}-${n}`,
  };
  const res = http.post(`${HOST}${path}`, JSON.stringify(sent), { headers: headers });
  check(res, { "201 with the payment": (r) => verdict(r, sent) });
}
