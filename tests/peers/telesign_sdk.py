"""The official Telesign Python SDK as a client of `warden telesign-mock` (tests/api/telesign.rs).

Usage: telesign_sdk.py BASE_URL CUSTOMER_ID API_KEY
Prints one JSON object (the last line of standard output) with what each call answered:
  message, status, phoneid, score: {"http": status, "json": body} through the SDK's clients;
  wrong_key: a send signed with another key; reused: [first, second] of one raw request sent twice with the same
  nonce; old_date: a raw request dated an hour ago (each signed by the SDK's own header generator).
"""

import json
import sys
import uuid
from email.utils import formatdate
import time

import requests
from telesign.messaging import MessagingClient
from telesign.phoneid import PhoneIdClient
from telesign.rest import RestClient
from telesign.score import ScoreClient


def out(response):
    return {"http": response.status_code, "json": response.json}


def raw(base, customer_id, api_key, nonce=None, date=None):
    """A signed POST /v1/messaging sent with requests, so the nonce and date can be chosen."""
    body = "phone_number=15558675309&message=raw&message_type=ARN"
    headers = RestClient.generate_telesign_headers(
        customer_id, api_key, "POST", "/v1/messaging", body, date_rfc2616=date, nonce=nonce
    )
    response = requests.post(base + "/v1/messaging", data=body, headers=headers, timeout=10)
    return {"http": response.status_code, "json": response.json()}


def main():
    base, customer_id, api_key = sys.argv[1:4]
    result = {}
    messaging = MessagingClient(customer_id, api_key, rest_endpoint=base)
    sent = messaging.message("15558675309", "Your code is 12345", "OTP")
    result["message"] = out(sent)
    reference = (sent.json or {}).get("reference_id", "missing")
    result["status"] = out(messaging.status(reference))
    phoneid = PhoneIdClient(customer_id, api_key, rest_endpoint=base)
    result["phoneid"] = out(phoneid.phoneid("15558675309", addons={"contact": {}}))
    score = ScoreClient(customer_id, api_key, rest_endpoint=base)
    result["score"] = out(score.score("15555559999", "create"))

    wrong_key = "VGhpcyBpcyBub3QgdGhlIGtleQ=="
    result["wrong_key"] = out(
        MessagingClient(customer_id, wrong_key, rest_endpoint=base).message("15558675309", "x", "OTP")
    )
    nonce = str(uuid.uuid4())
    result["reused"] = [raw(base, customer_id, api_key, nonce=nonce) for _ in range(2)]
    result["old_date"] = raw(base, customer_id, api_key, date=formatdate(time.time() - 3600, usegmt=True))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
