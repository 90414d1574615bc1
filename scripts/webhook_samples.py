"""Write the signed sample events of events/webhooks/ (API Gateway HTTP API v2 events for each
HR source, and the SQS batch of the delivery queue).

The secrets below are samples, published here on purpose: never configure them anywhere. The
signatures follow the schemes of docs/hr-webhooks.md:
  standard: base64 HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}", key = base64
            after "whsec_"; header "v1,<sig>"
  bamboohr: lower-case hex HMAC-SHA256 over body + timestamp
  hibob:    base64 HMAC-SHA512 over body
Run from the repository root: python3 scripts/webhook_samples.py (standard library only).
"""

import base64
import hashlib
import hmac
import json
import uuid

ACCOUNT = "acct-1"
TS = 1796115600  # 2026-12-01T09:00:00Z: the handler tests set their clock to it
STANDARD_SECRET = "whsec_" + base64.b64encode(b"entra-sync-SAMPLE-secret-not-real!!").decode()
BAMBOOHR_KEY = "sample-bamboohr-private-key-NOT-REAL"
HIBOB_SECRET = "sample-hibob-webhook-secret-NOT-REAL"
DELIVERY_NS = uuid.UUID(bytes=b"entra-sync:hrdlv")


def delivery_id(source, dedupe_key):
    return str(uuid.uuid5(DELIVERY_NS, f"{ACCOUNT}/{source}\n{dedupe_key}"))


def api_event(source, headers, body, request_id, time_text):
    path = f"/hooks/{ACCOUNT}/{source}"
    base = {
        "content-length": str(len(body.encode())),
        "content-type": "application/json",
        "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "x-amzn-trace-id": "Root=1-674c2590-5d1e2f3a4b5c6d7e8f901234",
        "x-forwarded-for": "198.51.100.24",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    base.update(headers)
    return {
        "version": "2.0",
        "routeKey": "POST /hooks/{account}/{source}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": dict(sorted(base.items())),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.24",
                "userAgent": base.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "POST /hooks/{account}/{source}",
            "stage": "$default",
            "time": time_text,
            "timeEpoch": TS * 1000,
        },
        "pathParameters": {"account": ACCOUNT, "source": source},
        "body": body,
        "isBase64Encoded": False,
    }


def write(name, value):
    with open(f"events/webhooks/{name}", "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def main():
    time_text = "01/Dec/2026:09:00:00 +0000"
    # Standard Webhooks: a hire.
    std_body = json.dumps(
        {
            "type": "hire",
            "timestamp": "2026-12-01T09:00:00Z",
            "data": {
                "employee_id": "E100",
                "work_email": "ann@contoso.example",
                "start_date": "2026-12-14",
                "department": "Sales",
                "manager": "boss@contoso.example",
            },
        },
        separators=(",", ":"),
    )
    msg_id = "msg_2pQm7wZk4bN1sV9xR3tY6uE8"
    key = base64.b64decode(STANDARD_SECRET[len("whsec_"):])
    sig = base64.b64encode(
        hmac.new(key, f"{msg_id}.{TS}.{std_body}".encode(), hashlib.sha256).digest()
    ).decode()
    std_headers = {
        "user-agent": "hr-tool-webhooks/1.4",
        "webhook-id": msg_id,
        "webhook-timestamp": str(TS),
        "webhook-signature": f"v1,{sig}",
    }
    write("standard.json", api_event("standard", std_headers, std_body, "Cq7a1Hb9DoEEMaA=", time_text))
    # The same request with the body changed after signing: refused with 401.
    tampered = std_body.replace("2026-12-14", "2026-12-15")
    write("tampered.json", api_event("standard", std_headers, tampered, "Cq7a1Hb9DoEEMaB=", time_text))

    # BambooHR field-based webhook: a termination with a past end date.
    bamboo_body = json.dumps(
        {
            "employees": [
                {
                    "id": "123",
                    "action": "Updated",
                    "changedFields": ["Termination Date", "Status"],
                    "fields": {
                        "Employee #": "E200",
                        "Work Email": "bob@contoso.example",
                        "Termination Date": "2026-11-30",
                        "Status": "Inactive",
                        "Department": "Sales",
                    },
                }
            ]
        },
        separators=(",", ":"),
    )
    bamboo_sig = hmac.new(
        BAMBOOHR_KEY.encode(), (bamboo_body + str(TS)).encode(), hashlib.sha256
    ).hexdigest()
    bamboo_headers = {
        "user-agent": "BambooHR-Webhooks",
        "x-bamboohr-signature": bamboo_sig,
        "x-bamboohr-timestamp": str(TS),
    }
    write("bamboohr.json", api_event("bamboohr", bamboo_headers, bamboo_body, "Cq7a1Hb9DoEEMbB=", time_text))

    # HiBob webhooks v2: an employee left (the rest is read from HiBob's API).
    hibob_body = json.dumps(
        {
            "companyId": 636192,
            "type": "employee.left",
            "triggeredBy": "system",
            "triggeredAt": "2026-12-01T09:00:00",
            "version": "v2",
            "data": {"employeeId": "3332883854254932743"},
        },
        separators=(",", ":"),
    )
    hibob_sig = base64.b64encode(
        hmac.new(HIBOB_SECRET.encode(), hibob_body.encode(), hashlib.sha512).digest()
    ).decode()
    hibob_headers = {"bob-signature": hibob_sig, "user-agent": "Bob-Webhooks"}
    write("hibob.json", api_event("hibob", hibob_headers, hibob_body, "Cq7a1Hb9DoEEMcC=", time_text))

    # The delivery queue's batch: the BambooHR delivery above, and a malformed message.
    bamboo_id = delivery_id(
        "bamboohr", "sha256:" + hashlib.sha256(bamboo_body.encode()).hexdigest()
    )
    record = lambda n, body, group, count: {
        "messageId": f"7c1d2e3f-0000-4000-8000-00000000000{n}",
        "receiptHandle": f"AQEB7c1d2e3f00004000800000000000000{n}==",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(count),
            "SentTimestamp": str(TS * 1000),
            "SequenceNumber": f"1889123567890123400{n}",
            "MessageGroupId": group,
            "SenderId": "AROAEXAMPLE:entra-sync-prod-webhooks-route",
            "MessageDeduplicationId": f"9f3b6c2a1d4e5f60-{TS * 1000 + n}",
            "ApproximateFirstReceiveTimestamp": str(TS * 1000 + 100),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:entra-sync-prod-webhooks.fifo",
        "awsRegion": "eu-west-1",
    }
    good = json.dumps(
        {"account_id": ACCOUNT, "source": "bamboohr", "delivery_id": bamboo_id},
        separators=(",", ":"),
    )
    write(
        "sqs.json",
        {
            "Records": [
                record(1, good, f"{ACCOUNT}/bamboohr", 1),
                record(2, "{\"account_id\":\"acct-1\"", f"{ACCOUNT}/standard", 3),
            ]
        },
    )


if __name__ == "__main__":
    main()
