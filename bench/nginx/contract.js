// Contract-shaped answers for the generator benchmarks: echo what the suite sent (amount,
// currency, last4) so its body checks pass, without state. The payment id encodes the payment.
var DECLINES = {"4000000000000002": "generic_decline", "4000000000009995": "insufficient_funds",
                "4000000000000069": "expired_card", "4000000000000127": "incorrect_cvc"};

function reply(r, status, body) {
    r.headersOut["Content-Type"] = "application/json";
    r.return(status, JSON.stringify(body));
}

function rand() {
    return Math.floor(Math.random() * 0xffffffff).toString(16);
}

function payment(r) {
    var b = JSON.parse(r.requestText);
    var n = b.card.number;
    if (DECLINES[n]) {
        return reply(r, 402, {error: {code: "card_declined", message: "declined", details: [],
                                      decline_code: DECLINES[n], payment_id: "pay_d" + rand()}});
    }
    var id = "pay_" + b.amount + "_" + b.currency + "_" + n.slice(-4) + "_" + rand();
    reply(r, 201, {id: id, status: "succeeded", amount: b.amount, currency: b.currency, merchant_id: b.merchant_id,
                   customer_id: null, description: b.description, card: {brand: "visa", last4: n.slice(-4)},
                   decline_code: null, refunded_amount: 0, refunds: [], created_at: "2026-01-01T00:00:00.000Z"});
}

function parts(uri) {
    var id = uri.split("/")[2];
    var p = id.split("_");
    return {id: id, amount: parseInt(p[1], 10), currency: p[2], last4: p[3]};
}

function lookup(r) {
    var p = parts(r.uri);
    reply(r, 200, {id: p.id, status: "succeeded", amount: p.amount, currency: p.currency, merchant_id: "mer_x",
                   card: {brand: "visa", last4: p.last4}, decline_code: null, refunded_amount: 0, refunds: [],
                   created_at: "2026-01-01T00:00:00.000Z"});
}

function refund(r) {
    var p = parts(r.uri);
    var b = r.requestText ? JSON.parse(r.requestText) : {};
    reply(r, 201, {id: "re_" + rand(), payment_id: p.id, amount: b.amount || p.amount, currency: p.currency,
                   status: "succeeded", created_at: "2026-01-01T00:00:00.000Z"});
}

export default {payment, lookup, refund};
